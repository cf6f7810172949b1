"""Feedback: people say whether an alert was right, and listener keeps it with the post.

Two ways in, one way to the store (`record`, which checks and then calls `Store.add_feedback`):

- `listener feedback ID VERDICT [--branch B]`, for e-mail users and scripts;
- a click on an alert's controls in Slack, sent to POST /slack/actions on the daemon's HTTP port
  and handled by `SlackActions.handle`, one step after the other:

  1. verify Slack's signature (slack_sdk's `SignatureVerifier`: the HMAC-SHA256 of
     'v0:<timestamp>:<body>' with the signing secret, the timestamp at most 5 minutes off):
     401 when it is missing, wrong or stale;
  2. parse the form-encoded `payload` into a `Click` (`parse_click`): 400 when it is not a
     block_actions payload with a user; 200 and nothing more for actions that are not feedback
     (Slack also reports clicks on the 'Open post' link button);
  3. `record` it, via "slack", by the Slack user id from the verified payload;
  4. answer 200 at once, then, on a worker thread, `chat.update` the message with the blocks of
     `listener.notify.slack.build_blocks(alert, judged)` ("Marked not relevant by <@U123>", the
     controls showing the choice), or, when the click could not be recorded (an alert this
     database does not have), `chat.postEphemeral` the reason to the person who clicked.

Slack wants its 200 within 3 seconds and ignores the body of a block_actions reply, so the Web
API calls run after the answer, one at a time (`close()` waits for those still queued). They use
the notifier's `[slack]` settings and token; without the token clicks are still recorded. The
signing secret is never logged, nor is the payload (it quotes the message, which quotes the post).
"""

from __future__ import annotations

import http.client
import json
import logging
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from listener.alert import AlertMessage
from listener.health import SYSTEM
from listener.store import VERDICTS, AlertRow, FeedbackRow, Store, utcnow

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from listener.config import Config
    from listener.config.model import Organisation

__all__ = [
    "BadPayload",
    "Click",
    "FeedbackError",
    "SlackActions",
    "UnknownAlert",
    "parse_click",
    "record",
    "slack_actions",
]

log = logging.getLogger(__name__)

Reply = tuple[int, dict[str, Any]]


class FeedbackError(Exception):
    """Feedback that cannot be recorded; the message says why, for the person who gave it."""


class UnknownAlert(FeedbackError):
    """The store has no alert with that id."""


def record(
    store: Store,
    organisations: Mapping[str, Organisation],
    alert_id: int,
    verdict: str,
    *,
    branch: str | None = None,
    by: str | None = None,
    via: str = "cli",
    now: datetime | None = None,
) -> tuple[AlertRow, FeedbackRow]:
    """Check feedback on an alert and store it; returns the alert and the stored row.

    `branch` only goes with wrong-branch: the branch the post is really about, which must be a
    branch of the alert's organisation in the configuration; None there means 'the organisation,
    no particular branch'. `FeedbackError` says what is wrong."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"the verdict is one of {', '.join(VERDICTS)}, not {verdict!r}")
    alert = store.alert(alert_id) if 0 < alert_id < 2**63 else None  # SQLite's integers
    if alert is None:
        raise UnknownAlert(f"there is no alert {alert_id}")
    if alert.org == SYSTEM:
        raise FeedbackError(f"alert {alert_id} is about listener itself, not about a post")
    if branch is not None and verdict != "wrong-branch":
        raise FeedbackError(f"a branch only goes with wrong-branch, not with {verdict}")
    if verdict == "wrong-branch":
        _check_branch(alert, organisations.get(alert.org), branch)
    try:
        row = store.add_feedback(alert_id, verdict, branch=branch, by=by, via=via, now=now)
    except KeyError:  # deleted since we looked
        raise UnknownAlert(f"there is no alert {alert_id}") from None
    return alert, row


def _check_branch(alert: AlertRow, org: Organisation | None, branch: str | None) -> None:
    if branch is None:
        if alert.branch is None:
            raise FeedbackError(
                f"alert {alert.id} names no branch already: say which branch it is about"
            )
        return
    if org is None:
        raise FeedbackError(
            f"alert {alert.id} is about {alert.org!r}, which is not in the configuration, "
            "so its branches are unknown"
        )
    ids = [b.id for b in org.branches]
    if branch not in ids:
        listed = ", ".join(ids[:30]) + (", …" if len(ids) > 30 else "")
        choose = f": choose from {listed}" if ids else " (it has none)"
        raise FeedbackError(f"{branch!r} is not a branch of {org.id}{choose}")
    if branch == alert.branch:
        raise FeedbackError(
            f"alert {alert.id} already says branch {branch}: if that is right, it is relevant"
        )


# --- Slack: POST /slack/actions ----------------------------------------------------------------


class BadPayload(Exception):
    """A signed request whose body is not a block_actions payload we can read."""


@dataclass(frozen=True, slots=True)
class Click:
    """One click on a feedback control, from Slack's verified payload."""

    alert_id: int
    verdict: str
    branch: str | None
    user: str  # the Slack user id
    channel: str | None  # where the message is, for chat.update
    message_ts: str | None


