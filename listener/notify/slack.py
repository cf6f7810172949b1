"""Slack notifier: one `chat.postMessage` per alert, with Block Kit blocks and alert metadata.

Bot scopes: `chat:write` (post, update); `channels:history` and `groups:history` (find_sent
reads the channel, public or private); `channels:read` and `groups:read` (find_sent turns a
channel name like "#webcare" into its id; not needed when the receiver's channel is an id);
`reactions:read` for ✅ acknowledgements.

Untrusted text (post, author, location, evidence) cannot mention anyone or make a link:
- the post text and the author line are `plain_text` objects, which Slack never parses;
- every `mrkdwn` string (the fallback `text`, "why it matched") goes through `escape_mrkdwn`,
  which turns `& < >` into entities (so no `<!channel>`, `<@U…>` or `<url|label>` can form) and
  puts a zero-width space after the `@` of a bare @here/@channel/@everyone.

Errors are classified in one place (`SlackNotifier._try`, for every Web API call): HTTP 429/5xx,
network errors and Slack errors such as `ratelimited` or `internal_error` are transient; bad
tokens, unknown channels or threads or messages, missing scopes, invalid blocks and other 4xx
are permanent. slack-sdk's own retries are switched off (`retry_handlers=[]`):
the outbox owns retrying, and a 429's Retry-After goes back to it in `TransportError.retry_after`.
The token lives only in the `WebClient`; repr and error messages show `xoxb-…abcd` at most.

Feedback controls sit beside 'Open post' on alerts that take feedback (`branch_choices` is not
None): a 'Not relevant' button (value: the alert id) and a 'Wrong branch…' select whose options
are the organisation's other branches and 'No particular branch' (value: `choice_value`).
`listener.feedback` receives the clicks and re-renders the message with `build_blocks(alert,
judged)`: a line saying who marked it what, and controls that show the choice ('Relevant after
all' to undo 'Not relevant'; the chosen branch preselected). Branch names are config text but
are treated like post text: option labels are plain_text, the 'marked' line escapes them.

Every message carries metadata: event_type "listener_alert" with `alert_id`, `key`
(`idempotency_key(alert_id, receiver id)`) and, for a follow-up, `parent_alert_id`; a digest
"listener_digest" with `digest_id` and its `key`. `find_sent(alert)` (and `find_sent_digest`)
looks the key up before the outbox re-sends after an attempt whose outcome is unknown (a
timeout, a crash mid-send): among the channel's newest 100 messages (`conversations.history`
with `include_all_metadata`) and, for a follow-up that goes into a thread, that thread
(`conversations.replies`), and answers the "channel:ts" of the oldest match or None. A channel
configured by name is resolved to its id once (the answer to a post, or `conversations.list`)
and cached. A transient failure raises TransportError (outcome still unknown); a permanent one
(no scope to read, a channel the bot cannot see) is logged as a warning once per notifier and
answers None, so the alert is posted: delivery stays at least once.

Alerts (incidents too) carry an 'Acknowledge' button (`ACTION_ACK`, value: the alert id,
primary) until someone acknowledged them. `update_parent(parent, ref, progress, judged)`
re-renders a sent message with `chat.update` and `build_blocks(parent, judged, progress)`: the
header gains '· 3 follow-ups' and '· now CRITICAL' when a follow-up was more urgent, and an
acknowledged alert loses the button and says '✅ Acknowledged by <@U123>' (a mention only for a
Slack user id acknowledged via Slack; any other name is escaped).

A digest (`send_digest`, blocks by `digest_blocks`, shared with the incoming-webhook notifier)
is one message: the title, when the alerts were held, then the oldest 45 alerts in order (each
a plain_text section: level, where, the start of the post, the author; an 'Open' link button),
then 'and N more alerts: 2 high, 5 normal', within Slack's 50 blocks.

A follow-up (`alert.follow_up`) whose parent reached this receiver is posted in the parent's
thread (`thread_ts` from the parent's "channel:ts"), and also to the channel when it is more
urgent than the parent and at least high (`reply_broadcast`); without the parent's ts it is a
message of its own that says which alert it follows. An incident (`alert.incident`) names its
posts, each in a plain_text section with an 'Open' button for its link.
"""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from rich.console import Console
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.web import SlackResponse

