"""Reach that grows between polls: an alerted post seen again, spreading fast.

Sources return a post again on a later poll with new counts (Bluesky and X searches overlap,
the webhook may resend, a feed lists its items every time). The store keeps the likes, reposts
and replies of every sighting of a post (`engagement_snapshots`), and `growth_between` turns the
last two into a `Growth`: weighted engagement (the `[reach]` weights the score uses) gained,
per hour between them.

`GrowthWatch.follow_up` decides whether an alert of the post gets a follow-up for it: the growth
reaches `[reach] growth_alert_per_hour` (or, after a follow-up for the post, `growth_step` times
that follow-up's growth), and the alert's urgency with reach taking the growth
(`listener.urgency.score.with_growth`) is a higher level than the alert's. The follow-up is at
that level, in the alert's thread, to the alert's receivers and those its new level routes to.
Pure, like `listener.spikes`: the store looks up the snapshots and the alert in the transaction
that saves the batch, and writes what `follow_up` returns there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from listener.alert import AlertMessage, FollowUp
from listener.config.model import LEVELS
from listener.conversation import Recent
from listener.post import Engagement, Post
from listener.spikes import PARENT_TEXT_MAX, RouteFn
from listener.urgency.context import Growth
from listener.urgency.score import weighted_engagement, with_growth
from listener.urgency.settings import UrgencySettings


@dataclass(frozen=True, slots=True)
class Sighting:
    """A post's counts as one poll saw them."""

    seen_at: datetime
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None

    @classmethod
    def of(cls, post: Post, seen_at: datetime) -> Sighting | None:
        """The post's counts now; None when the source gives none (a feed item)."""
        e = post.engagement
        if e is None or (e.likes is None and e.reposts is None and e.replies is None):
            return None
        return cls(seen_at, e.likes, e.reposts, e.replies)

    @property
    def engagement(self) -> Engagement:
        return Engagement(self.likes, self.reposts, self.replies)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def growth_between(before: Sighting, after: Sighting, settings: UrgencySettings) -> Growth:
    """Weighted engagement gained from `before` to `after`, and the minutes between them (at
    least `[reach] growth_min_minutes`)."""
    gained = weighted_engagement(after.engagement, settings) - weighted_engagement(
        before.engagement, settings
    )
    minutes = (_utc(after.seen_at) - _utc(before.seen_at)).total_seconds() / 60
    return Growth(gained, max(settings.reach.growth_min_minutes, minutes))


@dataclass(frozen=True, slots=True)
class Raised:
    """A follow-up to write: its message (with `follow_up` filled in), receivers, and the alert
    whose thread it joins."""

    message: AlertMessage
    receivers: list[str]
    parent_id: int


@dataclass
class GrowthWatch:
    """Decides, for an alerted post seen again, whether its growth is worth a follow-up."""

    settings: UrgencySettings
    route: RouteFn | None = None

    def bar(self, raised: Sequence[float] = ()) -> float:
        """The growth per hour a follow-up needs: the threshold, or after earlier follow-ups
        for the post (their growth per hour), `growth_step` times the highest."""
        reach = self.settings.reach
        if not raised:
            return reach.growth_alert_per_hour
        return max(reach.growth_alert_per_hour, reach.growth_step * max(raised))

    def follow_up(
        self, alert: Recent, post: Post, growth: Growth, raised: Sequence[float] = ()
    ) -> Raised | None:
        """The follow-up of `alert` (the post's own alert, its `root_id` the thread it is in)
        for `post` as seen now, grown by `growth`; None when the growth is under the bar or
        does not raise the alert's level."""
        if growth.per_hour < self.bar(raised):
            return None
        message = alert.message
        urgency = with_growth(
            message.score, message.labels, message.reasons, message.post, growth, self.settings
        )
        if _rank(urgency.level) >= _rank(message.level):
            return None  # not more urgent than the alert already is
        receivers = list(alert.receivers)
        if self.route is not None:
            routed = self.route(message, urgency.level)
            receivers += [r for r in routed if r not in receivers]
        if not receivers:
            return None
        e = post.engagement or Engagement()
        counts = f"{e.likes or 0:,} likes, {e.reposts or 0:,} reposts, {e.replies or 0:,} replies"
        text = " ".join(message.post.text.split())
        follow = FollowUp(
            parent_alert_id=alert.thread,
            kind="reach",
            parent_level=message.level,
            parent_text=text if len(text) <= PARENT_TEXT_MAX else text[: PARENT_TEXT_MAX - 1] + "…",
        )
        grown = replace(
            message,
            alert_id=0,
            # the post as alerted (its text masked as then), with the counts seen now
            post=replace(message.post, engagement=post.engagement),
            level=urgency.level,
            score=urgency.score,
            reasons=urgency.reasons,
            evidence=[f"seen again with {counts}; alerted as #{alert.alert_id}"],
            branch_choices=None,  # feedback is given on the post's own alert
            follow_up=follow,
            incident=None,
        )
        return Raised(grown, receivers, alert.thread)


def _rank(level: str) -> int:
    """0 for critical … 3 for low (unknown levels as low)."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS) - 1
