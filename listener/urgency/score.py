"""Score: how urgent is a post, and why? 0–100, a level, and a reason for every point.

The factors, each a line in the alert ('factor: what +points'):

- labels (`listener.urgency.labels`): the strongest label counts its `points`, every further
  one its `beside` points ('outage: 'dicht' +45', 'complaint: 'wéér dicht' +10');
- privacy: personal data posted in public (`listener.urgency.privacy`), by kind, never the
  value ('privacy: phone number posted publicly +40');
- intensifiers on a complaint or outage ('intensifier: 'ALWEER' in capitals +5');
- reach, on a post that needs action: followers, and engagement per hour: gained between
  the last two polls that saw the post when there were two (`context.growth`), else since
  posting ('reach: +240 likes/reposts/replies in 35 min (411/h) +10');
- the author's history with the organisation (`context.history`);
- time: open or closed now, a public holiday (`context.open_now`, `context.holiday`);
- freshness: a post found long after it was written gets points off.

The total is clamped to 0–100 and the settings' `[levels]` give the level. All weights,
lexicons and thresholds come from `UrgencySettings` (the shipped `default.toml` unless the
user's `urgency.toml` says otherwise). `with_growth` re-scores an alert whose post grew
between polls: its engagement line swapped for the growth, every other factor as decided.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from listener.post import Engagement, Post
from listener.urgency.context import Context, Growth
from listener.urgency.labels import Labelled, Lexicon
from listener.urgency.privacy import kinds
from listener.urgency.settings import UrgencySettings, default_settings

#: Labels whose posts can be waiting for an answer: the time of day matters for them.
ANSWERABLE = ("question",)

#: The reason line of the engagement part of reach, as `_reach` writes it; its points last.
_ENGAGEMENT_LINE = re.compile(r"^reach: .* likes/reposts/replies in .* ([+−])(\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Urgency:
    score: float
    level: str
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Tally:
    total: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def add(self, factor: str, what: str, points: float) -> None:
        points = round(points, 1)
        self.total += points
        self.reasons.append(_reason(factor, what, points))


def _reason(factor: str, what: str, points: float) -> str:
    sign = "+" if points >= 0 else "−"
    return f"{factor}: {what} {sign}{abs(points):g}"


_LEXICONS: dict[int, tuple[UrgencySettings, Lexicon]] = {}


def _lexicon(settings: UrgencySettings) -> Lexicon:
    """The compiled lexicon of these settings (compiled once per settings object)."""
    kept = _LEXICONS.get(id(settings))
    if kept is None or kept[0] is not settings:
        if len(_LEXICONS) > 16:
            _LEXICONS.clear()
        kept = _LEXICONS[id(settings)] = (settings, Lexicon(settings))
    return kept[1]


def score_post(
    post: Post, settings: UrgencySettings | None = None, context: Context | None = None
) -> Urgency:
    """The labels, score, level and reasons for one post."""
    settings = settings or default_settings()
    labelled = _lexicon(settings).label(post)
    tally = _Tally()
    labels = _labels(post, settings, labelled, tally)
    _intensifiers(settings, labelled, tally)
    if any(label in settings.reach.only_with for label in labels):
        _reach(post, settings, context, tally)
    if context is not None:
        _history(settings, context, labels, tally)
        _time(settings, context, labels, labelled, tally)
        if not any(label in settings.freshness.except_labels for label in labels):
            _freshness(post, settings, context, tally)
    score = max(0.0, min(100.0, round(tally.total, 1)))
    return Urgency(score, settings.levels.level_for(score), labels, tally.reasons)


def level_for(score: float, settings: UrgencySettings | None = None) -> str:
    return (settings or default_settings()).levels.level_for(score)


def _labels(post: Post, settings: UrgencySettings, labelled: Labelled, tally: _Tally) -> list[str]:
    """Label points, strongest first; personal data posted counts as privacy too."""
    found: list[tuple[str, float, float, str]] = []  # label, points, beside, what
    for name, cues in labelled.cues.items():
        label = getattr(settings.labels, name)
        found.append((name, label.points, label.extra_points, ", ".join(cues[:2])))
    privacy_kinds = kinds(post.text, settings.privacy)
    if privacy_kinds:
        what = f"{' and '.join(privacy_kinds)} posted publicly"
        found.append(("privacy", settings.privacy.points, settings.privacy.beside, what))
    found.sort(key=lambda item: -item[1])  # stable: ties keep the lexicon's order
    labels: list[str] = []
    for i, (name, points, beside, what) in enumerate(found):
        gained = points if i == 0 else beside
        if gained or points:
            tally.add(name, what, gained)
        if name not in labels:
            labels.append(name)
    order = [n for n in type(settings.labels).model_fields if n in labels]
    return order


def _intensifiers(settings: UrgencySettings, labelled: Labelled, tally: _Tally) -> None:
    config = settings.intensifiers
    room = config.max_points
    for what in labelled.intensifiers:
        if room <= 0:
            break
        gained = min(config.points, room)
        room -= gained
        tally.add("intensifier", what, gained)


def _reach(post: Post, settings: UrgencySettings, context: Context | None, tally: _Tally) -> None:
    reach = settings.reach
    followers = post.author.followers if post.author else None
    if followers and followers > reach.followers_from:
        gained = min(
            reach.followers_max,
            reach.followers_weight * math.log10(followers / reach.followers_from),
        )
        if round(gained, 1) > 0:
            tally.add("reach", f"{followers:,} followers", gained)
    found = _engagement(post, settings, context)
    if found is not None:
        tally.add("reach", *found)


def weighted_engagement(engagement: Engagement | None, settings: UrgencySettings) -> float:
    """Likes, reposts and replies, each times its `[reach]` weight (unknown counts are 0)."""
    if engagement is None:
        return 0.0
    reach = settings.reach
    return (
        reach.engagement_likes * (engagement.likes or 0)
        + reach.engagement_reposts * (engagement.reposts or 0)
        + reach.engagement_replies * (engagement.replies or 0)
    )


def _engagement(
    post: Post, settings: UrgencySettings, context: Context | None
) -> tuple[str, float] | None:
    """The engagement part of reach, what and points: per hour between the last two polls
    when the context has that growth, else per hour since posting. None when it adds nothing."""
    reach = settings.reach
    growth = context.growth if context is not None else None
    if growth is not None:
        rate, what = growth.per_hour, growth.describe()
    elif post.engagement:
        weight = weighted_engagement(post.engagement, settings)
        now = context.now if context else post.created_at
        hours = max(reach.min_hours, (now - post.created_at).total_seconds() / 3600)
        rate = weight / hours
        what = f"{weight:,.0f} likes/reposts/replies in {_hours(hours)} ({rate:,.0f} an hour)"
    else:
        return None
    if rate <= reach.engagement_from:
        return None
    gained = min(
        reach.engagement_max, reach.engagement_weight * math.log10(rate / reach.engagement_from)
    )
    return (what, gained) if round(gained, 1) > 0 else None


def with_growth(
    score: float,
    labels: list[str],
    reasons: list[str],
    post: Post,
    growth: Growth,
    settings: UrgencySettings | None = None,
) -> Urgency:
    """An alert's urgency (its score, labels and reasons as decided) with reach taking
    `growth` between polls: the engagement line (and its points) is replaced by the growth's,
    put first; every other factor stands as decided. Reach counts only with `only_with`
    labels, as in `score_post`."""
    settings = settings or default_settings()
    kept = [r for r in reasons if not _ENGAGEMENT_LINE.match(r)]
    total = score
    for line in reasons:
        matched = _ENGAGEMENT_LINE.match(line)
        if matched is not None:
            points = float(matched.group(2))
            total -= points if matched.group(1) == "+" else -points
    found = None
    if any(label in settings.reach.only_with for label in labels):
        found = _engagement(post, settings, Context(now=post.created_at, growth=growth))
    if found is None:
        return Urgency(score, settings.levels.level_for(score), list(labels), list(reasons))
    what, points = found
    total = max(0.0, min(100.0, round(total + round(points, 1), 1)))
    line = _reason("reach", what, round(points, 1))
    return Urgency(total, settings.levels.level_for(total), list(labels), [line, *kept])


def _hours(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def _history(settings: UrgencySettings, context: Context, labels: list[str], tally: _Tally) -> None:
    history = context.history
    if history is None:
        return
    config = settings.history
    if history.posts == 0:
        kind = labels[0] if labels else "a mention"
        tally.add("history", f"first post about us: {kind}", config.first_post)
        return
    if "complaint" in labels and history.complaints:
        nth = history.complaints + 1
        gained = min(config.repeat_complaint_max, config.repeat_complaint * history.complaints)
        tally.add("history", f"{_ordinal(nth)} complaint this month", gained)


def _ordinal(n: int) -> str:
    words = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}
    return words.get(n, f"{n}th")


def _time(
    settings: UrgencySettings,
    context: Context,
    labels: list[str],
    labelled: Labelled,
    tally: _Tally,
) -> None:
    config = settings.time
    when = f" ({context.holiday})" if context.holiday else ""
    if context.open_now is None:
        return
    if any(label in ANSWERABLE for label in labels):
        if context.open_now:
            tally.add("time", "a question while the library is open", config.question_open)
        else:
            tally.add("time", f"a question while the library is closed{when}",
                      config.question_closed)  # fmt: skip
    if not context.open_now and "outage" in labels:
        closures = {f"'{w}'" for w in settings.closures.words}
        if all(cue in closures for cue in labelled.cues.get("outage", [])):
            tally.add(
                "time", f"'closed' while the library is closed anyway{when}",
                config.closure_when_closed,
            )  # fmt: skip


def _freshness(post: Post, settings: UrgencySettings, context: Context, tally: _Tally) -> None:
    config = settings.freshness
    hours = (context.now - post.created_at).total_seconds() / 3600
    if hours <= config.full_hours:
        return
    span = max(config.stale_hours - config.full_hours, 1e-9)
    share = min(1.0, (hours - config.full_hours) / span)
    penalty = round(config.max_penalty * share, 1)
    if penalty > 0:
        tally.add("freshness", f"found {_hours(hours)} after it was posted", -penalty)