from listener.alert import AlertMessage, Digest, Progress
from listener.config.model import LEVELS, MainFile, Receiver
from listener.notify import (
    NotifierUnavailable,
    TransportError,
    follow_up_line,
    headline,
    idempotency_key,
    mask_secret,
    scrub,
    secret_from_env,
)

if TYPE_CHECKING:
    from listener.store import FeedbackRow

log = logging.getLogger(__name__)

HEADER_MAX = 150  # Slack: header text
SECTION_MAX = 2900  # Slack: 3000 for section text, with room to spare
CONTEXT_MAX = 1900  # Slack: 2000 per context element
FALLBACK_POST_MAX = 3000  # notification text; Slack cuts `text` at 40k, shows far less
URL_MAX = 3000  # Slack: button url
OPTION_TEXT_MAX = 75  # Slack: option text
OPTION_VALUE_MAX = 150  # Slack: option value
DEFAULT_RETRY_AFTER = 30.0
INCIDENT_POSTS_SHOWN = 40  # Slack: at most 50 blocks a message
DIGEST_ALERTS_SHOWN = 45  # Slack: at most 50 blocks a message (header, context, 'and N more')
DIGEST_POST_MAX = 500  # a digest shows the start of each post
DIGEST_LINE_MAX = 300  # ... and of its headline and author line
HISTORY_LIMIT = 100  # find_sent: how many of the channel's newest messages it reads
CHANNEL_PAGES_MAX = 200  # conversations.list pages read to find a channel's id by its name
EVENT_ALERT = "listener_alert"  # message metadata event_type of an alert
EVENT_DIGEST = "listener_digest"  # ... and of a digest
_TS = re.compile(r"^\d+\.\d+$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")  # a channel id, as opposed to a name

# ok:false errors that will fail the same way next time: fix the config, token or app instead.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
        "ekm_access_denied",
        "not_allowed_token_type",
        "thread_not_found",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)

_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")  # a Slack user id, safe inside <@…>

# The feedback controls' action ids (listener.feedback reads them back).
ACTION_NOT_RELEVANT = "feedback_not_relevant"
ACTION_RELEVANT = "feedback_relevant"
ACTION_WRONG_BRANCH = "feedback_wrong_branch"
ACTION_ACK = "acknowledge"  # the 'Acknowledge' button (value: the alert id)
NO_BRANCH_LABEL = "No particular branch"


def choice_value(alert_id: int, branch_id: str | None) -> str:
    """A 'Wrong branch…' option's value: '42:leusden', or '42:' for no particular branch."""
    return f"{alert_id}:{branch_id or ''}"


def read_choice(value: str) -> tuple[int, str | None]:
    """(alert id, branch id or None) from `choice_value`'s form; ValueError for anything else."""
    alert, sep, branch = value.partition(":")
    if not sep or not alert.isascii() or not alert.isdigit():
        raise ValueError(f"not an alert:branch choice: {value!r}")
    return int(alert), branch or None


def make_client(token: str, base_url: str, timeout: float) -> WebClient:
    """A WebClient as listener uses it: our base_url and timeout, no retries of its own."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,  # type: ignore[arg-type]  # urllib takes float seconds
        retry_handlers=[],
    )


def escape_mrkdwn(text: str) -> str:
    """Make untrusted text safe inside Slack mrkdwn: no mentions, no links, no broadcasts."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b\\1", text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters with an ellipsis, never inside an `&…;` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


