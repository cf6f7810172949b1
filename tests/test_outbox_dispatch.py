"""The outbox with the routes' timing, on a real SQLite file and a frozen clock: digests, quiet
hours, escalation, acknowledgements, the idempotency lookup and parent updates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.alert import AlertMessage, Digest, FollowUp, Progress
from listener.config.model import Backoff, OutboxSettings, Route
from listener.dispatch import Dispatcher
from listener.notify import TransportError
from listener.outbox import Deliverer
from listener.post import Author, Post
from listener.store import Decided, NewAlert, Store

# Monday 23 November 2026, 10:00 in Amsterdam (UTC+1).
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SETTINGS = OutboxSettings(backoff=Backoff(initial=timedelta(seconds=30)), max_attempts=5)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Sink:
    """A receiver that records what reaches it; `fail` scripts the next answers."""

    sent: list[int] = field(default_factory=list)
    digests: list[list[int]] = field(default_factory=list)
    fail: list[TransportError] = field(default_factory=list)

    def send(self, alert: AlertMessage) -> str:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(alert.alert_id)
        return f"ref-{alert.alert_id}"

    def send_digest(self, digest: Digest) -> str:
        if self.fail:
            raise self.fail.pop(0)
        self.digests.append([a.alert_id for a in digest.alerts])
        return f"digest-{digest.digest_id}"


@dataclass
class Threaded(Sink):
    """A receiver that can tell what it already has and re-render a thread's parent."""

    found: dict[int, str] = field(default_factory=dict)
    lookups: list[int] = field(default_factory=list)
    updates: list[tuple[int, str, Progress]] = field(default_factory=list)

    def find_sent(self, alert: AlertMessage) -> str | None:
        self.lookups.append(alert.alert_id)
        return self.found.get(alert.alert_id)

    def update_parent(
        self, parent: AlertMessage, ref: str, progress: Progress, judged: Any = None
    ) -> None:
        self.updates.append((parent.alert_id, ref, progress))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)  # SQLite and PostgreSQL (tests/conftest.py)
    yield s
    s.close()


def alert(n: int, level: str = "high", created: datetime = T0) -> AlertMessage:
    post = Post(
        id=f"bluesky:{n}",
        source="bluesky",
        text=f"post {n}",
        created_at=created,
        author=Author(handle=f"user{n}"),
    )
    return AlertMessage(0, post, "eemland", "Eemland", "leusden", "Leusden", "de-bieb", level, 50)


def save(
    store: Store,
    dispatcher: Dispatcher | None,
    now: datetime,
    *messages: AlertMessage,
    receivers: tuple[str, ...] = ("team",),
) -> None:
    items = [
        Decided(
            m.post,
            {"org": m.org_id, "branch": m.branch_id, "query": m.search_id}
            | {"urgency": m.level, "score": m.score},
            NewAlert(m, list(receivers)),
        )
        for m in messages
    ]
    store.save_batch("test", None, items, now, dispatch=dispatcher)


def deliverer(store: Store, clock: Clock, **notifiers: Any) -> Deliverer:
    return Deliverer(store, notifiers, SETTINGS, clock=clock)


def statuses(store: Store) -> list[str]:
    return [d.status for d in store.deliveries()]


# --- digests --------------------------------------------------------------------------------------


def test_a_digest_route_sends_what_came_in_as_one_message_at_the_end_of_the_window(
    store: Store,
) -> None:
    clock = Clock(T0)
    hourly = Route(id="hourly", receivers=["team"], mode="digest", digest_every="1h")
    dispatcher = Dispatcher([hourly])
    sink = Sink()
    out = deliverer(store, clock, team=sink)
    for n, minutes in ((1, 5), (2, 20), (3, 40)):
        clock.now = T0 + timedelta(minutes=minutes)
        save(store, dispatcher, clock.now, alert(n))
    assert statuses(store) == ["held"] * 3
    clock.now = T0 + timedelta(minutes=59)
    out.deliver_due()
    assert sink.digests == [] and sink.sent == []
    clock.now = T0 + timedelta(hours=1)
    result = out.deliver_due()
    assert result.digests == 1
    assert sink.digests == [[1, 2, 3]]  # oldest first
    assert statuses(store) == ["sent"] * 3
    assert {d.external_ref for d in store.deliveries()} == {"digest-1"}
    # what comes in now goes into the next hour's digest, and each digest is sent once
    save(store, dispatcher, clock.advance(minutes=5), alert(4))
    out.deliver_due()
    clock.advance(hours=1)
    out.deliver_due()
    out.deliver_due()
    assert sink.digests == [[1, 2, 3], [4]]


