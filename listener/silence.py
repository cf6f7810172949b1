"""Silences: mute the alerts that match some facts for a while, without losing them.

As in Prometheus Alertmanager, a silence is a set of matchers, a start and an end, a reason and
who made it. While it is active, an alert whose facts match all its matchers is stored as usual
(post, decision, alert, one outbox row per receiver) but its outbox rows get the status
`silenced` instead of `pending`, with the silence that did it (`Store.save_batch`), so nothing
reaches Slack, e-mail or the console, nothing is lost, and `listener silence list --all` can
say how many alerts each silence held back. A silence is applied when the alert is created: an
alert silenced stays silenced after the silence ends or is expired early (as in Alertmanager),
and alerts created after that are delivered again. An alert already waiting in the outbox when
the silence is made is not held back.

The facts a matcher can name (`MATCH_KEYS`): `org`, `branch`, `search`, `level`, `label` (one
of the alert's urgency labels), `source` (the post's network: bluesky, mastodon, rss, …) and
`author` (the post author's handle, compared without '@' and case). `key=value` needs the fact
to be exactly `value` (for `label`: one of the labels is); `key!=value` needs it not to be.
`branch=` (no value) matches alerts about no particular branch. Several matchers are ANDed.

Alerts about listener itself (a source that keeps failing, organisation `listener`) are
silenced only by a silence that says `org=listener`: muting `label=outage` for a library's
known closure must not also mute the news that a source is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from listener.alert import AlertMessage
from listener.config.model import LEVELS
from listener.match import normal_handle

MATCH_KEYS = ("org", "branch", "search", "level", "label", "source", "author")
SYSTEM_ORG = "listener"  # listener.health.SYSTEM: the organisation of alerts about listener


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message names it and says what is wrong."""


@dataclass(frozen=True, slots=True)
class Matcher:
    key: str  # one of MATCH_KEYS
    op: str  # "=" or "!="
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"

    def matches(self, message: AlertMessage) -> bool:
        found = self.value in alert_facts(message)[self.key]
        return found if self.op == "=" else not found


def parse_matcher(text: str) -> Matcher:
    """'branch=vathorst' or 'level!=low'; MatcherError naming the matcher otherwise."""
    known = ", ".join(MATCH_KEYS)
    raw = text.strip()
    if "!=" in raw:
        key, value = raw.split("!=", 1)
        op = "!="
    elif "=" in raw:
        key, value = raw.split("=", 1)
        op = "="
    else:
        raise MatcherError(
            f"bad matcher {text!r}: write key=value or key!=value, with key one of {known}"
        )
    key, value = key.strip().lower(), value.strip()
    if key not in MATCH_KEYS:
        shown = f"unknown key {key!r}" if key else "no key"
        raise MatcherError(f"bad matcher {text!r}: {shown}; the keys are {known}")
    if value.startswith("~"):
        raise MatcherError(
            f"bad matcher {text!r}: regular expressions (=~) are not supported; "
            "write the exact value, and one --match per value to leave out with !="
        )
    if not value and key != "branch":
        raise MatcherError(
            f"bad matcher {text!r}: {key} needs a value (only branch= may be empty: "
            "alerts about no particular branch)"
        )
    if key == "level" and value not in LEVELS:
        raise MatcherError(
            f"bad matcher {text!r}: no level {value!r}; the levels are {', '.join(LEVELS)}"
        )
    if key == "author":
        value = normal_handle(value)  # '@Marieke.bsky.social' is 'marieke.bsky.social'
    return Matcher(key, op, value)


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    """Every matcher, or MatcherError for the first bad one; at least one is needed."""
    matchers = tuple(parse_matcher(text) for text in texts)
    if not matchers:
        raise MatcherError(
            f"a silence needs at least one matcher (key=value, key one of {', '.join(MATCH_KEYS)})"
        )
    return matchers


def alert_facts(message: AlertMessage) -> dict[str, set[str]]:
    """What matchers compare with: each key's values for this alert ('' for no branch)."""
    author = message.post.author
    handle = normal_handle(author.handle or "") if author else ""
    return {
        "org": {message.org_id},
        "branch": {message.branch_id or ""},
        "search": {message.search_id},
        "level": {message.level},
        "label": set(message.labels),
        "source": {message.post.source},
        "author": {handle} if handle else set(),
    }


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime  # as planned; `expired_at` when it was ended early
    reason: str
    created_by: str | None
    created_at: datetime
    expired_at: datetime | None = None

    @property
    def ended_at(self) -> datetime:
        """When it stops (or stopped) holding alerts back: its end, or when it was expired."""
        if self.expired_at is not None and self.expired_at < self.ends_at:
            return self.expired_at
        return self.ends_at

    def state(self, now: datetime) -> str:
        """pending (starts later), active, or expired."""
        if now >= self.ended_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def active_at(self, now: datetime) -> bool:
        return self.state(now) == "active"

    @property
    def match_text(self) -> str:
        """'branch=vathorst, level!=low'."""
        return ", ".join(str(m) for m in self.matchers)


def matches(silence: Silence, message: AlertMessage) -> bool:
    """Whether every matcher of the silence holds for the alert (its time is not checked)."""
    if message.org_id == SYSTEM_ORG and Matcher("org", "=", SYSTEM_ORG) not in silence.matchers:
        return False
    return all(m.matches(message) for m in silence.matchers)


def silencing(silences: Sequence[Silence], message: AlertMessage, now: datetime) -> Silence | None:
    """The first (oldest) silence active at `now` that matches the alert, if any."""
    for silence in sorted(silences, key=lambda s: s.id):
        if silence.active_at(now) and matches(silence, message):
            return silence
    return None