class SlackNotifier:
    """Posts alerts and digests to one Slack channel with a bot token."""

    def __init__(
        self,
        token: str,
        channel: str,
        base_url: str,
        timeout: float,
        receiver_id: str = "slack",
    ) -> None:
        self.channel = channel
        self.base_url = base_url
        self.receiver_id = receiver_id
        self._masked_token = mask_secret(token)
        self._client = make_client(token, base_url, timeout)
        self._channel_id: str | None = channel if CHANNEL_ID.match(channel) else None
        self._lookup_warned = False

    @classmethod
    def from_receiver(
        cls,
        receiver: Receiver,
        main: MainFile,
        *,
        templates_dir: Path,
        env: Mapping[str, str],
        console: Console | None = None,
    ) -> SlackNotifier:
        settings = main.slack
        inactive = f"slack receiver {receiver.id!r} inactive"
        if settings is None:
            raise NotifierUnavailable(f"{inactive}: config.toml has no [slack] section")
        token = secret_from_env(env, settings.token_env, inactive)
        assert receiver.channel is not None  # Receiver's validator requires it for slack
        return cls(
            token=token,
            channel=receiver.channel,
            base_url=settings.base_url,
            timeout=settings.timeout.total_seconds(),
            receiver_id=receiver.id,
        )

    def __repr__(self) -> str:
        return (
            f"SlackNotifier(channel={self.channel!r}, receiver_id={self.receiver_id!r}, "
            f"base_url={self.base_url!r}, token={self._masked_token!r})"
        )

    def send(self, alert: AlertMessage) -> str | None:
        where = f"slack chat.postMessage to {self.channel}"
        channel, thread = self.channel, thread_of(alert)
        extra: dict[str, Any] = {}
        if thread is not None:
            channel, extra["thread_ts"] = thread
            if broadcast(alert):
                extra["reply_broadcast"] = True
        response = self._call(
            where,
            self._client.chat_postMessage,
            channel=channel,
            text=fallback_text(alert),
            blocks=build_blocks(alert),
            metadata=alert_metadata(alert, self.receiver_id),
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        return self._reference(response, channel)

    def send_digest(self, digest: Digest) -> str | None:
        """One message for the digest's alerts; metadata "listener_digest" with its key."""
        where = f"slack chat.postMessage of digest #{digest.digest_id} to {self.channel}"
        response = self._call(
            where,
            self._client.chat_postMessage,
            channel=self.channel,
            text=digest_fallback_text(digest),
            blocks=digest_blocks(digest),
            metadata=digest_metadata(digest, self.receiver_id),
            unfurl_links=False,
            unfurl_media=False,
        )
        return self._reference(response, self.channel)

    def update_parent(
        self,
        parent: AlertMessage,
        ref: str,
        progress: Progress,
        judged: FeedbackRow | None = None,
    ) -> None:
        """Re-render the message `ref` ("channel:ts") of `parent` with its progress (follow-ups,
        acknowledgement) and, when given, the newest feedback; errors as in `send`."""
        channel, ts = _parse_ref(ref)
        where = f"slack chat.update of {clip(ref, 100)}"
        if not channel or not _TS.match(ts):
            raise TransportError(f"{where}: not a Slack message reference", permanent=True)
        self._call(
            where,
            self._client.chat_update,
            channel=channel,
            ts=ts,
            text=fallback_text(parent),
            blocks=build_blocks(parent, judged, progress),
            metadata=alert_metadata(parent, self.receiver_id),
        )

    def find_sent(self, alert: AlertMessage) -> str | None:
        """The "channel:ts" of a message this receiver already posted for the alert (its metadata
        key), or None: among the channel's newest HISTORY_LIMIT messages and, for a follow-up
        that goes into a thread, that thread. A permanent failure to look (a missing scope)
        is logged once and answers None, so the alert is posted (at least once); a transient
        one raises TransportError."""
        key = idempotency_key(alert.alert_id, self.receiver_id)
        return self._find(EVENT_ALERT, key, thread_of(alert))

    def find_sent_digest(self, digest: Digest) -> str | None:
        """`find_sent` for a digest message (top-level in the channel, never in a thread)."""
        key = idempotency_key(digest.digest_id, self.receiver_id, digest=True)
        return self._find(EVENT_DIGEST, key, None)

    def _find(self, event_type: str, key: str, thread: tuple[str, str] | None) -> str | None:
        try:
            channel = self._resolve_channel()
            if channel is not None:
                response = self._call(
                    f"slack conversations.history of {self.channel}",
                    self._client.conversations_history,
                    channel=channel,
                    limit=HISTORY_LIMIT,
                    include_all_metadata=True,
                )
                ts = _ts_with_key(response.get("messages"), event_type, key)
                if ts is not None:
                    return f"{channel}:{ts}"
            if thread is not None:
                thread_channel, thread_ts = thread
                replies = self._try(
                    f"slack conversations.replies of {thread_channel}:{thread_ts}",
                    self._client.conversations_replies,
                    frozenset({"thread_not_found"}),  # the parent is gone: nothing in it
                    channel=thread_channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                )
                if replies is not None:
                    ts = _ts_with_key(replies.get("messages"), event_type, key)
                    if ts is not None:
                        return f"{thread_channel}:{ts}"
        except TransportError as exc:
            if not exc.permanent:
                raise
            self._cannot_look(exc.message)
        return None

    def _resolve_channel(self) -> str | None:
        """The channel's id: as configured, learnt from a post's answer, or looked up by name in
        conversations.list (cached); None when no channel the bot can see has that name."""
        if self._channel_id is not None:
            return self._channel_id
        name = self.channel.removeprefix("#")
        where = f"slack conversations.list looking for {self.channel}"
        cursor: str | None = None
        for _ in range(CHANNEL_PAGES_MAX):
            response = self._call(
                where,
                self._client.conversations_list,
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=200,
                cursor=cursor,
            )
            for item in response.get("channels") or []:
                if isinstance(item, dict) and item.get("name") == name:
                    found = item.get("id")
                    if isinstance(found, str) and CHANNEL_ID.match(found):
                        self._channel_id = found
                        return found
            metadata = response.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not cursor:
                break
        self._cannot_look(f"{where}: no channel the bot can see is called {name!r}")
        return None

    def _cannot_look(self, reason: str) -> None:
        """Warn once per notifier that find_sent cannot work, so a retry may post twice."""
        text = (
            f"{reason}; cannot check whether Slack already shows a message, so a retry after a "
            "lost answer may post it twice (the bot needs the scopes channels:history, "
            "groups:history, channels:read and groups:read)"
        )
        log.log(logging.DEBUG if self._lookup_warned else logging.WARNING, "%s", text)
        self._lookup_warned = True

    def _reference(self, response: SlackResponse, channel: str) -> str:
        """ "channel:ts" from chat.postMessage's answer; remembers the channel's id."""
        answered = response.get("channel")
        if channel == self.channel and isinstance(answered, str) and CHANNEL_ID.match(answered):
            self._channel_id = answered  # find_sent needs no conversations.list any more
        return f"{answered or channel}:{response.get('ts')}"

    def _call(
        self, where: str, method: Callable[..., SlackResponse], **kwargs: Any
    ) -> SlackResponse:
        """`method(**kwargs)`, with every failure as a TransportError."""
        response = self._try(where, method, frozenset(), **kwargs)
        assert response is not None
        return response

    def _try(
        self,
        where: str,
        method: Callable[..., SlackResponse],
        absent: frozenset[str],
        **kwargs: Any,
    ) -> SlackResponse | None:
        """`method(**kwargs)`; None for a Slack error in `absent`; others as TransportError."""
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if data.get("error") in absent:
                return None
            raise self._classify(where, exc) from None
        except SlackClientError as exc:  # bad base_url, blocks that fail validation
            message = self._scrub(f"{where}: {type(exc).__name__}: {exc}")
            raise TransportError(message, permanent=True) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, DNS
            reason = getattr(exc, "reason", None) or exc
            message = self._scrub(f"{where}: cannot reach {self.base_url}: {reason!s}")
            raise TransportError(message, permanent=False) from None

    def _classify(self, where: str, exc: SlackApiError) -> TransportError:
        response = exc.response
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        detail = _detail(data)
        message = self._scrub(clip(f"{where}: {error} (HTTP {status}){detail}", 500))
        if status == 429 or error == "ratelimited":
            retry_after = _retry_after(response.headers)
            return TransportError(
                f"{message}; retry after {retry_after:g}s", permanent=False, retry_after=retry_after
            )
        if status >= 500:
            return TransportError(message, permanent=False)
        if status != 200:
            return TransportError(message, permanent=True)
        return TransportError(message, permanent=error in PERMANENT_ERRORS)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._client.token)


