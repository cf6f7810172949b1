"""Spikes: many posts about one thing in a short time raise one incident, not many pings.

When, within `[spikes] window` (default 1h, by the posts' own times), `size` (default 5) or more
alerts or follow-ups of one organisation concern the same branch, or, for posts whose branch is
unknown, share a topic (the same urgency label such as outage, or a distinctive word such as
'vathorst'), the post that reaches the size raises ONE incident alert (level at least high)
naming the posts; further posts on that topic, while the incident has had a post within the
window, are follow-ups of the incident (its Slack thread) instead of separate alerts.

`Grouper.place` decides what a new alert becomes, in this order: a follow-up of the alert it
replies to or repeats (`listener.conversation`), a follow-up of an open incident, a new incident,
or an ordinary alert. It is pure: the store looks up the recent alerts and open incidents of the
organisation in the transaction that saves the batch, and writes what `place` returns there too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from listener.alert import AlertMessage, FollowUp, Incident, IncidentMember
from listener.config.model import LEVELS, SpikeSettings
from listener.conversation import Recent, continues, core_text
from listener.post import Post

#: Urgency labels that make a topic for posts of unknown branch (praise and questions do not).
TOPIC_LABELS = ("safety", "outage", "privacy", "complaint")
#: A word is distinctive below this Zipf frequency in Dutch and in English (3: once a million).
DISTINCTIVE_ZIPF = 3.5
MIN_WORD_LETTERS = 4
#: Short texts of the posts an incident names, and how many it names at most.
MEMBER_TEXT_MAX = 200
MEMBERS_MAX = 50
PARENT_TEXT_MAX = 200
#: Words of library names that every post of a search shares: never a topic.
GENERIC_WORDS = frozenset(["bibliotheek", "bieb", "library", "bibliotheken", "biebs", "http"])

#: (alert, level) -> the receivers the alert goes to at that level (branch, labels, source and
#: the default receiver count as for any alert).
RouteFn = Callable[[AlertMessage, str], list[str]]


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An incident of the organisation whose newest post is at `last_at`."""

    alert_id: int
    key: str
    last_at: datetime
    level: str = "high"


@dataclass(frozen=True, slots=True)
class Spike:
    key: str
    members: list[Recent]  # the earlier alerts in the window, oldest first


@dataclass(frozen=True, slots=True)
class Placement:
    """What to store for a new alert: the message (with `follow_up` or `incident` filled in),
    its receivers, and, for a follow-up, the alert it continues and why; for an incident, its
    key and the alerts it names."""

    message: AlertMessage
    receivers: list[str]
    parent_id: int | None = None
    link: str | None = None  # reply | duplicate | spike
    incident_key: str | None = None
    members: tuple[int, ...] = ()


@lru_cache(maxsize=50_000)
def is_common(word: str) -> bool:
    from wordfreq import zipf_frequency  # on first use: a fifth of a second to import

    return zipf_frequency(word, "nl") >= DISTINCTIVE_ZIPF or (
        zipf_frequency(word, "en") >= DISTINCTIVE_ZIPF
    )


def distinctive_words(text: str, ignore: Iterable[str] = ()) -> list[str]:
    """The rare words of a post ('vathorst', 'stroomstoring'), sorted; not the organisation's own
    names (`ignore`), library words, numbers, links or mentions."""
    skip = GENERIC_WORDS | set(ignore)
    found = {
        w
        for w in core_text(text).split()
        if len(w) >= MIN_WORD_LETTERS and not w.isdigit() and w not in skip and not is_common(w)
    }
    return sorted(found)


def topic_keys(message: AlertMessage, ignore: Iterable[str] = ()) -> list[str]:
    """What a post is about, for spikes: its branch; or, branch unknown, its urgency labels and
    distinctive words ('label:outage', 'word:vathorst')."""
    if message.branch_id:
        return [f"branch:{message.branch_id}"]
    keys = [f"label:{label}" for label in TOPIC_LABELS if label in message.labels]
    return keys + [f"word:{w}" for w in distinctive_words(message.post.text, ignore)]


def topic_name(key: str, message: AlertMessage) -> str:
    kind, _, value = key.partition(":")
    if kind == "branch":
        return message.branch_name or value
    if kind == "word":
        return f"'{value}'"
    return value


def find_spike(
    message: AlertMessage,
    recent: Sequence[Recent],
    window: timedelta,
    size: int,
    ignore: Iterable[str] = (),
) -> Spike | None:
    """The spike `message` completes: `size - 1` or more earlier alerts in the window before its
    post that share a topic with it; the topic with the most posts wins (the branch first)."""
    ignore = frozenset(ignore)
    moment = message.post.created_at
    earlier = [
        r
        for r in recent
        if r.post.id != message.post.id and moment - window <= r.post.created_at <= moment
    ]
    best: Spike | None = None
    for key in topic_keys(message, ignore):
        members = [r for r in earlier if key in topic_keys(r.message, ignore)]
        if len(members) + 1 >= size and (best is None or len(members) > len(best.members)):
            members.sort(key=lambda r: (r.post.created_at, r.alert_id))
            best = Spike(key, members)
    return best


