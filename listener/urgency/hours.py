"""Opening hours and public holidays: is the branch open when the post comes in?

A question asked while the library is open is answered sooner than one asked at night, so the
urgency score wants to know whether the post's branch (or, without a branch, its organisation)
is open at the time of the decision, and whether that day is a public holiday.

- `OpeningHours` is the `hours` table of a branch or organisation in `queries/*.toml`
  (`hours = { mon = "10:00-18:00", sat = "10:00-14:00", sun = "closed" }`; Dutch day names
  `ma` … `zo` too, several ranges `"09:00-12:00,13:00-17:00"`, `holidays = "12:00-16:00"` for
  the hours on a public holiday). The config loader validates it, so a broken value is a
  `file:line: field` problem at start-up. A branch's days override its organisation's, day by
  day; a day neither gives is unknown, not closed.
- `HolidaySettings` is the `[holidays]` table of the urgency settings: the Dutch public holidays
  (computed for any year by `dutch_holidays`, Easter-based ones included) plus your own dates,
  and whether branches are closed on them.
- `open_at`, `holiday_on` and `context_for` answer the questions; `context_for` builds the
  `Context` the score takes, in the local time of the config's `timezone` (DST included).

This module imports the config models only for type checking: `listener.config.model` imports
`OpeningHours` from here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from listener.urgency.context import AuthorHistory, Context

if TYPE_CHECKING:
    from listener.config.model import Organisation

# --- opening hours -----------------------------------------------------------------------------

#: Each day's keys: English and Dutch, short and long. Index = `date.weekday()` (Monday 0).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES: dict[str, str] = {}
for _day, _names in zip(
    DAYS,
    (
        ("ma", "monday", "maandag"),
        ("di", "tuesday", "dinsdag"),
        ("wo", "wednesday", "woensdag"),
        ("do", "thursday", "donderdag"),
        ("vr", "friday", "vrijdag"),
        ("za", "saturday", "zaterdag"),
        ("zo", "sunday", "zondag"),
    ),
    strict=True,
):
    for _name in (_day, *_names):
        _DAY_NAMES[_name] = _day
for _name in ("holidays", "feestdagen"):
    _DAY_NAMES[_name] = "holidays"

_CLOSED = frozenset({"closed", "gesloten", "dicht"})
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

#: One day's opening times: (start, end) in minutes after midnight, end exclusive, end ≤ 24:00;
#: empty when closed all day.
Ranges = tuple[tuple[int, int], ...]


def _clock(hour: str, minute: str, text: str) -> int:
    h, m = int(hour), int(minute)
    if m > 59 or h > 24 or (h == 24 and m > 0):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
    return h * 60 + m


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_ranges(value: object) -> Ranges | None:
    """One day's value: 'closed' (or 'gesloten'), '10:00-18:00' or '09:00-12:00,13:00-17:00'."""
    if value is None or isinstance(value, tuple):  # not given, or already parsed (in code)
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"{value!r} is not opening hours: write '10:00-18:00', "
            "'09:00-12:00,13:00-17:00' or 'closed'"
        )
    text = value.strip()
    if text.lower() in _CLOSED:
        return ()
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        found = _RANGE.match(part)
        if not found:
            raise ValueError(
                f"{part!r} is not a range of hours: write '10:00-18:00', "
                "several as '09:00-12:00,13:00-17:00', or 'closed'"
            )
        start = _clock(found.group(1), found.group(2), part)
        end = _clock(found.group(3), found.group(4), part)
        if end < start:
            raise ValueError(
                f"{part!r} ends before it starts: ranges past midnight are not supported; "
                f"split it over two days, '{_hhmm(start)}-24:00' and '00:00-{_hhmm(end)}'"
            )
        if end == start:
            raise ValueError(f"{part!r} is empty: it ends when it starts")
        ranges.append((start, end))
    ranges.sort()
    for (_, end), (start, _) in itertools.pairwise(ranges):
        if start < end:
            raise ValueError(f"ranges in {text!r} overlap")
    return tuple(ranges)


DayHours = Annotated[Ranges | None, BeforeValidator(parse_ranges)]