def alert_metadata(alert: AlertMessage, receiver_id: str) -> dict[str, Any]:
    """The message metadata of an alert: its id, its idempotency key, its parent's id."""
    payload: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "key": idempotency_key(alert.alert_id, receiver_id),
    }
    if alert.follow_up is not None:
        payload["parent_alert_id"] = alert.follow_up.parent_alert_id
    return {"event_type": EVENT_ALERT, "event_payload": payload}


def digest_metadata(digest: Digest, receiver_id: str) -> dict[str, Any]:
    """The message metadata of a digest: its id and idempotency key."""
    key = idempotency_key(digest.digest_id, receiver_id, digest=True)
    return {
        "event_type": EVENT_DIGEST,
        "event_payload": {"digest_id": digest.digest_id, "key": key},
    }


def _parse_ref(ref: str) -> tuple[str, str]:
    """(channel, ts) of a "channel:ts" reference (anything after a space ignored)."""
    channel, _, ts = ref.partition(" ")[0].rpartition(":")
    return channel, ts


def _ts_with_key(messages: object, event_type: str, key: str) -> str | None:
    """The oldest message's ts whose metadata is `event_type` with this idempotency key."""
    found: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        metadata = message.get("metadata") if isinstance(message, dict) else None
        if not isinstance(metadata, dict) or metadata.get("event_type") != event_type:
            continue
        payload = metadata.get("event_payload")
        ts = message.get("ts")
        if isinstance(payload, dict) and payload.get("key") == key and _is_ts(ts):
            found.append(ts)
    return min(found, key=lambda ts: tuple(int(part) for part in ts.split("."))) if found else None


