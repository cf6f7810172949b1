"""Dispatch: which route holds an alert for which receiver, until when, and what escalates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from listener.alert import FollowUp
from listener.config.model import Route
from listener.dispatch import Dispatcher
from tests.support.alerts import make_alert

# Monday 23 November 2026; Amsterdam is UTC+1 then.
MONDAY_10 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 local


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A local (Amsterdam, winter) time in November 2026, as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


def route(**kwargs: Any) -> Route:
    fields: dict[str, Any] = {"id": "r", "receivers": ["team"]}
    return Route(**(fields | kwargs))


def hold_of(r: Route, now: datetime, level: str = "high") -> tuple[str, datetime] | None:
    hold = Dispatcher([r]).hold(r, level, now)
    return None if hold is None else (hold.reason, hold.due_at)


def test_an_instant_route_without_quiet_hours_holds_nothing() -> None:
    assert hold_of(route(), MONDAY_10) is None


@pytest.mark.parametrize(
    ("every", "now", "due"),
    [
        ("1h", local(23, 10, 0), local(23, 11)),
        ("1h", local(23, 10, 59), local(23, 11)),
        ("2h", local(23, 9, 30), local(23, 10)),
        ("30m", local(23, 10, 15), local(23, 10, 30)),
        ("5h", local(23, 22, 0), local(24, 0)),  # the last window of the day ends at midnight
        ("1d", local(23, 22, 0), local(24, 0)),
    ],
)
def test_digest_every_ends_at_the_end_of_the_window_counted_from_midnight(
    every: str, now: datetime, due: datetime
) -> None:
    assert hold_of(route(mode="digest", digest_every=every), now) == ("digest", due)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (local(23, 7, 0), local(23, 8, 30)),  # Monday before 08:30: today
        (local(23, 8, 30), local(23, 13, 0)),  # at 08:30 exactly: the next one
        (local(23, 14, 0), local(24, 8, 30)),  # after the last: tomorrow
        (local(27, 14, 0), local(30, 8, 30)),  # Friday afternoon: Monday morning
        (local(28, 11, 0), local(30, 8, 30)),  # Saturday: Monday
    ],
)
def test_digest_at_fixed_times_on_workdays(now: datetime, due: datetime) -> None:
    r = route(mode="digest", digest_at=["13:00", "08:30"], digest_days="workdays")
    assert hold_of(r, now) == ("digest", due)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (local(23, 17, 59), None),  # not yet quiet
        (local(23, 18, 0), local(24, 8, 0)),  # evening: until the morning
        (local(24, 3, 0), local(24, 8, 0)),  # night, past midnight
        (local(24, 8, 0), None),  # quiet hours over
        (local(27, 20, 0), local(30, 8, 0)),  # Friday evening: the weekend is quiet too
        (local(29, 12, 0), local(30, 8, 0)),  # Sunday noon: Monday, at the end of the night
    ],
)
def test_quiet_hours_and_days_hold_until_they_end(now: datetime, due: datetime | None) -> None:
    r = route(quiet_hours="18:00-08:00", quiet_days="weekend")
    assert hold_of(r, now) == (None if due is None else ("quiet", due))


def test_critical_alerts_go_out_during_quiet_hours_when_the_route_says_so() -> None:
    night = local(24, 3, 0)
    r = route(quiet_hours="22:00-07:00", during_quiet="critical")
    assert hold_of(r, night, "critical") is None
    assert hold_of(r, night, "high") == ("quiet", local(24, 7, 0))
    assert hold_of(route(quiet_hours="22:00-07:00"), night, "critical") == ("quiet", local(24, 7))


def test_a_digest_due_in_quiet_hours_waits_until_they_end() -> None:
    r = route(mode="digest", digest_every="1h", quiet_hours="18:00-08:00")
    assert hold_of(r, local(23, 17, 10)) == ("digest", local(24, 8, 0))
    assert hold_of(r, local(23, 16, 10)) == ("digest", local(23, 17, 0))


def test_daylight_saving_time_keeps_local_times() -> None:
    # 29 March 2026 the clocks go forward: 08:30 local is 06:30 UTC from then on.
    r = route(mode="digest", digest_at=["08:30"])
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    sunday = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert hold_of(r, saturday) == ("digest", datetime(2026, 3, 29, 6, 30, tzinfo=UTC))
    assert hold_of(r, sunday) == ("digest", datetime(2026, 3, 30, 6, 30, tzinfo=UTC))


def test_the_plan_applies_the_route_that_sent_each_receiver() -> None:
    routes = [
        route(id="urgent", min_level="high", receivers=["slack"], **{"continue": True}),
        route(id="mail", receivers=["mail", "slack"], mode="digest", digest_at=["08:30"]),
    ]
    plan = Dispatcher(routes).plan(make_alert(), ["slack", "mail", "console"], MONDAY_10)
    # slack came from the instant route first; mail from the digest; console is the default
    assert sorted(plan.holds) == ["mail"]
    assert plan.holds["mail"].route == "mail"
    assert plan.holds["mail"].due_at == local(24, 8, 30)


def test_only_a_critical_alert_that_starts_a_conversation_escalates() -> None:
    r = route(escalate_after="15m", escalate_to=["oncall"])
    dispatcher = Dispatcher([r], active={"team", "oncall"})
    critical = make_alert()
    plan = dispatcher.plan(critical, ["team"], MONDAY_10)
    assert plan.escalation is not None
    assert plan.escalation.due_at == MONDAY_10 + timedelta(minutes=15)
    assert plan.escalation.receivers == ("oncall",)
    assert dispatcher.plan(replace(critical, level="high"), ["team"], MONDAY_10).escalation is None
    follow = replace(critical, follow_up=FollowUp(parent_alert_id=1, kind="reply"))
    assert dispatcher.plan(follow, ["team"], MONDAY_10).escalation is None
    itself = replace(critical, org_id="listener")
    assert dispatcher.plan(itself, ["team"], MONDAY_10).escalation is None


def test_an_escalation_receiver_that_cannot_deliver_is_replaced_by_the_console() -> None:
    r = route(escalate_after="15m", escalate_to=["oncall"])
    plan = Dispatcher([r], active={"team"}).plan(make_alert(), ["team"], MONDAY_10)
    assert plan.escalation is not None and plan.escalation.receivers == ("console",)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"mode": "digest"}, "needs digest_every"),
        ({"mode": "digest", "digest_every": "1h", "digest_at": ["08:30"]}, "one of the two"),
        ({"digest_every": "1h"}, "need mode = 'digest'"),
        ({"mode": "digest", "digest_every": "10s"}, "at least a minute"),
        ({"mode": "digest", "digest_at": ["8.30"]}, "bad time of day"),
        ({"mode": "digest", "digest_at": ["25:00"]}, "bad time of day"),
        ({"quiet_hours": "18:00"}, "write a span"),
        ({"quiet_hours": "08:00-08:00"}, "starts where it ends"),
        ({"quiet_days": ["zat"]}, "quiet_days"),
        ({"escalate_after": "15m"}, "needs both"),
        ({"escalate_to": ["oncall"]}, "needs both"),
    ],
)
def test_a_route_with_bad_timing_is_an_error_that_says_why(
    fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError) as error:
        route(**fields)
    assert says in str(error.value)
