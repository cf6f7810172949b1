"""Opening hours and public holidays: parsed from the query files, answered in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from listener.config import ConfigError, load_config
from listener.config.model import Organisation
from listener.urgency.context import AuthorHistory
from listener.urgency.hours import (
    HolidaySettings,
    OpeningHours,
    context_for,
    dutch_holidays,
    easter,
    holiday_on,
    open_at,
)
from tests.support.configs import QUERIES, write_setup

AMS = ZoneInfo("Europe/Amsterdam")
WEEK = {
    "mon": "10:00-18:00",
    "tue": "10:00-18:00",
    "wed": "10:00-18:00",
    "thu": "10:00-20:00",
    "fri": "10:00-18:00",
    "sat": "10:00-14:00",
    "sun": "closed",
}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


def org(hours: object = None, branch_hours: object = None) -> Organisation:
    branches = [
        {"id": "leusden", "name": "Bibliotheek Leusden", "lat": 52.13, "lon": 5.43},
        {"id": "eemhuis", "name": "Eemhuis", "lat": 52.15, "lon": 5.39},
    ]
    if branch_hours is not None:
        branches[0]["hours"] = branch_hours
    data: dict[str, object] = {"id": "eemland", "name": "Bibliotheek Eemland"}
    data["branches"] = branches
    if hours is not None:
        data["hours"] = hours
    return Organisation.model_validate(data)


def open_now(
    at: datetime, eemland: Organisation, branch: str | None, settings: HolidaySettings | None = None
) -> bool | None:
    settings = HolidaySettings(dutch=False) if settings is None else settings
    return context_for(at, "Europe/Amsterdam", eemland, branch, settings, None).open_now


# --- parsing -------------------------------------------------------------------------------------


def test_weekday_hours_say_open_inside_a_range_and_closed_outside_it() -> None:
    hours = OpeningHours.model_validate(WEEK)
    assert open_at(hours, local("2026-11-20 10:00")) is True  # Friday, opening minute
    assert open_at(hours, local("2026-11-20 17:59")) is True
    assert open_at(hours, local("2026-11-20 18:00")) is False  # the end is exclusive
    assert open_at(hours, local("2026-11-20 09:59")) is False
    assert open_at(hours, local("2026-11-19 19:30")) is True  # Thursday, late opening


def test_dutch_and_long_day_names_mean_the_same_days() -> None:
    dutch = OpeningHours.model_validate(
        {"ma": "09:00-17:00", "Dinsdag": "09:00-12:00", "za": "10:00-14:00", "zo": "gesloten"}
    )
    assert dutch.mon == ((540, 1020),)
    assert dutch.tue == ((540, 720),)
    assert open_at(dutch, local("2026-11-21 11:00")) is True  # zaterdag
    assert open_at(dutch, local("2026-11-22 11:00")) is False  # zondag


def test_several_ranges_leave_the_lunch_break_closed() -> None:
    hours = OpeningHours.model_validate({"wo": "09:00-12:00, 13:00-17:00"})
    assert open_at(hours, local("2026-11-18 11:59")) is True
    assert open_at(hours, local("2026-11-18 12:30")) is False
    assert open_at(hours, local("2026-11-18 13:00")) is True
    assert open_at(hours, local("2026-11-18 17:00")) is False


def test_a_closed_day_is_closed_and_a_day_left_out_is_unknown() -> None:
    hours = OpeningHours.model_validate({"mon": "closed", "tue": "00:00-24:00"})
    assert open_at(hours, local("2026-11-16 12:00")) is False  # Monday: closed
    assert open_at(hours, local("2026-11-17 23:59")) is True  # Tuesday: all day
    assert open_at(hours, local("2026-11-18 12:00")) is None  # Wednesday: not given
    assert open_at(None, local("2026-11-18 12:00")) is None


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"fri": "22:00-02:00"}, "ranges past midnight are not supported"),
        ({"fri": "10:00-25:00"}, "is not a time of day"),
        ({"fri": "10-18"}, "is not a range of hours"),
        ({"fri": "10:00-10:00"}, "is empty"),
        ({"fri": "09:00-13:00,12:00-17:00"}, "overlap"),
        ({"fri": 10}, "is not opening hours"),
        ({"fry": "10:00-18:00"}, "unknown day 'fry'"),
        ({"fri": "10:00-18:00", "vr": "closed"}, "fri is given twice"),
    ],
)
def test_broken_hours_are_rejected_with_the_reason(hours: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpeningHours.model_validate(hours)


# --- branch, organisation ----------------------------------------------------------------------


def test_a_branch_uses_its_own_days_over_its_organisations() -> None:
    eemland = org(hours=WEEK, branch_hours={"sat": "closed"})
    saturday = datetime(2026, 11, 21, 11, 0, tzinfo=AMS)
    assert open_now(saturday, eemland, "leusden") is False
    assert open_now(saturday, eemland, "eemhuis") is True
    assert open_now(saturday, eemland, None) is True
    assert open_now(saturday, eemland, "elsewhere") is True  # an unknown branch: the organisation
    friday = saturday.replace(day=20)  # the branch does not give Friday: the organisation's
    assert open_now(friday, eemland, "leusden") is True


def test_a_branch_with_hours_under_an_organisation_without_keeps_its_own() -> None:
    eemland = org(branch_hours={"fri": "10:00-12:00"})
    friday = datetime(2026, 11, 20, 11, 0, tzinfo=AMS)
    assert open_now(friday, eemland, "leusden") is True
    assert open_now(friday, eemland, "eemhuis") is None
    monday = datetime(2026, 11, 16, 11, 0, tzinfo=AMS)
    assert open_now(monday, eemland, "leusden") is None


def test_without_hours_anywhere_open_is_unknown_also_on_a_holiday() -> None:
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=AMS)
    ctx = context_for(christmas, "Europe/Amsterdam", org(), "leusden", HolidaySettings(), None)
    assert ctx.open_now is None
    assert ctx.holiday == "Eerste Kerstdag"


def test_the_context_carries_the_history_it_was_given() -> None:
    history = AuthorHistory(posts=3, complaints=2, praise=0)
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    ctx = context_for(now, "Europe/Amsterdam", org(WEEK), None, HolidaySettings(), history)
    assert ctx.history == history
    assert ctx.now == now and ctx.now.utcoffset() is not None


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        open_now(datetime(2026, 11, 20, 12), org(WEEK), None)


# --- time zones --------------------------------------------------------------------------------


def test_the_same_utc_time_is_closed_in_winter_time_and_open_in_summer_time() -> None:
    """08:30 UTC is 09:30 CET on Friday 27 March 2026 and 10:30 CEST on Monday 30 March, after
    the clocks went forward on the 29th; the branch opens at 10:00."""
    eemland = org(WEEK)
    friday = datetime(2026, 3, 27, 8, 30, tzinfo=UTC)
    monday = datetime(2026, 3, 30, 8, 30, tzinfo=UTC)
    assert open_now(friday, eemland, None) is False
    assert open_now(monday, eemland, None) is True
    # and back on 25 October: 16:30 UTC is 18:30 CEST on Friday 23rd, 17:30 CET on Monday 26th
    before = datetime(2026, 10, 23, 16, 30, tzinfo=UTC)
    after = datetime(2026, 10, 26, 16, 30, tzinfo=UTC)
    assert open_now(before, eemland, None) is False
    assert open_now(after, eemland, None) is True


def test_the_local_date_decides_the_holiday_not_the_utc_date() -> None:
    # 23:30 UTC on 24 December is 00:30 on Christmas Day in Amsterdam
    now = datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    ctx = context_for(now, "Europe/Amsterdam", org(WEEK), None, HolidaySettings(), None)
    assert ctx.holiday == "Eerste Kerstdag"
    assert context_for(now, "UTC", org(WEEK), None, HolidaySettings(), None).holiday is None


# --- public holidays ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "sunday"),
    [
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2028, date(2028, 4, 16)),
        (2029, date(2029, 4, 1)),
        (2030, date(2030, 4, 21)),
    ],
)
def test_easter_falls_on_the_known_sunday(year: int, sunday: date) -> None:
    assert easter(year) == sunday
    assert holiday_on(HolidaySettings(), sunday) == "Eerste Paasdag"


def test_the_easter_based_holidays_of_2026() -> None:
    settings = HolidaySettings()
    assert holiday_on(settings, date(2026, 4, 3)) == "Goede Vrijdag"
    assert holiday_on(settings, date(2026, 4, 5)) == "Eerste Paasdag"
    assert holiday_on(settings, date(2026, 4, 6)) == "Tweede Paasdag"
    assert holiday_on(settings, date(2026, 5, 14)) == "Hemelvaartsdag"
    assert holiday_on(settings, date(2026, 5, 24)) == "Eerste Pinksterdag"
    assert holiday_on(settings, date(2026, 5, 25)) == "Tweede Pinksterdag"
    assert holiday_on(settings, date(2026, 5, 15)) is None


def test_koningsdag_moves_to_the_26th_when_the_27th_is_a_sunday() -> None:
    settings = HolidaySettings()
    assert holiday_on(settings, date(2025, 4, 26)) == "Koningsdag"  # 27 April 2025 is a Sunday
    assert holiday_on(settings, date(2025, 4, 27)) is None
    assert holiday_on(settings, date(2026, 4, 27)) == "Koningsdag"


def test_every_year_2025_to_2030_has_eleven_holidays_on_distinct_days() -> None:
    for year in range(2025, 2031):
        days = dutch_holidays(year)
        names = [h.name for h in days]
        assert len({h.date for h in days}) == 11, year
        assert names[0] == "Nieuwjaarsdag" and names[-2:] == ["Eerste Kerstdag", "Tweede Kerstdag"]
        assert "Bevrijdingsdag" in names and "Koningsdag" in names


def test_a_branch_with_hours_is_closed_on_a_holiday_unless_it_says_otherwise() -> None:
    easter_monday = datetime(2026, 4, 6, 11, 0, tzinfo=AMS)
    plain = org(WEEK)
    ctx = context_for(easter_monday, "Europe/Amsterdam", plain, "leusden", HolidaySettings(), None)
    assert (ctx.open_now, ctx.holiday) == (False, "Tweede Paasdag")
    opens = org(WEEK, branch_hours={**WEEK, "feestdagen": "10:00-12:00"})
    assert open_now(easter_monday, opens, "leusden", HolidaySettings()) is True
    afternoon = easter_monday.replace(hour=13)
    assert open_now(afternoon, opens, "leusden", HolidaySettings()) is False


def test_closed_false_keeps_the_weekly_hours_on_holidays() -> None:
    easter_monday = datetime(2026, 4, 6, 11, 0, tzinfo=AMS)
    settings = HolidaySettings.model_validate({"closed": False})
    ctx = context_for(easter_monday, "Europe/Amsterdam", org(WEEK), None, settings, None)
    assert (ctx.open_now, ctx.holiday) == (True, "Tweede Paasdag")


def test_own_dates_are_added_and_win_and_may_keep_the_branch_open() -> None:
    settings = HolidaySettings.model_validate(
        {
            "dates": [
                {"date": "2026-12-24", "name": "Kerstavond"},
                {"date": "2026-05-05", "name": "Bevrijdingsdag (open)", "closed": False},
            ]
        }
    )
    assert holiday_on(settings, date(2026, 12, 24)) == "Kerstavond"
    assert holiday_on(settings, date(2026, 12, 25)) == "Eerste Kerstdag"  # the Dutch ones stay
    liberation = datetime(2026, 5, 5, 11, 0, tzinfo=AMS)  # a Tuesday
    ctx = context_for(liberation, "Europe/Amsterdam", org(WEEK), None, settings, None)
    assert (ctx.open_now, ctx.holiday) == (True, "Bevrijdingsdag (open)")
    assert holiday_on(HolidaySettings(dutch=False), date(2026, 12, 25)) is None


def test_holiday_settings_reject_unknown_keys_and_bad_dates() -> None:
    with pytest.raises(ValidationError, match="closd"):
        HolidaySettings.model_validate({"closd": True})
    with pytest.raises(ValidationError, match="date"):
        HolidaySettings.model_validate({"dates": [{"date": "2026-13-01", "name": "x"}]})


# --- in the query files -------------------------------------------------------------------------


def test_hours_in_a_query_file_reach_the_organisation_and_its_branches(tmp_path: Path) -> None:
    queries = QUERIES.replace(
        'handles = ["@bibliotheekeemland"]\n',
        'handles = ["@bibliotheekeemland"]\n'
        'hours = { ma = "10:00-18:00", za = "10:00-14:00", zo = "closed" }\n',
    ).replace("radius_km = 2.5 }", 'radius_km = 2.5, hours = { sat = "closed" } }')
    config = load_config(write_setup(tmp_path, queries=queries))
    eemland = config.organisations["eemland"]
    assert eemland.hours is not None and eemland.hours.sat == ((600, 840),)
    leusden = next(b for b in eemland.branches if b.id == "leusden")
    assert leusden.hours is not None and leusden.hours.sat == ()


def test_a_range_past_midnight_names_file_line_and_field(tmp_path: Path) -> None:
    queries = QUERIES.replace(
        "radius_km = 2.5 }", 'radius_km = 2.5, hours = { fri = "22:00-02:00" } }'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write_setup(tmp_path, queries=queries))
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{tmp_path / 'queries' / 'eemland.toml'}:8: "
        "organisations[eemland].branches[leusden].hours.fri: '22:00-02:00' ends before it "
        "starts: ranges past midnight are not supported"
    )


def test_a_bad_day_in_organisation_hours_names_its_line(tmp_path: Path) -> None:
    queries = QUERIES.replace(
        'handles = ["@bibliotheekeemland"]\n',
        'handles = ["@bibliotheekeemland"]\nhours = { maandag = "10:00-18:00", sunday = "x" }\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write_setup(tmp_path, queries=queries))
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'queries' / 'eemland.toml'}:6: organisations[eemland].hours.sun: "
        "'x' is not a range of hours: write '10:00-18:00', several as "
        "'09:00-12:00,13:00-17:00', or 'closed'"
    ]


def test_hours_in_toml_survive_branches_imported_from_csv_in_another_file(tmp_path: Path) -> None:
    """The CSV has no hours column: its branches take the organisation's hours from TOML, also
    when the CSV is read first (a query file sorted before the one naming the organisation)."""
    queries = QUERIES.split("[[searches]]")[0]
    queries = queries.replace(
        'handles = ["@bibliotheekeemland"]\n',
        'handles = ["@bibliotheekeemland"]\nhours = { sun = "closed" }\n',
    )
    queries = queries.split("branches = [")[0]
    config_path = write_setup(tmp_path, queries=queries)
    (tmp_path / "queries" / "a-branches.toml").write_text(
        'import_csv = ["branches.csv"]\n', encoding="utf-8"
    )
    (tmp_path / "queries" / "branches.csv").write_text(
        "org_id,org_name,org_aliases,branch_id,branch_name,street,town,lat,lon,radius_km\n"
        "eemland,Bibliotheek Eemland,,leusden,Bibliotheek Leusden,,Leusden,52.13,5.43,2.5\n",
        encoding="utf-8",
    )
    eemland = load_config(config_path).organisations["eemland"]
    assert [b.id for b in eemland.branches] == ["leusden"]
    assert eemland.hours is not None and eemland.hours.sun == ()
    sunday = datetime(2026, 11, 22, 12, 0, tzinfo=AMS)
    ctx = context_for(sunday, "Europe/Amsterdam", eemland, "leusden", HolidaySettings(), None)
    assert ctx.open_now is False