def _is_ts(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _TS.match(value) is not None


def _detail(data: dict[str, Any]) -> str:
    """Slack's explanation for invalid_blocks and friends, if it sent one."""
    metadata = data.get("response_metadata")
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(messages, list) and messages:
        return ": " + "; ".join(str(m) for m in messages[:3])
    if data.get("needed"):  # missing_scope
        return f": the bot needs the scope {data['needed']}"
    return ""


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            if isinstance(value, list):
                value = value[0] if value else ""
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


# --- rendering ---------------------------------------------------------------------------------


def thread_of(alert: AlertMessage) -> tuple[str, str] | None:
    """(channel, thread ts) of a follow-up's parent message in this receiver, if it was sent."""
    follow = alert.follow_up
    if follow is None or not follow.parent_ref:
        return None
    channel, _, ts = follow.parent_ref.partition(" ")[0].rpartition(":")
    if not channel or not _TS.match(ts):
        return None
    return channel, ts


def broadcast(alert: AlertMessage) -> bool:
    """A follow-up more urgent than its parent, and at least high, is shown in the channel too;
    so is an escalation (nobody acknowledged the alert: the thread alone would go unseen)."""
    from listener.config.model import LEVELS

    follow = alert.follow_up
    if follow is not None and follow.kind == "escalation":
        return True
    if follow is None or alert.level not in ("critical", "high"):
        return False
    parent = follow.parent_level if follow.parent_level in LEVELS else "low"
    return LEVELS.index(alert.level) < LEVELS.index(parent)


def fallback_text(alert: AlertMessage) -> str:
    """The notification text: mrkdwn, so every part is escaped."""
    post = alert.post
    if alert.incident is not None:
        return escape_mrkdwn(f"{headline(alert)}: {alert.incident.summary}")
    who = _author_line(alert)
    body = clip(" ".join(post.text.split()), FALLBACK_POST_MAX) or "(no text)"
    text = f"{headline(alert)}: {body}"
    if who:
        text += f" — {who}"
    if alert.follow_up is not None:
        text = f"{follow_up_line(alert)} · {text}"
    return escape_mrkdwn(text)


def _incident_blocks(
    alert: AlertMessage, progress: Progress | None, interactive: bool
) -> list[Block]:
    """An incident: what the spike is, then each post (plain_text) with its link."""
    incident = alert.incident
    assert incident is not None
    blocks: list[Block] = [
        _header(alert, progress),
        SectionBlock(text=MarkdownTextObject(text=f"*{escape_mrkdwn(incident.summary)}*")),
    ]
    shown = incident.members[-INCIDENT_POSTS_SHOWN:]
    for index, member in enumerate(shown):
        when = member.created_at.replace("T", " ").replace("+00:00", " UTC")
        which = f"alert #{member.alert_id}" if member.alert_id else f"alert #{alert.alert_id}"
        text = f"{when} · {member.post_id} · {which}\n{member.text or '(no text)'}"
        blocks.append(
            SectionBlock(
                text=PlainTextObject(text=clip(text, SECTION_MAX), emoji=False),
                accessory=_link_button("Open", member.url, f"open_post_{index}"),
            )
        )
    hidden = len(incident.members) - len(shown)
    if hidden:
        more = f"and {hidden} earlier post(s)"
        blocks.append(ContextBlock(elements=[PlainTextObject(text=more, emoji=False)]))
    why = _why(alert)
    if why:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(why, SECTION_MAX))))
    if interactive and _takes_ack(alert, progress):
        blocks.append(ActionsBlock(elements=[_ack_button(alert)]))
    if progress is not None and progress.acknowledged:
        blocks.append(_acked_context(progress))
    return blocks