def test_held_alerts_do_not_hold_back_the_instant_ones_to_the_same_receiver(store: Store) -> None:
    clock = Clock(T0)
    routes = [
        Route(id="now", min_level="critical", receivers=["team"]),
        Route(id="later", receivers=["team"], mode="digest", digest_at=["17:00"]),
    ]
    dispatcher = Dispatcher(routes)
    sink = Sink()
    save(store, dispatcher, T0, alert(1, "normal"), alert(2, "critical"), alert(3, "low"))
    deliverer(store, clock, team=sink).deliver_due()
    assert sink.sent == [2]
    clock.now = T0 + timedelta(hours=7)  # 17:00 local
    deliverer(store, clock, team=sink).deliver_due()
    assert sink.digests == [[1, 3]]


def test_a_digest_that_fails_for_now_is_retried_and_one_that_fails_for_good_says_why(
    store: Store,
) -> None:
    clock = Clock(T0)
    dispatcher = Dispatcher([Route(id="d", receivers=["team"], mode="digest", digest_every="1h")])
    sink = Sink(fail=[TransportError("smtp 451 try later", permanent=False)])
    save(store, dispatcher, T0, alert(1), alert(2))
    clock.now = T0 + timedelta(hours=1)
    out = deliverer(store, clock, team=sink)
    assert out.deliver_due().retried == 1
    assert statuses(store) == ["held", "held"]
    [digest] = store.digests()
    assert digest.status == "open" and "451" in (digest.last_error or "")
    clock.advance(seconds=29)
    out.deliver_due()
    assert sink.digests == []
    clock.advance(seconds=1)
    out.deliver_due()
    assert sink.digests == [[1, 2]]
    assert statuses(store) == ["sent", "sent"]

    save(store, dispatcher, clock.now, alert(3))
    sink.fail = [TransportError("smtp 550 no such user", permanent=True)]
    clock.advance(hours=1)
    assert out.deliver_due().failed == 1
    assert [d.status for d in store.digests()] == ["sent", "failed"]
    assert store.deliveries()[-1].status == "failed"
    assert "550" in (store.deliveries()[-1].last_error or "")


def test_a_digest_whose_sender_died_is_sent_when_its_lease_runs_out(store: Store) -> None:
    clock = Clock(T0)
    dispatcher = Dispatcher([Route(id="d", receivers=["team"], mode="digest", digest_every="1h")])
    save(store, dispatcher, T0, alert(1))
    clock.now = T0 + timedelta(hours=1)
    [digest] = store.due_digests(clock.now)
    assert store.claim_digest(digest.id or 0, clock.now, SETTINGS.lease) is not None  # then dies
    sink = Sink()
    deliverer(store, clock, team=sink).deliver_due()
    assert sink.digests == []
    clock.advance(seconds=SETTINGS.lease.total_seconds() + 1)
    deliverer(store, clock, team=sink).deliver_due()
    assert sink.digests == [[1]]


def test_quiet_hours_hold_alerts_until_morning_but_let_critical_ones_through(
    store: Store,
) -> None:
    evening = T0 + timedelta(hours=10)  # 20:00 local
    clock = Clock(evening)
    route = Route(id="r", receivers=["team"], quiet_hours="18:00-08:00", during_quiet="critical")
    dispatcher = Dispatcher([route])
    sink = Sink()
    save(store, dispatcher, evening, alert(1, "high"), alert(2, "critical"), alert(3, "low"))
    out = deliverer(store, clock, team=sink)
    out.deliver_due()
    assert sink.sent == [2] and sink.digests == []
    clock.now = T0 + timedelta(hours=21, minutes=59)  # 07:59 local
    out.deliver_due()
    assert sink.digests == []
    clock.advance(minutes=1)
    out.deliver_due()
    assert sink.digests == [[1, 3]]
    [digest] = store.digests()
    assert digest.reason == "quiet"


# --- escalation -----------------------------------------------------------------------------------

ESCALATING = Route(id="r", receivers=["team"], escalate_after="15m", escalate_to=["oncall"])


def test_a_critical_alert_nobody_acknowledged_is_re_sent_to_the_escalation_receiver(
    store: Store,
) -> None:
    clock = Clock(T0)
    dispatcher = Dispatcher([ESCALATING], active={"team", "oncall"})
    team, oncall = Sink(), Sink()
    out = deliverer(store, clock, team=team, oncall=oncall)
    save(store, dispatcher, T0, alert(1, "critical"), alert(2, "high"))
    out.deliver_due()
    assert team.sent == [1, 2] and oncall.sent == []
    clock.advance(minutes=14, seconds=59)
    out.deliver_due()
    assert oncall.sent == []
    clock.advance(seconds=1)
    assert out.deliver_due().escalated == 1
    [escalation] = oncall.sent
    stored = store.alert(escalation)
    assert stored is not None
    message = AlertMessage.from_json(stored.message)
    assert message.follow_up == FollowUp(1, "escalation", "critical", "post 1")
    assert message.post.text == "post 1" and message.level == "critical"
    clock.advance(hours=1)
    out.deliver_due()
    assert oncall.sent == [escalation] and team.sent == [1, 2]  # once
    assert [e.status for e in store.escalations()] == ["sent"]
    # the escalation is not a new post: backtests and reports do not see it
    assert [p.id for p in store.posts_since(T0 - timedelta(days=1))] == ["bluesky:1", "bluesky:2"]


