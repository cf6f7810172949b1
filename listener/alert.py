"""The alert as notifiers see it: one post, the organisation and branch it is about, and why.

An `AlertMessage` is self-contained: it is stored as JSON in the outbox when the decision is made,
so a delivery retried days later (or after a config change) still says exactly what was decided.
Everything in it that came from a post (text, author, location) is untrusted: each notifier
escapes it for its own medium.

`follow_up` is set on an alert that continues another one (a reply to its post, a repost or
near-duplicate of it, one more post of an incident, its post's reach growing fast): notifiers
show it as part of the parent's conversation (a Slack thread, an e-mail reply). `incident` is
set on the one alert raised for a spike and names the posts in it. Both default to None, so
JSON stored before they existed loads.

`Progress` is what happened to an alert after it was sent (follow-ups in its thread, who
acknowledged it), shown when its Slack message is updated. A `Digest` is one message that groups
the alerts a route held back (digest mode, quiet hours) for one receiver.

`branch_choices` are the branches a person may say the post is about instead, for the feedback
controls in Slack (`listener.feedback`): None for an alert that takes no feedback (one about
listener itself) and for alerts stored before feedback existed, whose JSON lacks the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from listener.post import Post

if TYPE_CHECKING:
    from listener.config.model import Branch, Organisation

#: Slack's static_select takes 100 options; one is 'No particular branch'.
MAX_BRANCH_CHOICES = 99


@dataclass(frozen=True, slots=True)
class BranchChoice:
    id: str
    name: str


def branch_choices(org: Organisation, branch: Branch | None) -> list[BranchChoice]:
    """The organisation's branches other than `branch`, by name: all of them, or, when there are
    more than MAX_BRANCH_CHOICES, the ones nearest to `branch` (the likeliest mix-ups; the first
    ones in the config when the alert names no branch). `listener feedback` takes any branch."""
    others = [b for b in org.branches if branch is None or b.id != branch.id]
    if len(others) > MAX_BRANCH_CHOICES and branch is not None:
        scale = math.cos(math.radians(branch.lat))  # degrees of longitude are shorter up north
        others.sort(key=lambda b: (b.lat - branch.lat) ** 2 + ((b.lon - branch.lon) * scale) ** 2)
    kept = others[:MAX_BRANCH_CHOICES]
    return [BranchChoice(b.id, b.name) for b in sorted(kept, key=lambda b: b.name.casefold())]


#: FollowUp.kind: why an alert continues another one ("escalation": a critical alert nobody
#: acknowledged in time, re-sent to the route's `escalate_to` receivers).
FOLLOW_UP_KINDS = ("reply", "duplicate", "spike", "reach", "escalation")


@dataclass(frozen=True, slots=True)
class FollowUp:
    """This alert continues alert `parent_alert_id` (the root of its conversation).

    `parent_ref` is not stored: the outbox fills it in at delivery with the parent's external
    reference for the same receiver (Slack "channel:ts", an e-mail Message-ID), or leaves it None
    when the parent never reached that receiver."""

    parent_alert_id: int
    kind: str  # reply | duplicate | spike | reach | escalation
    parent_level: str = "normal"
    parent_text: str = ""  # the parent post's text, short (untrusted)
    parent_ref: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentMember:
    """One post of an incident (all text untrusted)."""

    alert_id: int  # 0 for the post that raised the incident
    post_id: str
    text: str
    url: str | None
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class Incident:
    """A spike: `len(members)` posts about `topic` within `window_seconds`."""

    key: str  # branch:leusden | label:outage | word:vathorst
    topic: str  # for people: 'Bibliotheek Leusden', 'outage', "'vathorst'"
    window_seconds: float
    members: list[IncidentMember] = field(default_factory=list)

    @property
    def window(self) -> str:
        """'1h', '30m', '90s'."""
        seconds = self.window_seconds
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{seconds / size:g}{unit}"
        return f"{seconds:g}s"

    @property
    def summary(self) -> str:
        """'5 posts about Bibliotheek Leusden within 1h'."""
        return f"{len(self.members)} posts about {self.topic} within {self.window}"


@dataclass(frozen=True, slots=True)
class AlertMessage:
    alert_id: int
    post: Post
    org_id: str
    org_name: str
    branch_id: str | None
    branch_name: str | None
    search_id: str
    level: str
    score: float
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    distance_km: float | None = None
    branch_choices: list[BranchChoice] | None = None
    follow_up: FollowUp | None = None
    incident: Incident | None = None

    @property
    def where(self) -> str:
        """'Bibliotheek Eemland / Vathorst' or just the organisation."""
        return f"{self.org_name} / {self.branch_name}" if self.branch_name else self.org_name

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["post"] = self.post.to_dict()
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AlertMessage:
        data = json.loads(text)
        data["post"] = Post.from_dict(data["post"])
        if data.get("branch_choices") is not None:
            data["branch_choices"] = [BranchChoice(**c) for c in data["branch_choices"]]
        if data.get("follow_up") is not None:
            data["follow_up"] = FollowUp(**data["follow_up"])
        if data.get("incident") is not None:
            incident = dict(data["incident"])
            incident["members"] = [IncidentMember(**m) for m in incident.get("members", [])]
            data["incident"] = Incident(**incident)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Progress:
    """What happened to an alert since it was sent, for re-rendering its message.

    `follow_ups`: follow-ups delivered to the same receiver (its thread); `highest_level`: the
    most urgent level among them (None without follow-ups); `acked_by`/`acked_via`/`acked_at`:
    who acknowledged it ("U123" via "slack", a login name via "cli"), None while nobody did."""

    follow_ups: int = 0
    highest_level: str | None = None
    acked_by: str | None = None
    acked_via: str | None = None
    acked_at: str | None = None  # ISO 8601, UTC

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None


#: Digest.reason: why the alerts were held.
DIGEST_REASONS = ("digest", "quiet")


@dataclass(frozen=True, slots=True)
class Digest:
    """Alerts a route held for one receiver, sent as one message when `due_at` came.

    `reason` is "digest" (the route's digest mode) or "quiet" (held during the route's quiet
    hours). `alerts` are oldest first; `opened_at` is when the first was held. Times are ISO 8601
    in UTC. `digest_id` is the idempotency key of the message, with the receiver."""

    digest_id: int
    receiver: str
    route: str  # the route's id, e.g. "routes.toml#2" or the route's own `id`
    reason: str
    opened_at: str
    due_at: str
    alerts: list[AlertMessage] = field(default_factory=list)

    @property
    def title(self) -> str:
        """'Digest: 12 alerts (2 critical, 3 high)' — listener's own words and numbers."""
        counts: dict[str, int] = {}
        for alert in self.alerts:
            counts[alert.level] = counts.get(alert.level, 0) + 1
        urgent = [f"{counts[level]} {level}" for level in ("critical", "high") if counts.get(level)]
        kind = "Held during quiet hours" if self.reason == "quiet" else "Digest"
        noun = "alert" if len(self.alerts) == 1 else "alerts"
        extra = f" ({', '.join(urgent)})" if urgent else ""
        return f"{kind}: {len(self.alerts)} {noun}{extra}"