def build_blocks(
    alert: AlertMessage,
    judged: FeedbackRow | None = None,
    progress: Progress | None = None,
    *,
    interactive: bool = True,
) -> list[Block]:
    """The alert's blocks; with `judged` (the newest feedback), as updated after a click; with
    `progress`, as updated after follow-ups or an acknowledgement. `interactive=False` leaves
    out the controls that send clicks back (Acknowledge, feedback): for an incoming webhook."""
    post = alert.post
    if alert.incident is not None:
        return _incident_blocks(alert, progress, interactive)
    blocks: list[Block] = []
    if alert.follow_up is not None:
        follows: list[PlainTextObject | MarkdownTextObject] = [
            PlainTextObject(text=follow_up_line(alert), emoji=False)
        ]
        if alert.follow_up.parent_text and thread_of(alert) is None:  # not in the thread
            parent = clip(f"“{alert.follow_up.parent_text}”", CONTEXT_MAX)
            follows.append(PlainTextObject(text=parent, emoji=False))
        blocks.append(ContextBlock(elements=follows))
    blocks += [
        _header(alert, progress),
        # plain_text: Slack shows it verbatim, so the post cannot mention or link anything.
        SectionBlock(
            text=PlainTextObject(
                text=clip(post.text.strip(), SECTION_MAX) or "(no text)", emoji=False
            )
        ),
    ]

    context: list[PlainTextObject | MarkdownTextObject] = []
    who = _author_line(alert)
    if who:
        context.append(PlainTextObject(text=clip(who, CONTEXT_MAX), emoji=False))
    when = slack_date(post.created_at)
    facts = f"{escape_mrkdwn(clip(post.source, 100))} · {when} · score {alert.score:g}"
    context.append(MarkdownTextObject(text=facts))
    blocks.append(ContextBlock(elements=context))

    why = _why(alert)
    if why:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(why, SECTION_MAX))))

    actions: list[ButtonElement | StaticSelectElement] = []
    open_post = _link_button("Open post", post.url, "open_post")
    if open_post is not None:
        actions.append(open_post)
    elif post.url:
        link = escape_mrkdwn(clip(post.url, CONTEXT_MAX))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=link, verbatim=True)]))
    if interactive and _takes_ack(alert, progress):
        actions.append(_ack_button(alert))
    if interactive and alert.branch_choices is not None:
        actions += _feedback_controls(alert, judged)
    if actions:
        blocks.append(ActionsBlock(elements=actions))
    if judged is not None:
        line = MarkdownTextObject(text=clip(judged_line(alert, judged), CONTEXT_MAX))
        blocks.append(ContextBlock(elements=[line]))
    if progress is not None and progress.acknowledged:
        blocks.append(_acked_context(progress))
    return blocks


