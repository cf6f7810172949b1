"""Feedback and acknowledgements: people say whether an alert was right, or that they are on
it, and listener keeps it with the alert.

Feedback has two ways in and one way to the store (`record`, which checks and then calls
`Store.add_feedback`): `listener feedback ID VERDICT [--branch B]`, for e-mail users and scripts,
and a click on an alert's controls in Slack. An acknowledgement ('someone is handling this', which
calls off escalation) is `Store.acknowledge`: from `listener ack ID`, a click on the alert's
'Acknowledge' button (`listener.notify.slack.ACTION_ACK`, value: the alert id), or a ✅ reaction
on its message (Socket Mode, `listener.slack_socket`).

Slack interactions reach listener two ways, both ending in `SlackInteractions.handle_payload`,
which takes the decoded block_actions payload:

- POST /slack/actions on the daemon's HTTP port, handled by `SlackActions.handle`:
  1. verify Slack's signature (slack_sdk's `SignatureVerifier`: the HMAC-SHA256 of
     'v0:<timestamp>:<body>' with the signing secret, the timestamp at most 5 minutes off):
     401 when it is missing, wrong or stale;
  2. decode the form-encoded `payload` (`parse_form`): 400 when it is not a JSON object;
  3. `handle_payload`, below;
- Socket Mode (`listener.slack_socket.SlackSocket`): an "interactive" envelope's payload goes to
  `handle_payload`, a ✅ `reaction_added` event to `acknowledge_message`.

`handle_payload` reads the click (`read_click`): 400 when it is a block_actions payload without a
user or with a control value that is not ours to read; 200 and nothing more for other payloads
and for actions that are neither feedback nor 'Acknowledge' (Slack also reports clicks on the
'Open post' link button). Then, by the Slack user id from the payload, via "slack":

- feedback is `record`ed;
- 'Acknowledge' is `Store.acknowledge(alert id)`: the alert's conversation (its root alert) is
  acknowledged, and a second acknowledgement keeps the first one's name.

It answers at once; then, on a worker thread, `chat.update` re-renders the clicked message with
`listener.notify.slack.build_blocks(alert, judged, progress)` (`update_message`): the newest
feedback ("Marked not relevant by <@U123>", the controls showing the choice) and the alert's
progress (follow-ups delivered to that receiver, who acknowledged it), so one never hides the
other. When the click could not be recorded (an alert this database does not have),
`chat.postEphemeral` tells the person who clicked why. An acknowledgement also re-renders the
root alert's message when it was given on a follow-up's.

Slack wants its answer within 3 seconds and ignores the body of a block_actions reply, so the Web
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
from typing import TYPE_CHECKING, Any, Literal
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
    "SlackInteractions",
    "UnknownAlert",
    "parse_click",
    "parse_form",
    "read_click",
    "record",
    "slack_actions",
    "slack_client",
    "slack_error",
    "split_ref",
    "update_message",
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


# --- Slack: reading interactions ----------------------------------------------------------------


class BadPayload(Exception):
    """A signed request whose body is not a block_actions payload we can read."""


@dataclass(frozen=True, slots=True)
class Click:
    """One click on an alert's controls, from Slack's payload: feedback (`verdict` set) or
    'Acknowledge' (`kind` "ack", no verdict)."""

    alert_id: int
    verdict: str | None  # None for an acknowledgement
    branch: str | None
    user: str  # the Slack user id
    channel: str | None  # where the message is, for chat.update
    message_ts: str | None
    kind: Literal["feedback", "ack"] = "feedback"


def parse_form(body: bytes) -> dict[str, Any]:
    """The JSON object in the `payload` field of a form-encoded interaction body; `BadPayload`
    when there is none."""
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
    return data


def parse_click(body: bytes) -> Click | None:
    """The click in a form-encoded interaction body (`parse_form`, then `read_click`)."""
    return read_click(parse_form(body))


def read_click(data: Mapping[str, Any]) -> Click | None:
    """The feedback or 'Acknowledge' click in a decoded interaction payload; None for an
    interaction that is neither; `BadPayload` for a block_actions payload we cannot read."""
    from listener.notify.slack import (
        ACTION_ACK,
        ACTION_NOT_RELEVANT,
        ACTION_RELEVANT,
        ACTION_WRONG_BRANCH,
        USER_ID,
        read_choice,
    )

    if data.get("type") != "block_actions":
        return None
    user = _get(data, "user", "id")
    if not isinstance(user, str) or not USER_ID.match(user):
        raise BadPayload("the payload has no user id")
    actions = data.get("actions")
    ours = (ACTION_NOT_RELEVANT, ACTION_RELEVANT, ACTION_WRONG_BRANCH, ACTION_ACK)
    if not isinstance(actions, list):
        raise BadPayload("the payload has no actions")
    found = [a for a in actions if isinstance(a, dict) and a.get("action_id") in ours]
    if not found:
        return None  # 'Open post', or a control of another app's
    action = found[0]
    branch = None
    verdict: str | None
    if action["action_id"] == ACTION_WRONG_BRANCH:
        verdict = "wrong-branch"
        value = _get(action, "selected_option", "value")
        try:
            alert_id, branch = read_choice(value if isinstance(value, str) else "")
        except ValueError:
            raise BadPayload("the selected option is not an alert:branch choice") from None
    else:
        verdict = {ACTION_NOT_RELEVANT: "not-relevant", ACTION_RELEVANT: "relevant"}.get(
            action["action_id"]
        )
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
        kind="ack" if verdict is None else "feedback",
    )


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def split_ref(ref: str) -> tuple[str, str] | None:
    """(channel, ts) of a Slack delivery's reference "C123:1700000000.000100"; None otherwise."""
    channel, sep, ts = ref.partition(" ")[0].rpartition(":")
    if not sep or not channel or not ts:
        return None
    return channel, ts