def open_incident(
    message: AlertMessage,
    incidents: Sequence[OpenIncident],
    window: timedelta,
    ignore: Iterable[str] = (),
) -> OpenIncident | None:
    """The incident `message` belongs to: same topic, and a post in it within the window."""
    keys = topic_keys(message, ignore)
    moment = message.post.created_at
    live = [i for i in incidents if i.key in keys and i.last_at >= moment - window]
    return max(live, key=lambda i: (i.last_at, i.alert_id), default=None)


def highest(*levels: str) -> str:
    known = [level for level in levels if level in LEVELS]
    return min(known, key=LEVELS.index) if known else "high"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def member(recent_or_message: Recent | AlertMessage) -> IncidentMember:
    if isinstance(recent_or_message, Recent):
        alert_id, post = recent_or_message.alert_id, recent_or_message.post
    else:
        alert_id, post = 0, recent_or_message.post
    return IncidentMember(
        alert_id=alert_id,
        post_id=post.id,
        text=_clip(post.text, MEMBER_TEXT_MAX),
        url=post.url,
        created_at=post.created_at.astimezone(UTC).isoformat(timespec="seconds"),
    )


@dataclass
class Grouper:
    """Decides, for each new alert, whether it follows up another alert or is (part of) a spike."""

    settings: SpikeSettings
    route: RouteFn | None = None
    #: per organisation: the folded words of its names, aliases and handles (never a topic)
    ignore: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether placing an alert looks at anything: follow-ups or spikes are on."""
        return self.settings.follow_ups or self.settings.enabled

    @property
    def lookback(self) -> timedelta:
        """How far back, by post time, the store must look for recent alerts."""
        s = self.settings
        return max(s.window, s.follow_up_within)

    def reply_alert(self, post: Post, parent: Recent) -> AlertMessage | None:
        """An alert for a reply that names no organisation itself, to the alerted post of
        `parent` made within `follow_up_within`: the parent's organisation, branch and search,
        level low, to become its follow-up. None when follow-ups are off or it is too old."""
        s = self.settings
        if not s.follow_ups or parent.post.created_at < post.created_at - s.follow_up_within:
            return None
        return replace(
            parent.message,
            alert_id=0,
            post=post,
            level="low",
            score=0.0,
            labels=[],
            reasons=[],
            evidence=[f"a reply to {parent.post.id}, alerted as #{parent.alert_id}"],
            distance_km=None,
            follow_up=None,
            incident=None,
        )

    def place(
        self,
        message: AlertMessage,
        receivers: Sequence[str],
        recent: Sequence[Recent],
        incidents: Sequence[OpenIncident] = (),
    ) -> Placement:
        s = self.settings
        ignore = self.ignore.get(message.org_id, frozenset())
        by_id = {r.alert_id: r for r in recent}
        if s.follow_ups:
            found = continues(message.post, recent, s.follow_up_within)
            if found is not None:
                root = by_id.get(found.parent.thread, found.parent)
                return self._follow_up(message, receivers, root.alert_id, found.kind, root)
        if not s.enabled:
            return Placement(message, list(receivers))
        incident = open_incident(message, incidents, s.window, ignore)
        if incident is not None:
            return self._follow_up(
                message,
                receivers,
                incident.alert_id,
                "spike",
                by_id.get(incident.alert_id),
                incident.level,
            )
        spike = find_spike(message, recent, s.window, s.size, ignore)
        if spike is None:
            return Placement(message, list(receivers))
        return self._incident(message, receivers, spike)

    def _follow_up(
        self,
        message: AlertMessage,
        receivers: Sequence[str],
        parent_id: int,
        kind: str,
        root: Recent | None,
        parent_level: str | None = None,
    ) -> Placement:
        follow = FollowUp(
            parent_alert_id=parent_id,
            kind=kind,
            parent_level=root.message.level if root is not None else (parent_level or "normal"),
            parent_text=_clip(root.post.text, PARENT_TEXT_MAX) if root is not None else "",
        )
        return Placement(
            replace(message, follow_up=follow), list(receivers), parent_id=parent_id, link=kind
        )

    def _incident(self, message: AlertMessage, receivers: Sequence[str], spike: Spike) -> Placement:
        s = self.settings
        level = highest("high", message.level, *(r.message.level for r in spike.members))
        members = [*spike.members[-(MEMBERS_MAX - 1) :]]
        incident = Incident(
            key=spike.key,
            topic=topic_name(spike.key, message),
            window_seconds=s.window.total_seconds(),
            members=[*(member(r) for r in members), member(message)],
        )
        chosen = list(self.route(message, level)) if self.route else []
        chosen += [r for r in receivers if r not in chosen]
        reason = f"spike: {incident.summary}: at least high"
        incident_message = replace(
            message,
            level=level,
            incident=incident,
            reasons=[reason, *message.reasons],
            branch_choices=None,  # feedback is given on the posts' own alerts, not the incident
        )
        return Placement(
            incident_message,
            chosen,
            incident_key=spike.key,
            members=tuple(r.alert_id for r in spike.members),
        )
