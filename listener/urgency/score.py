"""Score: how urgent is a post, and why? 0–100, a level, and a reason for every point.

The factors, each a line in the alert ('factor: what +points'):

- labels (`listener.urgency.labels`): the strongest label counts its `points`, every further
  one its `beside` points ('outage: 'dicht' +45', 'complaint: 'wéér dicht' +10');
- privacy: personal data posted in public (`listener.urgency.privacy`), by kind, never the
  value ('privacy: phone number posted publicly +40');
- intensifiers on a complaint or outage ('intensifier: 'ALWEER' in capitals +5');
- reach, on a post that needs action: followers, and engagement per hour since posting;
- the author's history with the organisation (`context.history`);
- time: open or closed now, a public holiday (`context.open_now`, `context.holiday`);
- freshness: a post found long after it was written gets points off.

The total is clamped to 0–100 and the settings' `[levels]` give the level. All weights,
lexicons and thresholds come from `UrgencySettings` (the shipped `default.toml` unless the
user's `urgency.toml` says otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from listener.post import Post
from listener.urgency.context import Context
from listener.urgency.labels import Labelled, Lexicon
from listener.urgency.privacy import kinds
from listener.urgency.settings import UrgencySettings, default_settings

#: Labels whose posts can be waiting for an answer: the time of day matters for them.
ANSWERABLE = ("question",)


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
        sign = "+" if points >= 0 else "−"
        self.reasons.append(f"{factor}: {what} {sign}{abs(points):g}")


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
    if post.engagement:
        e = post.engagement
        weight = (e.likes or 0) + 2 * (e.reposts or 0) + (e.replies or 0)
        now = context.now if context else post.created_at
        hours = max(reach.min_hours, (now - post.created_at).total_seconds() / 3600)
        rate = weight / hours
        if rate > reach.engagement_from:
            gained = min(
                reach.engagement_max,
                reach.engagement_weight * math.log10(rate / reach.engagement_from),
            )
            if round(gained, 1) > 0:
                what = f"{weight:,} likes/reposts/replies in {_hours(hours)} ({rate:,.0f} an hour)"
                tally.add("reach", what, gained)


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