# --- Slack: re-rendering a message --------------------------------------------------------------


def slack_client(config: Config, env: Mapping[str, str]) -> WebClient | None:
    """A WebClient for the Web API calls after a click or an acknowledgement: `[slack]`'s
    base_url and timeout, the bot token from its `token_env`; None without either."""
    settings = config.main.slack
    if settings is None:
        return None
    token = env.get(settings.token_env, "").strip()
    if not token:
        return None
    from listener.notify.slack import make_client

    return make_client(token, settings.base_url, settings.timeout.total_seconds())


def update_message(store: Store, client: WebClient, alert_id: int, channel: str, ts: str) -> bool:
    """`chat.update` the Slack message `channel`/`ts` of alert `alert_id` as it stands now: its
    newest feedback and its progress (follow-ups delivered to the receiver that sent that message,
    who acknowledged it). False when the alert has no stored message to render; Slack's errors
    are raised (`SlackApiError`, `SlackClientError`, `OSError`)."""
    from listener.notify.slack import alert_metadata, build_blocks, fallback_text

    alert = store.alert(alert_id)
    if alert is None or not alert.message:
        return False
    message = AlertMessage.from_json(alert.message)
    found = store.alert_for_ref(f"{channel}:{ts}")
    receiver = found[1] if found is not None and found[0] == alert_id else None
    judged = store.latest_feedback(alert_id)
    progress = store.progress(alert_id, receiver)
    extra: dict[str, Any] = {}
    if receiver is not None:  # sent again, so the idempotency lookup still finds the message
        extra["metadata"] = alert_metadata(message, receiver)
    client.chat_update(
        channel=channel,
        ts=ts,
        text=fallback_text(message),
        blocks=build_blocks(message, judged, progress),
        **extra,
    )
    return True


# --- Slack: acting on interactions --------------------------------------------------------------