def slack_date(moment: datetime) -> str:
    """'<!date^1714564980^{date_short_pretty} {time}|2024-05-01 12:03 UTC>': shown in the
    reader's time zone, with UTC as the fallback (mrkdwn; only listener's own numbers)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{utc}>"


def _link_button(label: str, url: str | None, action_id: str) -> ButtonElement | None:
    """A button that opens `url`, when it is an http(s) URL Slack takes; else None."""
    if url and url.startswith(("https://", "http://")) and len(url) <= URL_MAX:
        return ButtonElement(text=label, url=url, action_id=action_id)
    return None


def _header(alert: AlertMessage, progress: Progress | None) -> HeaderBlock:
    """The headline, with '· 3 follow-ups · now CRITICAL' once its thread has follow-ups."""
    suffix = ""
    if progress is not None and progress.follow_ups > 0:
        count = progress.follow_ups
        suffix = f" · {count} follow-up{'' if count == 1 else 's'}"
        highest = progress.highest_level
        if highest is not None and _more_urgent(highest, alert.level):
            suffix += f" · now {highest.upper()}"
    text = clip(headline(alert), HEADER_MAX - len(suffix)) + suffix
    return HeaderBlock(text=PlainTextObject(text=text, emoji=True))


def _more_urgent(level: str, than: str) -> bool:
    """`level` comes before `than` in LEVELS (an unknown `than` counts as low)."""
    if level not in LEVELS:
        return False
    order: tuple[str, ...] = LEVELS
    return order.index(level) < order.index(than if than in order else "low")


def _takes_ack(alert: AlertMessage, progress: Progress | None) -> bool:
    """A real alert (id > 0) that nobody acknowledged yet gets the 'Acknowledge' button."""
    return alert.alert_id > 0 and not (progress is not None and progress.acknowledged)


def _ack_button(alert: AlertMessage) -> ButtonElement:
    return ButtonElement(
        text="Acknowledge", action_id=ACTION_ACK, value=str(alert.alert_id), style="primary"
    )


def acked_line(progress: Progress) -> str:
    """'✅ Acknowledged by <@U123>' as mrkdwn: only a well-formed Slack user id acknowledged
    via Slack may mention; any other name is escaped."""
    by = progress.acked_by
    if progress.acked_via == "slack" and by and USER_ID.match(by):
        who = f"<@{by}>"
    else:
        who = escape_mrkdwn(by or "someone")
    return f"✅ Acknowledged by {who}"


def _acked_context(progress: Progress) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(acked_line(progress), CONTEXT_MAX))])


# --- digests -----------------------------------------------------------------------------------


def digest_fallback_text(digest: Digest) -> str:
    """A digest's notification text: its title (mrkdwn, escaped)."""
    return escape_mrkdwn(digest.title)