def test_an_acknowledged_alert_is_not_escalated(store: Store) -> None:
    clock = Clock(T0)
    dispatcher = Dispatcher([ESCALATING], active={"team", "oncall"})
    team, oncall = Sink(), Sink()
    save(store, dispatcher, T0, alert(1, "critical"))
    out = deliverer(store, clock, team=team, oncall=oncall)
    out.deliver_due()
    ack, new = store.acknowledge(1, by="U123", via="slack", now=T0 + timedelta(minutes=3))
    assert new and ack.alert_id == 1
    again, new = store.acknowledge(1, by="anna", via="cli")
    assert not new and again.by == "U123"  # the first acknowledgement stays
    clock.advance(minutes=20)
    out.deliver_due()
    assert oncall.sent == []
    assert [e.status for e in store.escalations()] == ["called-off"]
    progress = store.progress(1)
    assert (progress.acknowledged, progress.acked_by, progress.acked_via) == (True, "U123", "slack")


def test_a_silenced_critical_alert_does_not_escalate(store: Store) -> None:
    store.add_silence(["branch=leusden"], T0 + timedelta(hours=2), "verbouwing", now=T0)
    save(store, Dispatcher([ESCALATING]), T0, alert(1, "critical"))
    assert store.escalations() == []
    assert statuses(store) == ["silenced"]


# --- nothing doubled, threads kept up to date -----------------------------------------------------


def test_after_an_unclear_failure_the_receiver_is_asked_before_sending_again(store: Store) -> None:
    clock = Clock(T0)
    sink = Threaded(fail=[TransportError("timed out", permanent=False)])
    save(store, None, T0, alert(1), alert(2))
    out = deliverer(store, clock, team=sink)
    out.deliver_due()
    assert sink.sent == [] and sink.lookups == []
    sink.found[1] = "C1:111.1"  # it did arrive, the answer was lost
    clock.advance(minutes=1)
    result = out.deliver_due()
    assert (result.found, result.sent) == (1, 1)
    assert sink.lookups == [1] and sink.sent == [2]  # 1 not sent again; 2 not looked up
    assert [d.external_ref for d in store.deliveries()] == ["C1:111.1", "ref-2"]


def test_a_rate_limit_is_clear_so_the_retry_does_not_look_first(store: Store) -> None:
    clock = Clock(T0)
    sink = Threaded(fail=[TransportError("ratelimited", permanent=False, retry_after=1)])
    save(store, None, T0, alert(1))
    out = deliverer(store, clock, team=sink)
    out.deliver_due()
    clock.advance(seconds=1)
    out.deliver_due()
    assert sink.lookups == [] and sink.sent == [1]


def test_a_crash_mid_send_makes_the_next_attempt_look_first(store: Store) -> None:
    clock = Clock(T0)
    save(store, None, T0, alert(1))
    [row] = store.due(T0)
    assert store.claim(row.id or 0, T0, SETTINGS.lease) is not None  # and then the process dies
    clock.advance(seconds=SETTINGS.lease.total_seconds() + 1)
    sink = Threaded(found={1: "C1:1.1"})
    deliverer(store, clock, team=sink).deliver_due()
    assert sink.lookups == [1] and sink.sent == []
    assert statuses(store) == ["sent"]


def test_a_follow_up_in_a_thread_updates_its_parents_message(store: Store) -> None:
    clock = Clock(T0)
    sink = Threaded()
    parent = alert(1)
    save(store, None, T0, parent)
    out = deliverer(store, clock, team=sink)
    out.deliver_due()
    follow = replace(alert(2, "critical"), follow_up=FollowUp(parent_alert_id=1, kind="reply"))
    items = [
        Decided(
            follow.post,
            {"org": "eemland", "branch": "leusden", "query": "de-bieb"}
            | {"urgency": "critical", "score": 80},
            NewAlert(follow, ["team"]),
        )
    ]
    store.save_batch("test", None, items, T0)
    with store.engine.begin() as connection:  # link it as the grouper would
        connection.exec_driver_sql(
            "INSERT INTO alert_links (alert_id, parent_alert_id, kind, created_at) "
            "VALUES (2, 1, 'reply', '2026-11-23 09:00:00')"
        )
    out.deliver_due()
    assert sink.sent == [1, 2]
    [(parent_id, ref, progress)] = sink.updates
    assert (parent_id, ref) == (1, "ref-1")
    assert (progress.follow_ups, progress.highest_level) == (1, "critical")