class SlackInteractions:
    """Clicks and ✅ reactions, from POST /slack/actions or Socket Mode; see the module
    docstring. `client` is a WebClient made like the notifier's (`slack_client`), or None when
    there is no bot token: clicks and acknowledgements are then recorded but messages not updated.
    The methods run on server or socket threads, several at once; the store serialises writes."""

    def __init__(
        self,
        store: Store,
        organisations: Mapping[str, Organisation],
        client: WebClient | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._organisations = organisations
        self._client = client
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-feedback")

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}(updates={'on' if self._client else 'off'})"

    def close(self) -> None:
        """Wait for the Slack calls still queued; then stop the worker."""
        self._worker.shutdown(wait=True)

    def handle_payload(self, data: Mapping[str, Any]) -> Reply:
        """Act on a decoded interaction payload; (HTTP status, JSON body) to answer with."""
        try:
            click = read_click(data)
        except BadPayload as exc:
            log.info("slack actions: rejected a payload: %s", exc)
            return 400, {"error": str(exc)}
        if click is None:
            return 200, {}
        if click.kind == "ack":
            return self._acknowledge(click)
        return self._feedback(click)

    def _feedback(self, click: Click) -> Reply:
        assert click.verdict is not None
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
        self._refresh_clicked(click)
        return 200, {"ok": True}

    def _acknowledge(self, click: Click) -> Reply:
        try:
            if not 0 < click.alert_id < 2**63:  # SQLite's integers
                raise KeyError(click.alert_id)
            ack, new = self._store.acknowledge(
                click.alert_id, by=click.user, via="slack", now=self._clock()
            )
        except KeyError:
            reason = f"there is no alert {click.alert_id}"
            log.info("slack actions: acknowledgement by %s not recorded: %s", click.user, reason)
            self._later(
                "chat.postEphemeral",
                self._tell,
                click,
                f"listener could not record that: {reason}.",
            )
            return 200, {"ok": False, "error": reason}
        self._log_ack(click.alert_id, ack.alert_id, ack.by, new, click.user)
        self._refresh_clicked(click)
        if ack.alert_id != click.alert_id:  # a follow-up's button: the root's message too
            found = (
                self._store.alert_for_ref(f"{click.channel}:{click.message_ts}")
                if click.channel and click.message_ts
                else None
            )
            if found is not None:
                self._refresh_delivered(ack.alert_id, found[1])
        return 200, {"ok": True}

    def acknowledge_message(self, channel: str, ts: str, user: str) -> bool:
        """A check-mark reaction by `user` on the Slack message `channel`/`ts`: acknowledge the
        conversation of the alert that message is, then re-render the conversation's root message
        (the one in the channel). False when the message is not an alert of this database's."""
        found = self._store.alert_for_ref(f"{channel}:{ts}")
        if found is None:
            log.info("slack reactions: a check mark on a message that is not one of our alerts")
            return False
        alert_id, receiver = found
        try:
            ack, new = self._store.acknowledge(alert_id, by=user, via="slack", now=self._clock())
        except KeyError:  # deleted since we looked
            return False
        self._log_ack(alert_id, ack.alert_id, ack.by, new, user)
        self._refresh_delivered(ack.alert_id, receiver)
        return True

    @staticmethod
    def _log_ack(alert_id: int, root: int, first: str | None, new: bool, user: str) -> None:
        conversation = f" (conversation of alert {root})" if root != alert_id else ""
        if new:
            log.info("slack actions: alert %d%s acknowledged by %s", alert_id, conversation, user)
        else:
            log.info(
                "slack actions: alert %d%s was already acknowledged by %s",
                alert_id,
                conversation,
                first or "someone",
            )

    def _refresh_clicked(self, click: Click) -> None:
        if click.channel is None or click.message_ts is None:
            log.info("slack actions: alert %d: no message to update", click.alert_id)
            return
        self._later("chat.update", self._update, click.alert_id, click.channel, click.message_ts)

    def _refresh_delivered(self, alert_id: int, receiver: str) -> None:
        ref = self._store.delivery_ref(alert_id, receiver)
        where = split_ref(ref) if ref else None
        if where is None:
            log.info("slack actions: alert %d has no Slack message to update", alert_id)
            return
        self._later("chat.update", self._update, alert_id, *where)

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
            log.warning("slack actions: %s failed: %s", call, slack_error(exc))
        except (SlackClientError, OSError, http.client.HTTPException) as exc:
            log.warning("slack actions: %s failed: %s", call, type(exc).__name__)
        except Exception as exc:  # a bug: the traceback, still without the message
            trace = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            log.error("slack actions: %s crashed: %s\n%s", call, type(exc).__name__, trace)

    def _update(self, alert_id: int, channel: str, ts: str) -> None:
        """chat.update: the message as it was, with its feedback and progress."""
        assert self._client is not None
        if not update_message(self._store, self._client, alert_id, channel, ts):
            log.info("slack actions: alert %d: no message to update", alert_id)

    def _tell(self, click: Click, text: str) -> None:
        """chat.postEphemeral: only the person who clicked sees why nothing was recorded."""
        from listener.notify.slack import escape_mrkdwn

        if click.channel is None:
            return
        assert self._client is not None
        self._client.chat_postEphemeral(
            channel=click.channel, user=click.user, text=escape_mrkdwn(text)
        )


def slack_error(exc: Exception) -> str:
    """Slack's error code of a `SlackApiError` ("message_not_found", or "HTTP 503"), never its
    message (which could quote the request)."""
    response = getattr(exc, "response", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error or f"HTTP {getattr(response, 'status_code', '?')}")


class SlackActions(SlackInteractions):
    """The handler of POST /slack/actions: Slack's signature checked, then `handle_payload`."""

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

        super().__init__(store, organisations, client, clock=clock)
        self._verifier = SignatureVerifier(signing_secret)

    def __repr__(self) -> str:  # never the secret or the token
        return f"SlackActions(secret=set, updates={'on' if self._client else 'off'})"

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if method.upper() != "POST":
            return 405, {"error": "/slack/actions takes POST"}
        if not self._verified(headers, body):
            log.warning("slack actions: refused a request without a valid Slack signature")
            return 401, {"error": "unauthorized: no valid X-Slack-Signature"}
        try:
            data = parse_form(body)
        except BadPayload as exc:
            log.info("slack actions: rejected %d bytes: %s", len(body), exc)
            return 400, {"error": str(exc)}
        return self.handle_payload(data)

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        try:
            return self._verifier.is_valid_request(body, dict(headers.items()))
        except (ValueError, UnicodeDecodeError):  # a timestamp that is not a number, bad UTF-8
            return False


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
    client = slack_client(config, env)
    if client is None:
        log.warning(
            "Slack feedback: clicks are recorded, but messages are not updated: %s is not set",
            settings.token_env,
        )
    return SlackActions(secret, store, config.organisations, client, clock=clock)
