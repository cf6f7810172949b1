"""The urgency settings: labels and their lexicons, the factors' weights, the level thresholds.

The defaults ship as `listener/urgency/default.toml` (read it: every setting is there with a
comment). A user's own file, named by `urgency = "urgency.toml"` in `config.toml`, is merged
over the defaults before it is validated:

- a table merges key by key (`[labels.complaint] points = 35` changes only the points);
- any other value replaces the default (`phrases = [...]` replaces the whole list);
- a key `extra_NAME` adds to the list `NAME` instead (`extra_phrases = ["bagger"]` keeps the
  default phrases and adds one). Adding to a list in the user's file that the defaults do not
  have is the same as giving it.

Unknown keys are errors, so a typo names its `file:line: field` like the rest of the config.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from listener.urgency.hours import HolidaySettings

DEFAULT_FILE = "default.toml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Levels(Strict):
    """The lowest score of each level; below `normal` is low."""

    critical: float = Field(70, ge=0, le=100)
    high: float = Field(45, ge=0, le=100)
    normal: float = Field(20, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if not self.critical > self.high > self.normal:
            raise ValueError("must be critical > high > normal")
        return self

    def level_for(self, score: float) -> str:
        for level, floor in (("critical", self.critical), ("high", self.high)):
            if score >= floor:
                return level
        return "normal" if score >= self.normal else "low"


class LabelSettings(Strict):
    """One label: its points, and the cues that give it."""

    points: float = Field(ge=-100, le=100)
    #: The points when a label with more points already counts (None: `points`). Two labels
    #: say more than one, but an outage that is also a complaint is not twice as urgent.
    beside: float | None = Field(None, ge=-100, le=100)
    phrases: list[str] = []  # anywhere in the folded text, whole words
    emoji: list[str] = []  # anywhere in the raw text
    openers: list[str] = []  # only where they open a sentence ('kan ik', 'is er')
    sources: list[str] = []  # every post from these sources has the label (news: rss)
    min_cues: int = Field(1, ge=1)  # spam: two cues, as one 'gratis' is not spam
    #: A negation just before a cue ('geen probleem', 'niet dicht') cancels it.
    negatable: bool = True

    @property
    def extra_points(self) -> float:
        return self.points if self.beside is None else self.beside


class Labels(Strict):
    safety: LabelSettings
    privacy: LabelSettings  # a data leak reported; personal data posted is `[privacy]`
    outage: LabelSettings
    complaint: LabelSettings
    question: LabelSettings
    spam: LabelSettings
    news: LabelSettings
    event: LabelSettings
    praise: LabelSettings


class Negation(Strict):
    words: list[str] = []
    window: int = Field(3, ge=0, le=10)  # this many words before a cue


class Intensifiers(Strict):
    """Words and typography that make a complaint or outage stronger, each with a reason."""

    words: list[str] = []  # just before a cue: 'echt slecht', 'super irritant'
    window: int = Field(2, ge=0, le=10)
    emphasis: list[str] = []  # raw words written with emphasis accents: 'wéér', 'héél'
    capitals_min_letters: int = Field(5, ge=2)  # 'ALWEER'; shorter ones may be acronyms (OBA)
    repeated_punctuation: list[str] = ["!!", "??", "?!", "!?"]
    points: float = Field(5, ge=0, le=50)
    max_points: float = Field(10, ge=0, le=100)
    applies_to: list[str] = ["complaint", "outage"]


class Sarcasm(Strict):
    """Markers that turn praise around ('nou top', 🙃): not praise, and a complaint."""

    markers: list[str] = []  # folded phrases
    emoji: list[str] = []


class Closures(Strict):
    """'dicht' with a schedule ('om 17u', 'op maandag', 'vanaf 23 november') is opening hours
    or an announced closure, not an outage."""

    words: list[str] = []  # outage cues that are closures
    schedule: list[str] = []  # words that make a closure scheduled
    window: int = Field(4, ge=0, le=10)


class PrivacySettings(Strict):
    """Personal data posted in public (the value never appears in a reason)."""

    points: float = Field(40, ge=0, le=100)
    beside: float = Field(15, ge=0, le=100)
    region: str = "NL"  # numbers without a country code are read as this country's
    card_words: list[str] = []  # a number right after these is a library card number
    pin_words: list[str] = []
    public_mailboxes: list[str] = []  # info@, klantenservice@: not personal


class Reach(Strict):
    """Followers and engagement, counted on a post that needs action (see `only_with`)."""

    followers_from: int = Field(500, ge=1)  # fewer followers add nothing
    followers_weight: float = Field(10, ge=0)  # points per tenfold above `followers_from`
    followers_max: float = Field(15, ge=0)
    engagement_from: float = Field(20, gt=0)  # weighted engagement (below) per hour
    engagement_weight: float = Field(8, ge=0)  # points per tenfold above `engagement_from`
    engagement_max: float = Field(10, ge=0)
    min_hours: float = Field(1, gt=0)  # a post younger than this counts as this old
    only_with: list[str] = []
    # engagement is likes × engagement_likes + reposts × engagement_reposts + replies × …
    engagement_likes: float = Field(1, ge=0)
    engagement_reposts: float = Field(2, ge=0)
    engagement_replies: float = Field(1, ge=0)
    #: An alerted post seen again whose weighted engagement grew at least this much per hour
    #: since the poll before gets one follow-up, when the growth raises its level.
    growth_alert_per_hour: float = Field(50, gt=0)
    #: A further follow-up for the same post needs this many times the last one's growth.
    growth_step: float = Field(2, gt=1)
    #: Polls closer together than this count as this far apart (a webhook resent at once).
    growth_min_minutes: float = Field(5, gt=0)


class History(Strict):
    """The author's earlier posts about the organisation (the last 30 days)."""

    repeat_complaint: float = Field(5, ge=0)  # per earlier complaint, when this is one too
    repeat_complaint_max: float = Field(15, ge=0)
    first_post: float = 0  # a first post about the organisation


