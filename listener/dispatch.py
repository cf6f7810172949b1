"""Dispatch: for each receiver of a new alert, send it at once or hold it for one message later,
and whether the alert escalates when nobody acknowledges it.

The route that sent the alert to a receiver (`listener.route.routes_of`) decides:

- `mode = "digest"`: the alert is held until the route's next digest time: the end of the
  current `digest_every` window (windows counted from local midnight: with '2h', 00:00, 02:00,
  …) or the next of the `digest_at` times on one of the `digest_days` (local time, config
  `timezone`). A digest time that falls in the route's quiet hours moves to their end.
- quiet hours (`quiet_hours = "18:00-08:00"`, `quiet_days = "weekend"`): an alert that comes in
  while they last is held until they end and then sent with the others held, as one message;
  with `during_quiet = "critical"`, a critical alert still goes out at once.
- `escalate_after` + `escalate_to`: a critical alert (not a follow-up, not one about listener
  itself) gets an escalation: if nobody acknowledged it by then, it is re-sent to the
  escalation receivers (`Store.escalate_due`).

A receiver an alert reaches only as the `default`, or as the console fallback, gets it at once.
Everything here is a pure function of the routes, the alert and `now`, so tests give it a frozen
clock; the store writes what `plan` says in the alert's own transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from listener.alert import AlertMessage
from listener.config.model import WEEKDAYS, Route, parse_clock, parse_span
from listener.health import SYSTEM
from listener.pipeline import CONSOLE_FALLBACK
from listener.route import routes_of


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold the alert for this receiver until `due_at` (UTC), with the others the route held."""

    route: str
    reason: str  # digest | quiet
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Escalation:
    """Re-send the alert to `receivers` at `due_at` (UTC) unless someone acknowledged it."""

    route: str
    due_at: datetime
    receivers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    holds: dict[str, Hold] = field(default_factory=dict)  # receivers not in it: at once
    escalation: Escalation | None = None


class Dispatcher:
    """Plans each new alert's deliveries from the routes; `active` are the receivers that can
    deliver (escalation receivers that cannot are replaced by the console, as routing does)."""

    def __init__(
        self,
        routes: Sequence[Route],
        timezone: str = "Europe/Amsterdam",
        active: Collection[str] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.zone = ZoneInfo(timezone)
        self.active = None if active is None else set(active)

    def plan(self, message: AlertMessage, receivers: Sequence[str], now: datetime) -> Plan:
        chosen = routes_of(
            self.routes,
            org=message.org_id,
            search=message.search_id,
            level=message.level,
            branch=message.branch_id,
            labels=message.labels,
            source=message.post.source,
        )
        holds: dict[str, Hold] = {}
        escalation: Escalation | None = None
        for receiver in receivers:
            route = chosen.get(receiver)
            if route is None:
                continue
            hold = self.hold(route, message.level, now)
            if hold is not None:
                holds[receiver] = hold
            if escalation is None and self._escalates(route, message):
                assert route.escalate_after is not None  # the model requires both
                escalation = Escalation(
                    route=route.id or "",
                    due_at=now + route.escalate_after,
                    receivers=tuple(self._usable(route.escalate_to)),
                )
        return Plan(holds, escalation)

    def _escalates(self, route: Route, message: AlertMessage) -> bool:
        return (
            route.escalate_after is not None
            and message.level == "critical"
            and message.follow_up is None
            and message.org_id != SYSTEM
        )

    def _usable(self, receivers: Sequence[str]) -> list[str]:
        if self.active is None:
            return list(receivers)
        usable = [r for r in receivers if r in self.active]
        return usable or [CONSOLE_FALLBACK]

    # --- time ----------------------------------------------------------------------------------

    def hold(self, route: Route, level: str, now: datetime) -> Hold | None:
        """How `route` holds an alert of `level` arriving `now`; None: send it at once."""
        if route.mode == "digest":
            due = self.next_digest(route, now)
            if self.is_quiet(route, due):
                due = self.quiet_end(route, due)
            return Hold(route.id or "", "digest", due)
        if self.is_quiet(route, now):
            if route.during_quiet == "critical" and level == "critical":
                return None
            return Hold(route.id or "", "quiet", self.quiet_end(route, now))
        return None

    def is_quiet(self, route: Route, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        if WEEKDAYS[local.weekday()] in route.quiet_days:
            return True
        if route.quiet_hours is None:
            return False
        (sh, sm), (eh, em) = parse_span(route.quiet_hours)
        minute, start, end = local.hour * 60 + local.minute, sh * 60 + sm, eh * 60 + em
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end  # past midnight

    def quiet_end(self, route: Route, moment: datetime) -> datetime:
        """The first moment after `moment` that is not quiet (UTC)."""
        local = moment.astimezone(self.zone)
        candidates: list[datetime] = []
        end = parse_span(route.quiet_hours)[1] if route.quiet_hours else None
        for offset in range(9):
            day = local.date() + timedelta(days=offset)
            candidates.append(self._at(day, 0, 0))
            if end is not None:
                candidates.append(self._at(day, *end))
        for candidate in sorted(candidates):
            if candidate > moment and not self.is_quiet(route, candidate):
                return candidate.astimezone(UTC)
        return (moment + timedelta(days=1)).astimezone(UTC)  # every day quiet: daily

    def next_digest(self, route: Route, moment: datetime) -> datetime:
        """When the digest that an alert arriving at `moment` goes into is sent (UTC)."""
        local = moment.astimezone(self.zone)
        if route.digest_every is not None:
            every = route.digest_every
            midnight = self._at(local.date(), 0, 0)
            if every >= timedelta(days=1):
                return (midnight + every).astimezone(UTC)
            windows = (local - midnight) // every + 1
            due = min(midnight + windows * every, self._at(local.date() + timedelta(1), 0, 0))
            return due.astimezone(UTC)
        times = sorted(parse_clock(t) for t in route.digest_at)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in route.digest_days:
                continue
            for hour, minute in times:
                candidate = self._at(day, hour, minute)
                if candidate > moment:
                    return candidate.astimezone(UTC)
        raise AssertionError("digest_days names at least one day")  # the model checks it

    def _at(self, day: date, hour: int, minute: int) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone)