class OpeningHours(BaseModel):
    """A week of opening hours; None for a day means unknown (the day was left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mon: DayHours = None
    tue: DayHours = None
    wed: DayHours = None
    thu: DayHours = None
    fri: DayHours = None
    sat: DayHours = None
    sun: DayHours = None
    #: On a public holiday: these hours instead of the weekday's (None: closed or not, as the
    #: `[holidays]` settings say).
    holidays: DayHours = None

    @model_validator(mode="before")
    @classmethod
    def _day_names(cls, data: Any) -> Any:
        """Dutch and long day names to `mon` … `sun`; an unknown or repeated day is an error."""
        if not isinstance(data, dict):
            raise ValueError(
                "hours must be a table of days, e.g. "
                '{ mon = "10:00-18:00", sat = "10:00-14:00", sun = "closed" }'
            )
        out: dict[str, Any] = {}
        for key, value in data.items():
            day = _DAY_NAMES.get(str(key).strip().lower())
            if day is None:
                raise ValueError(
                    f"unknown day {key!r}: use mon, tue, wed, thu, fri, sat, sun "
                    "(or ma, di, wo, do, vr, za, zo) and holidays"
                )
            if day in out:
                raise ValueError(f"{day} is given twice (as {key!r} too)")
            out[day] = value
        return out

    def on(self, weekday: int) -> Ranges | None:
        """The ranges of a weekday (Monday 0); None when that day was not given."""
        ranges: Ranges | None = getattr(self, DAYS[weekday])
        return ranges


def _within(ranges: Ranges, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in ranges)


def open_at(hours: OpeningHours | None, local_datetime: datetime) -> bool | None:
    """Open at this local wall-clock time by the weekly hours (holidays aside); None when the
    hours, or that day's, are unknown."""
    if hours is None:
        return None
    ranges = hours.on(local_datetime.weekday())
    return None if ranges is None else _within(ranges, local_datetime)


# --- public holidays ---------------------------------------------------------------------------


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    name: str = Field(min_length=1)
    closed: bool | None = None  # None: as `[holidays] closed` says


def easter(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm, Meeus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def dutch_holidays(year: int) -> tuple[Holiday, ...]:
    """The Dutch public holidays of a year, by the rules since 2014, in date order.

    Koningsdag is 27 April, or 26 April when the 27th is a Sunday. Bevrijdingsdag (5 May) is
    listed every year for simplicity, though it is a general day off only every fifth year
    (2025, 2030); Goede Vrijdag is included because many libraries close on it.
    """
    e = easter(year)
    king = date(year, 4, 27)
    if king.weekday() == 6:
        king = date(year, 4, 26)
    days = [
        (date(year, 1, 1), "Nieuwjaarsdag"),
        (e - timedelta(days=2), "Goede Vrijdag"),
        (e, "Eerste Paasdag"),
        (e + timedelta(days=1), "Tweede Paasdag"),
        (king, "Koningsdag"),
        (date(year, 5, 5), "Bevrijdingsdag"),
        (e + timedelta(days=39), "Hemelvaartsdag"),
        (e + timedelta(days=49), "Eerste Pinksterdag"),
        (e + timedelta(days=50), "Tweede Pinksterdag"),
        (date(year, 12, 25), "Eerste Kerstdag"),
        (date(year, 12, 26), "Tweede Kerstdag"),
    ]
    return tuple(Holiday(date=d, name=n) for d, n in sorted(days))


class HolidaySettings(BaseModel):
    """`[holidays]` in the urgency settings: which days are public holidays, and closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dutch: bool = True  # the Dutch public holidays of every year (`dutch_holidays`)
    dates: tuple[Holiday, ...] = ()  # your own, added to them; on the same date yours wins
    closed: bool = True  # branches with opening hours are closed on them (unless `hours.holidays`)

    def on(self, day: date) -> Holiday | None:
        """The holiday on `day`, or None."""
        for holiday in self.dates:
            if holiday.date == day:
                return holiday
        if self.dutch:
            for holiday in dutch_holidays(day.year):
                if holiday.date == day:
                    return holiday
        return None


def holiday_on(settings: HolidaySettings, day: date) -> str | None:
    """The name of the public holiday on `day` (a local date), or None."""
    holiday = settings.on(day)
    return holiday.name if holiday else None


# --- the context of one decision ---------------------------------------------------------------


def hours_of(org: Organisation, branch_id: str | None) -> OpeningHours | None:
    """The branch's hours: each day (and `holidays`) the branch gives, else its organisation's
    for that day; None when neither has hours (unknown)."""
    branch = next((b for b in org.branches if b.id == branch_id), None) if branch_id else None
    own = branch.hours if branch is not None else None
    if own is None or org.hours is None:
        return own or org.hours
    days = {}
    for day in (*DAYS, "holidays"):
        mine = getattr(own, day)
        days[day] = mine if mine is not None else getattr(org.hours, day)
    return OpeningHours.model_validate(days)


def context_for(
    now: datetime,
    timezone: str,
    org: Organisation,
    branch_id: str | None,
    holidays: HolidaySettings,
    history: AuthorHistory | None,
) -> Context:
    """Open or closed, and the holiday, at `now` (timezone-aware) in the local time of
    `timezone` (the config's). On a holiday a branch with hours keeps its `holidays` hours if it
    has them, else is closed when the holiday (or `[holidays] closed`) says so; without any
    hours it stays unknown."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(timezone))
    hours = hours_of(org, branch_id)
    holiday = holidays.on(local.date())
    open_now = open_at(hours, local)
    if holiday is not None and hours is not None:
        closed = holidays.closed if holiday.closed is None else holiday.closed
        if hours.holidays is not None:
            open_now = _within(hours.holidays, local)
        elif closed:
            open_now = False
    return Context(
        now=local,
        open_now=open_now,
        holiday=holiday.name if holiday else None,
        history=history,
    )