def parse_click(body: bytes) -> Click | None:
    """The feedback click in a form-encoded interaction body; None for an interaction that is
    not a feedback click; `BadPayload` for a body that is not an interaction payload."""
    from listener.notify.slack import (
        ACTION_NOT_RELEVANT,
        ACTION_RELEVANT,
        ACTION_WRONG_BRANCH,
        USER_ID,
        read_choice,
    )

    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("the body is not form-encoded UTF-8") from None
    fields = form.get("payload", [])
    if len(fields) != 1:
        raise BadPayload("the body has no payload field")
    try:
        data = json.loads(fields[0])
    except (ValueError, RecursionError):
        raise BadPayload("the payload is not JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("the payload is not a JSON object")
    if data.get("type") != "block_actions":
        return None
    user = _get(data, "user", "id")
    if not isinstance(user, str) or not USER_ID.match(user):
        raise BadPayload("the payload has no user id")
    actions = data.get("actions")
    ours = (ACTION_NOT_RELEVANT, ACTION_RELEVANT, ACTION_WRONG_BRANCH)
    if not isinstance(actions, list):
        raise BadPayload("the payload has no actions")
    found = [a for a in actions if isinstance(a, dict) and a.get("action_id") in ours]
    if not found:
        return None  # 'Open post', or a control of another app's
    action = found[0]
    branch = None
    if action["action_id"] == ACTION_WRONG_BRANCH:
        verdict = "wrong-branch"
        value = _get(action, "selected_option", "value")
        try:
            alert_id, branch = read_choice(value if isinstance(value, str) else "")
        except ValueError:
            raise BadPayload("the selected option is not an alert:branch choice") from None
    else:
        verdict = "not-relevant" if action["action_id"] == ACTION_NOT_RELEVANT else "relevant"
        value = action.get("value")
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise BadPayload("the button's value is not an alert id")
        alert_id = int(value)
    channel = _get(data, "container", "channel_id") or _get(data, "channel", "id")
    ts = _get(data, "container", "message_ts") or _get(data, "message", "ts")
    return Click(
        alert_id=alert_id,
        verdict=verdict,
        branch=branch,
        user=user,
        channel=channel if isinstance(channel, str) else None,
        message_ts=ts if isinstance(ts, str) else None,
    )


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data


class SlackActions:
    """The handler of POST /slack/actions; see the module docstring for the steps.

    `client` is a WebClient made like the notifier's (`listener.notify.slack.make_client`), or
    None when there is no bot token: clicks are then recorded but messages not updated.
    `handle` runs on the HTTP server's threads, several at once; the store serialises writes.
    """

    def __init__(
        self,
        signing_secret: str,
        store: Store,
        organisations: Mapping[str, Organisation],
        client: WebClient | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        from slack_sdk.signature import SignatureVerifier

        self._verifier = SignatureVerifier(signing_secret)
        self._store = store
        self._organisations = organisations
        self._client = client
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-feedback")

    def __repr__(self) -> str:  # never the secret or the token
        return f"SlackActions(secret=set, updates={'on' if self._client else 'off'})"

    def close(self) -> None:
        """Wait for the Slack calls still queued; then stop the worker."""
        self._worker.shutdown(wait=True)

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if method.upper() != "POST":
            return 405, {"error": "/slack/actions takes POST"}
        if not self._verified(headers, body):
            log.warning("slack actions: refused a request without a valid Slack signature")
            return 401, {"error": "unauthorized: no valid X-Slack-Signature"}
        try:
            click = parse_click(body)
        except BadPayload as exc:
            log.info("slack actions: rejected %d bytes: %s", len(body), exc)
            return 400, {"error": str(exc)}
        if click is None:
            return 200, {}
        try:
            alert, judged = record(
                self._store,
                self._organisations,
                click.alert_id,
                click.verdict,
                branch=click.branch,
                by=click.user,
                via="slack",
                now=self._clock(),
            )
        except FeedbackError as exc:
            log.info("slack actions: feedback from %s not recorded: %s", click.user, exc)
            self._later(
                "chat.postEphemeral", self._tell, click, f"listener could not record that: {exc}."
            )
            return 200, {"ok": False, "error": str(exc)}
        log.info("slack actions: alert %d marked %s by %s", alert.id, judged.verdict, click.user)
        self._later("chat.update", self._update, click, alert, judged)
        return 200, {"ok": True}

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        try:
            return self._verifier.is_valid_request(body, dict(headers.items()))
        except (ValueError, UnicodeDecodeError):  # a timestamp that is not a number, bad UTF-8
            return False

    # --- after the answer: the Web API -----------------------------------------------------------

    def _later(self, call: str, work: Callable[..., None], *args: Any) -> None:
        """Run `work(*args)` (which makes the Web API call `call`) after the answer."""
        if self._client is None:
            return
        try:
            self._worker.submit(self._guarded, call, work, *args)
        except RuntimeError:  # closed: the daemon is stopping
            log.info("slack actions: stopping, so the message is left as it is")

    @staticmethod
    def _guarded(call: str, work: Callable[..., None], *args: Any) -> None:
        """Log what went wrong by Slack's error code or the exception's type (a message could
        quote the request, and with it the token)."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            work(*args)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = data.get("error") or f"HTTP {exc.response.status_code}"
            log.warning("slack actions: %s failed: %s", call, error)
        except (SlackClientError, OSError, http.client.HTTPException) as exc:
            log.warning("slack actions: %s failed: %s", call, type(exc).__name__)
        except Exception as exc:  # a bug: the traceback, still without the message
            trace = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            log.error("slack actions: %s crashed: %s\n%s", call, type(exc).__name__, trace)

    def _update(self, click: Click, alert: AlertRow, judged: FeedbackRow) -> None:
        """chat.update: the message as it was, with who marked it what and the controls set."""
        from listener.notify.slack import build_blocks, fallback_text

        if click.channel is None or click.message_ts is None or not alert.message:
            log.info("slack actions: alert %d: no message to update", alert.id)
            return
        message = AlertMessage.from_json(alert.message)
        assert self._client is not None
        self._client.chat_update(
            channel=click.channel,
            ts=click.message_ts,
            text=fallback_text(message),
            blocks=build_blocks(message, judged),
        )

    def _tell(self, click: Click, text: str) -> None:
        """chat.postEphemeral: only the person who clicked sees why nothing was recorded."""
        from listener.notify.slack import escape_mrkdwn

        if click.channel is None:
            return
        assert self._client is not None
        self._client.chat_postEphemeral(
            channel=click.channel, user=click.user, text=escape_mrkdwn(text)
        )


def slack_actions(
    config: Config,
    store: Store,
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utcnow,
) -> SlackActions | None:
    """The POST /slack/actions handler when `[slack]` is configured and its signing secret is in
    the environment; None otherwise (and the reason logged, when it is the secret)."""
    settings = config.main.slack
    if settings is None:
        return None
    secret = env.get(settings.signing_secret_env, "").strip()
    if not secret:
        log.info(
            "Slack feedback buttons: set %s to receive their clicks on POST /slack/actions",
            settings.signing_secret_env,
        )
        return None
    from listener.notify.slack import make_client

    token = env.get(settings.token_env, "").strip()
    client = None
    if token:
        client = make_client(token, settings.base_url, settings.timeout.total_seconds())
    else:
        log.warning(
            "Slack feedback: clicks are recorded, but messages are not updated: %s is not set",
            settings.token_env,
        )
    return SlackActions(secret, store, config.organisations, client, clock=clock)