def digest_blocks(digest: Digest) -> list[Block]:
    """A digest: its title, when the alerts were held, then the oldest DIGEST_ALERTS_SHOWN
    alerts in order (each one plain_text section with an 'Open' button for its post), then how
    many more there are per level."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(f"🗞 {digest.title}", HEADER_MAX), emoji=True)),
        ContextBlock(elements=_held(digest)),
    ]
    shown = digest.alerts[:DIGEST_ALERTS_SHOWN]
    for index, alert in enumerate(shown):
        blocks.append(
            SectionBlock(
                text=PlainTextObject(text=_digest_text(alert), emoji=False),
                accessory=_link_button("Open", alert.post.url, f"open_post_{index}"),
            )
        )
    rest = digest.alerts[DIGEST_ALERTS_SHOWN:]
    if rest:
        counts: dict[str, int] = {}
        for alert in rest:
            counts[alert.level] = counts.get(alert.level, 0) + 1
        order: list[str] = [level for level in LEVELS if level in counts]
        order += sorted(level for level in counts if level not in LEVELS)
        per_level = ", ".join(f"{counts[level]} {level}" for level in order)
        noun = "alert" if len(rest) == 1 else "alerts"
        more = clip(f"and {len(rest)} more {noun}: {per_level}", CONTEXT_MAX)
        blocks.append(ContextBlock(elements=[PlainTextObject(text=more, emoji=False)]))
    return blocks


def _digest_text(alert: AlertMessage) -> str:
    """'🟠 HIGH · where\\n<the post, cut>\\n— <author line>': plain_text, never parsed."""
    first = headline(alert)
    if alert.follow_up is not None:
        first += f" · {follow_up_line(alert)}"
    lines = [clip(first, DIGEST_LINE_MAX)]
    if alert.incident is not None:
        lines.append(alert.incident.summary)
    else:
        lines.append(clip(" ".join(alert.post.text.split()), DIGEST_POST_MAX) or "(no text)")
        who = _author_line(alert)
        if who:
            lines.append(f"— {clip(who, DIGEST_LINE_MAX)}")
    return clip("\n".join(lines), SECTION_MAX)


def _held(digest: Digest) -> list[PlainTextObject | MarkdownTextObject]:
    """'Held from <date> to <date>' (mrkdwn: Slack's date tokens) and the route (plain_text:
    config text, never parsed); times that are not ISO 8601 are shown as written, plain_text."""
    route = PlainTextObject(text=f"route {clip(digest.route, 100)}", emoji=False)
    try:
        start = slack_date(datetime.fromisoformat(digest.opened_at))
        end = slack_date(datetime.fromisoformat(digest.due_at))
    except ValueError:
        held = f"Held from {clip(digest.opened_at, 100)} to {clip(digest.due_at, 100)}"
        return [PlainTextObject(text=held, emoji=False), route]
    return [MarkdownTextObject(text=f"Held from {start} to {end}"), route]


def _feedback_controls(
    alert: AlertMessage, judged: FeedbackRow | None
) -> list[ButtonElement | StaticSelectElement]:
    """'Not relevant' (or 'Relevant after all' once so marked) and the 'Wrong branch…' select."""
    verdict = judged.verdict if judged is not None else None
    if verdict == "not-relevant":
        button = ButtonElement(
            text="Relevant after all", action_id=ACTION_RELEVANT, value=str(alert.alert_id)
        )
    else:
        button = ButtonElement(
            text="Not relevant", action_id=ACTION_NOT_RELEVANT, value=str(alert.alert_id)
        )
    options: list[Option] = []
    if alert.branch_id is not None:  # for a branch-less alert, 'no branch' is what it said
        options.append(_option(choice_value(alert.alert_id, None), NO_BRANCH_LABEL))
    for choice in alert.branch_choices or []:
        value = choice_value(alert.alert_id, choice.id)
        if len(value) <= OPTION_VALUE_MAX:
            options.append(_option(value, choice.name))
    if not options:  # an organisation with one branch, or none: nothing else to choose
        return [button]
    chosen = None
    if judged is not None and verdict == "wrong-branch":
        chosen = choice_value(alert.alert_id, judged.branch)
    select = StaticSelectElement(
        placeholder=PlainTextObject(text="Wrong branch…", emoji=False),
        action_id=ACTION_WRONG_BRANCH,
        options=options,
        initial_option=next((o for o in options if o.value == chosen), None),
    )
    return [button, select]


def _option(value: str, label: str) -> Option:
    # plain_text: a branch name like '<!channel>' is shown as written, never parsed
    return Option(value=value, text=PlainTextObject(text=clip(label, OPTION_TEXT_MAX), emoji=False))


def judged_line(alert: AlertMessage, judged: FeedbackRow) -> str:
    """'Marked not relevant by <@U123>' as mrkdwn: only a well-formed Slack user id may mention;
    everything else (a local user name, a branch name) is escaped."""
    if judged.via == "slack" and judged.by and USER_ID.match(judged.by):
        who = f"<@{judged.by}>"
    else:
        who = escape_mrkdwn(judged.by or "someone")
    if judged.verdict == "wrong-branch":
        if judged.branch is None:
            where = "the organisation, no particular branch"
        else:
            names = {c.id: c.name for c in alert.branch_choices or []}
            where = names.get(judged.branch, judged.branch)
        return f"Marked wrong branch by {who}: it is about {escape_mrkdwn(where)}"
    return f"Marked {escape_mrkdwn(judged.verdict.replace('-', ' '))} by {who}"


def _author_line(alert: AlertMessage) -> str:
    """'Jan Jansen (@jan) · 1,234 followers · Amersfoort', unescaped."""
    author = alert.post.author
    if author is None:
        return ""
    parts = []
    if author.name and author.handle:
        parts.append(f"{author.name} (@{author.handle.lstrip('@')})")
    elif author.name or author.handle:
        parts.append(author.name or f"@{(author.handle or '').lstrip('@')}")
    if author.followers is not None:
        parts.append(f"{author.followers:,} followers")
    if author.location:
        parts.append(f"📍 {author.location}")
    return " · ".join(parts)


def _why(alert: AlertMessage) -> str:
    """'Why it matched' and urgency reasons as escaped mrkdwn."""
    lines: list[str] = []
    if alert.evidence:
        lines.append("*Why it matched*")
        lines += [f"• {escape_mrkdwn(item)}" for item in alert.evidence]
    if alert.reasons:
        lines.append("*Urgency*")
        lines += [f"• {escape_mrkdwn(item)}" for item in alert.reasons]
    if alert.labels:
        lines.append(f"*Labels:* {escape_mrkdwn(', '.join(alert.labels))}")
    if alert.distance_km is not None:
        lines.append(f"*Distance:* {alert.distance_km:.1f} km")
    return "\n".join(lines)
