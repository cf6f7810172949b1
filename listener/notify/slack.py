"""Slack notifier: one `chat.postMessage` per alert, with Block Kit blocks and alert metadata.

Untrusted text (post, author, location, evidence) cannot mention anyone or make a link:
- the post text and the author line are `plain_text` objects, which Slack never parses;
- every `mrkdwn` string (the fallback `text`, "why it matched") goes through `escape_mrkdwn`,
  which turns `& < >` into entities (so no `<!channel>`, `<@U…>` or `<url|label>` can form) and
  puts a zero-width space after the `@` of a bare @here/@channel/@everyone.

Errors are classified once, in `SlackNotifier.send`: HTTP 429/5xx, network errors and Slack errors
such as `ratelimited` or `internal_error` are transient; bad tokens, unknown channels, invalid
blocks and other 4xx are permanent. slack-sdk's own retries are switched off (`retry_handlers=[]`):
the outbox owns retrying, and a 429's Retry-After goes back to it in `TransportError.retry_after`.
The token lives only in the `WebClient`; repr and error messages show `xoxb-…abcd` at most.

Feedback controls sit beside 'Open post' on alerts that take feedback (`branch_choices` is not
None): a 'Not relevant' button (value: the alert id) and a 'Wrong branch…' select whose options
are the organisation's other branches and 'No particular branch' (value: `choice_value`).
`listener.feedback` receives the clicks and re-renders the message with `build_blocks(alert,
judged)`: a line saying who marked it what, and controls that show the choice ('Relevant after
all' to undo 'Not relevant'; the chosen branch preselected). Branch names are config text but
are treated like post text: option labels are plain_text, the 'marked' line escapes them.

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
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from listener.alert import AlertMessage, Progress
from listener.config.model import MainFile, Receiver
from listener.notify import (
    NotifierUnavailable,
    TransportError,
    follow_up_line,
    headline,
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
_TS = re.compile(r"^\d+\.\d+$")

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
    """Posts alerts to one Slack channel with a bot token."""

    def __init__(self, token: str, channel: str, base_url: str, timeout: float) -> None:
        self.channel = channel
        self.base_url = base_url
        self._masked_token = mask_secret(token)
        self._client = make_client(token, base_url, timeout)

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
        )

    def __repr__(self) -> str:
        return (
            f"SlackNotifier(channel={self.channel!r}, base_url={self.base_url!r}, "
            f"token={self._masked_token!r})"
        )

    def send(self, alert: AlertMessage) -> str | None:
        where = f"slack chat.postMessage to {self.channel}"
        channel, thread = self.channel, thread_of(alert)
        payload: dict[str, Any] = {"alert_id": alert.alert_id}
        extra: dict[str, Any] = {}
        if alert.follow_up is not None:
            payload["parent_alert_id"] = alert.follow_up.parent_alert_id
        if thread is not None:
            channel, extra["thread_ts"] = thread
            if broadcast(alert):
                extra["reply_broadcast"] = True
        try:
            response = self._client.chat_postMessage(
                channel=channel,
                text=fallback_text(alert),
                blocks=build_blocks(alert),
                metadata={"event_type": "listener_alert", "event_payload": payload},
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            )
        except SlackApiError as exc:
            raise self._classify(where, exc) from None
        except SlackClientError as exc:  # bad base_url, blocks that fail validation
            message = self._scrub(f"{where}: {type(exc).__name__}: {exc}")
            raise TransportError(message, permanent=True) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, DNS
            reason = getattr(exc, "reason", None) or exc
            message = self._scrub(f"{where}: cannot reach {self.base_url}: {reason!s}")
            raise TransportError(message, permanent=False) from None
        return f"{response.get('channel', self.channel)}:{response.get('ts')}"

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


def _detail(data: dict[str, Any]) -> str:
    """Slack's explanation for invalid_blocks and friends, if it sent one."""
    metadata = data.get("response_metadata")
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(messages, list) and messages:
        return ": " + "; ".join(str(m) for m in messages[:3])
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
    """A follow-up more urgent than its parent, and at least high, is shown in the channel too."""
    from listener.config.model import LEVELS

    follow = alert.follow_up
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


def _incident_blocks(alert: AlertMessage) -> list[Block]:
    """An incident: what the spike is, then each post (plain_text) with its link."""
    incident = alert.incident
    assert incident is not None
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=clip(headline(alert), HEADER_MAX), emoji=True)),
        SectionBlock(text=MarkdownTextObject(text=f"*{escape_mrkdwn(incident.summary)}*")),
    ]
    shown = incident.members[-INCIDENT_POSTS_SHOWN:]
    for index, member in enumerate(shown):
        when = member.created_at.replace("T", " ").replace("+00:00", " UTC")
        which = f"alert #{member.alert_id}" if member.alert_id else f"alert #{alert.alert_id}"
        text = f"{when} · {member.post_id} · {which}\n{member.text or '(no text)'}"
        accessory = None
        url = member.url
        if url and url.startswith(("https://", "http://")) and len(url) <= URL_MAX:
            accessory = ButtonElement(text="Open", url=url, action_id=f"open_post_{index}")
        blocks.append(
            SectionBlock(
                text=PlainTextObject(text=clip(text, SECTION_MAX), emoji=False),
                accessory=accessory,
            )
        )
    hidden = len(incident.members) - len(shown)
    if hidden:
        more = f"and {hidden} earlier post(s)"
        blocks.append(ContextBlock(elements=[PlainTextObject(text=more, emoji=False)]))
    why = _why(alert)
    if why:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(why, SECTION_MAX))))
    return blocks


def build_blocks(
    alert: AlertMessage, judged: FeedbackRow | None = None, progress: Progress | None = None
) -> list[Block]:
    """The alert's blocks; with `judged` (the newest feedback), as updated after a click; with
    `progress`, as updated after follow-ups or an acknowledgement."""
    post = alert.post
    if alert.incident is not None:
        return _incident_blocks(alert)
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
        HeaderBlock(text=PlainTextObject(text=clip(headline(alert), HEADER_MAX), emoji=True)),
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
    stamp = int(post.created_at.timestamp())
    utc = post.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    when = f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{utc}>"
    facts = f"{escape_mrkdwn(clip(post.source, 100))} · {when} · score {alert.score:g}"
    context.append(MarkdownTextObject(text=facts))
    blocks.append(ContextBlock(elements=context))

    why = _why(alert)
    if why:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(why, SECTION_MAX))))

    actions: list[ButtonElement | StaticSelectElement] = []
    if post.url and post.url.startswith(("https://", "http://")) and len(post.url) <= URL_MAX:
        actions.append(ButtonElement(text="Open post", url=post.url, action_id="open_post"))
    elif post.url:
        link = escape_mrkdwn(clip(post.url, CONTEXT_MAX))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=link, verbatim=True)]))
    if alert.branch_choices is not None:
        actions += _feedback_controls(alert, judged)
    if actions:
        blocks.append(ActionsBlock(elements=actions))
    if judged is not None:
        line = MarkdownTextObject(text=clip(judged_line(alert, judged), CONTEXT_MAX))
        blocks.append(ContextBlock(elements=[line]))
    return blocks


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