class TimeSettings(Strict):
    """Opening hours and holidays (`context.open_now`, `context.holiday`)."""

    question_open: float = 5  # someone waits at the desk or on the phone
    question_closed: float = -5  # asked at night: it can wait until opening time
    closure_when_closed: float = -25  # 'dicht' while the branch is closed anyway


class Freshness(Strict):
    """An old post found late is worth less: no points off up to `full_hours`, then less and
    less down to `-max_penalty` at `stale_hours`."""

    full_hours: float = Field(6, ge=0)
    stale_hours: float = Field(72, gt=0)
    max_penalty: float = Field(20, ge=0)
    #: Labels that stay as urgent however late they are found: a threat or a data leak must
    #: still be acted on.
    except_labels: list[str] = ["safety", "privacy"]


class UrgencySettings(Strict):
    levels: Levels = Levels()
    labels: Labels
    negation: Negation = Negation()
    intensifiers: Intensifiers = Intensifiers()
    sarcasm: Sarcasm = Sarcasm()
    closures: Closures = Closures()
    privacy: PrivacySettings = PrivacySettings()
    reach: Reach = Reach()
    history: History = History()
    time: TimeSettings = TimeSettings()
    freshness: Freshness = Freshness()
    holidays: HolidaySettings = HolidaySettings()


def default_data() -> dict[str, Any]:
    """The shipped defaults as parsed TOML."""
    text = resources.files("listener.urgency").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def default_settings() -> UrgencySettings:
    """The shipped defaults, validated once."""
    return UrgencySettings.model_validate(default_data())


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`: tables merge, `extra_NAME` lists add to `NAME`, the rest replaces."""
    out = dict(base)
    for key, value in override.items():
        if key.startswith("extra_") and isinstance(value, list):
            name = key.removeprefix("extra_")
            current = out.get(name, [])
            out[name] = [*current, *value] if isinstance(current, list) else value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def settings_from(user: dict[str, Any] | None) -> UrgencySettings:
    """The defaults with a user's parsed TOML merged over them (raises pydantic's
    ValidationError, with locations in the user's terms)."""
    if not user:
        return default_settings()
    return UrgencySettings.model_validate(merge(default_data(), user))
