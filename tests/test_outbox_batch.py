"""Batched delivery on real SQLite and PostgreSQL: `Store.claim_many`, `finish_many`, `release`,
the deliverer sending a claimed batch, batched post inserts, and reads that take no write lock.

What batching must not break: each receiver's rows are sent in order, by one worker at a time;
nothing is lost (a row claimed and not tried goes back as it was, a dead worker's claim comes
free when its lease runs out and is asked about before it is sent again); a row to retry holds
back the rows behind it; a failed one does not."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.alert import AlertMessage, FollowUp
from listener.config.model import OutboxSettings
from listener.notify import TransportError
from listener.outbox import Deliverer
from listener.post import Post
from listener.store import UNKNOWN_OUTCOME, Claimed, Decided, NewAlert, Outcome, Store
from tests.test_store_outbox import Clock, decided

LEASE = timedelta(seconds=60)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)  # SQLite and PostgreSQL (tests/conftest.py)
    yield s
    s.close()


def save(store: Store, numbers: range, receivers: tuple[str, ...] = ("sink",)) -> None:
    store.save_batch("k", None, [decided(n, receivers=receivers) for n in numbers], now=T0)


def ids(claims: list[Claimed]) -> list[int]:
    return [c.delivery_id for c in claims]


def rows(store: Store) -> dict[int, tuple[str, int]]:
    return {d.id or 0: (d.status, d.attempts) for d in store.deliveries()}


# --- Store.claim_many -----------------------------------------------------------------------------


def test_claim_many_takes_the_front_of_each_queue_in_order_under_one_lease(store: Store) -> None:
    save(store, range(5), receivers=("a", "b"))  # rows 1..10: a, b, a, b, ...
    claims = store.claim_many(T0, LEASE, per_receiver=3)
    by_receiver = {r: [c.delivery_id for c in claims if c.receiver == r] for r in ("a", "b")}
    assert by_receiver == {"a": [1, 3, 5], "b": [2, 4, 6]}
    assert {c.lease_until for c in claims} == {T0 + LEASE}
    assert all(c.attempts == 1 and not c.unclear for c in claims)
    assert [c.alert_id for c in claims if c.receiver == "a"] == [1, 2, 3]
    assert AlertMessage.from_json(claims[0].message).alert_id == claims[0].alert_id
    state = rows(store)
    assert [state[i] for i in (1, 3, 5, 7, 9)] == [("sending", 1)] * 3 + [("pending", 0)] * 2
    # Nothing more of either queue can be taken while the front is held, by anyone.
    assert store.claim_many(T0, LEASE, per_receiver=3) == []
    assert store.claim(7, T0, LEASE) is None


def test_claim_many_skips_receivers_and_limits_receivers(store: Store) -> None:
    save(store, range(2), receivers=("a", "b", "c"))
    assert {c.receiver for c in store.claim_many(T0, LEASE, skip={"a", "c"})} == {"b"}
    assert {c.receiver for c in store.claim_many(T0, LEASE, receivers=1)} == {"a"}


def test_claim_many_stops_at_a_row_that_is_not_due(store: Store) -> None:
    save(store, range(4))
    store.mark_retry(3, "429", T0 + timedelta(seconds=30))  # as if row 3 was tried before
    assert ids(store.claim_many(T0, LEASE)) == [1, 2]  # 4 stays behind 3
    store.finish_many([Outcome.sent(1, "r1", T0), Outcome.sent(2, "r2", T0)])
    assert store.claim_many(T0, LEASE) == []  # 3 is the front now, and not due
    assert ids(store.claim_many(T0 + timedelta(seconds=30), LEASE)) == [3, 4]


def test_a_row_failed_or_silenced_does_not_hold_the_queue(store: Store) -> None:
    save(store, range(4))
    store.mark_failed(2, "invalid_blocks")
    assert ids(store.claim_many(T0, LEASE)) == [1, 3, 4]


def test_a_dead_workers_batch_comes_back_in_order_and_unclear(store: Store) -> None:
    save(store, range(4))
    assert ids(store.claim_many(T0, LEASE, per_receiver=3)) == [1, 2, 3]  # and then it dies
    assert store.claim_many(T0 + LEASE, LEASE) == []  # the lease holds until it has run out
    later = T0 + LEASE + timedelta(seconds=1)
    again = store.claim_many(later, LEASE)
    assert ids(again) == [1, 2, 3, 4]
    assert [c.unclear for c in again] == [True, True, True, False]  # asked about before a resend
    assert [c.attempts for c in again] == [2, 2, 2, 1]


def test_finish_many_records_outcomes_and_releases_in_one_go(store: Store) -> None:
    save(store, range(4))
    claims = store.claim_many(T0, LEASE)
    retry_at = T0 + timedelta(seconds=5)
    released = store.finish_many(
        [Outcome.sent(1, "ref-1", T0), Outcome.retry(2, "429", retry_at)], release=claims[2:]
    )
    assert released == 2
    one, two, three, four = store.deliveries()
    assert (one.status, one.external_ref, one.sent_at, one.lease_until) == (
        "sent",
        "ref-1",
        T0,
        None,
    )
    assert (two.status, two.last_error, two.next_attempt_at) == ("pending", "429", retry_at)
    # Released rows are as they were before the claim: pending, no lease, no attempt counted.
    assert [(r.status, r.attempts, r.lease_until) for r in (three, four)] == [
        ("pending", 0, None)
    ] * 2
    assert store.claim_many(T0, LEASE) == []  # 3 and 4 wait behind 2
    assert ids(store.claim_many(retry_at, LEASE)) == [2, 3, 4]


def test_release_puts_a_dead_workers_row_back_as_unclear(store: Store) -> None:
    save(store, range(2))
    store.claim_many(T0, LEASE)  # dies
    later = T0 + LEASE + timedelta(seconds=1)
    claims = store.claim_many(later, LEASE)
    assert store.release(claims) == 2
    again = store.claim_many(later, LEASE)
    assert [(c.unclear, c.attempts) for c in again] == [(True, 2), (True, 2)]


def test_release_leaves_a_row_another_worker_claimed_since(store: Store) -> None:
    save(store, range(1))
    [mine] = store.claim_many(T0, LEASE)
    later = T0 + LEASE + timedelta(seconds=1)
    [theirs] = store.claim_many(later, LEASE)  # my lease ran out; another worker has it now
    assert store.release([mine]) == 0
    assert rows(store)[1] == ("sending", 2)
    store.finish_many([Outcome.sent(theirs.delivery_id, "r", later)])
    assert rows(store)[1] == ("sent", 2)


def test_two_workers_claiming_at_once_never_share_a_receivers_rows(database_url: str) -> None:
    setup = Store(database_url)
    receivers = tuple(f"r{n}" for n in range(6))
    setup.save_batch("k", None, [decided(n, receivers=receivers) for n in range(10)], now=T0)
    stores = [Store(database_url) for _ in range(4)]
    taken: list[list[Claimed]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def work(index: int) -> None:
        start.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until every row is sent: a worker finds a
            claims = stores[index].claim_many(T0, LEASE, per_receiver=4)  # queue's head
            if not claims:  # claimed by another often, and then claims nothing of it
                if stores[index].outbox_counts() == {"sent": 60}:
                    return
                time.sleep(0.005)
                continue
            taken[index].extend(claims)
            stores[index].finish_many([Outcome.sent(c.delivery_id, "r", T0) for c in claims])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(stores))]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        every = [c.delivery_id for claims in taken for c in claims]
        assert sorted(every) == list(range(1, 61))  # each row claimed exactly once
        assert setup.outbox_counts() == {"sent": 60}
    finally:
        for s in (setup, *stores):
            s.close()


# --- the deliverer sending batches --------------------------------------------------------------


@dataclass
class Recorder:
    """A notifier noting each alert sent (and a follow-up's parent ref), failing as scripted by
    alert id; `during` runs after each send."""

    fail: dict[int, TransportError] = field(default_factory=dict)
    sent: list[int] = field(default_factory=list)
    parent_refs: dict[int, str | None] = field(default_factory=dict)
    during: list[object] = field(default_factory=list)

    def send(self, alert: AlertMessage) -> str:
        error = self.fail.pop(alert.alert_id, None)
        if error is not None:
            raise error
        self.sent.append(alert.alert_id)
        if alert.follow_up is not None:
            self.parent_refs[alert.alert_id] = alert.follow_up.parent_ref
        for hook in self.during:
            hook()  # type: ignore[operator]
        return f"ref-{alert.alert_id}"


@dataclass
class Asking(Recorder):
    """A Recorder that can be asked whether an alert arrived (`find_sent`): those in `found`."""

    found: set[int] = field(default_factory=set)
    asked: list[int] = field(default_factory=list)

    def find_sent(self, alert: AlertMessage) -> str | None:
        self.asked.append(alert.alert_id)
        return f"found-{alert.alert_id}" if alert.alert_id in self.found else None


def test_a_batch_is_sent_in_order_and_recorded_in_few_transactions(store: Store) -> None:
    save(store, range(45))
    sink = Asking()
    out = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock())
    calls: list[int] = []
    finish = store.finish_many
    store.finish_many = lambda outcomes, release=(): calls.append(1) or finish(outcomes, release)  # type: ignore[method-assign]
    assert out.deliver_due().sent == 45
    assert sink.sent == list(range(1, 46))
    assert len(calls) <= 3  # 20 + 20 + 5: one write each, not one a row
    assert [d.external_ref for d in store.deliveries()] == [f"ref-{n}" for n in range(1, 46)]


def test_a_retry_mid_batch_hands_the_rest_back_behind_it(store: Store) -> None:
    clock = Clock()
    store.save_batch("k", None, [decided(n) for n in range(5)], now=clock.now)
    sink = Recorder(fail={3: TransportError("429", permanent=False, retry_after=5)})
    out = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=clock)
    first = out.deliver_due()
    assert (first.sent, first.retried) == (2, 1)
    assert sink.sent == [1, 2]
    assert [(d.status, d.attempts) for d in store.deliveries()] == [
        ("sent", 1),
        ("sent", 1),
        ("pending", 1),
        ("pending", 0),  # handed back untried: no attempt counted
        ("pending", 0),
    ]
    assert out.deliver_due().sent == 0  # still behind row 3
    clock.now += timedelta(seconds=5)
    assert out.deliver_due().sent == 3
    assert sink.sent == [1, 2, 3, 4, 5]


def test_a_permanent_failure_mid_batch_does_not_stop_the_rest(store: Store) -> None:
    save(store, range(4))
    sink = Recorder(fail={2: TransportError("invalid_blocks", permanent=True)})
    result = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due()
    assert (result.sent, result.failed) == (3, 1)
    assert sink.sent == [1, 3, 4]


def test_stopping_mid_batch_hands_the_rest_back(store: Store) -> None:
    save(store, range(6))
    sink = Recorder()
    out = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock())
    result = out.deliver_due(stop=lambda: len(sink.sent) >= 2)
    assert result.sent == 2
    assert [(d.status, d.attempts) for d in store.deliveries()] == [("sent", 1)] * 2 + [
        ("pending", 0)
    ] * 4
    assert Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due().sent == 4
    assert sink.sent == [1, 2, 3, 4, 5, 6]


def test_a_batch_is_handed_back_before_its_lease_could_run_out(store: Store) -> None:
    save(store, range(4))
    sink = Recorder(during=[lambda: time.sleep(0.3)])
    settings = OutboxSettings(lease=timedelta(seconds=1))  # half of it: two sends
    result = Deliverer(store, {"sink": sink}, settings, clock=Clock()).deliver_due()
    assert result.sent == 4  # the rest claimed again with a fresh lease
    assert sink.sent == [1, 2, 3, 4]
    assert {d.attempts for d in store.deliveries()} == {1}


def test_an_outcome_waits_no_longer_than_a_second_to_be_written(store: Store) -> None:
    save(store, range(4))
    seen: list[tuple[str, ...]] = []
    sink = Asking()
    sink.during.append(lambda: seen.append(tuple(d.status for d in store.deliveries())))
    sink.during.append(lambda: time.sleep(0.55))
    Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due()
    assert seen[2] == ("sending",) * 4  # 1 and 2 sent, their outcomes not written yet
    assert seen[3] == ("sent", "sent", "sent", "sending")  # written while the batch went on


def test_a_follow_up_in_the_same_batch_as_its_parent_gets_the_parents_ref(store: Store) -> None:
    parent = decided(1)
    assert parent.alert is not None
    follow = replace(parent.alert.message, follow_up=FollowUp(parent_alert_id=1, kind="reply"))
    post = Post(id="t:2", source="replay", text="again", created_at=T0)
    follow = replace(follow, post=post)
    item = Decided(post, {**parent.decision, "id": "t:2"}, NewAlert(follow, ("sink",)))
    store.save_batch("k", None, [parent, item], now=T0)
    sink = Recorder()
    Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due()
    assert sink.sent == [1, 2]
    assert sink.parent_refs == {2: "ref-1"}


def test_a_crash_mid_batch_loses_nothing_and_sends_nothing_twice(store: Store) -> None:
    """A worker claims five rows, sends two and dies before writing anything: after the lease
    all five are asked about first; the two sent are found, the other three sent, in order."""
    save(store, range(5))
    claims = store.claim_many(T0, LEASE)
    dying = Recorder()
    for claimed in claims[:2]:
        dying.send(AlertMessage.from_json(claimed.message))  # and then the process is killed

    clock = Clock()
    clock.now = T0 + LEASE  # not yet: the lease holds until it has run out
    sink = Asking(found=set(dying.sent))
    out = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=clock)
    assert out.deliver_due().sent == 0
    clock.now += timedelta(seconds=1)
    result = out.deliver_due()
    assert (result.found, result.sent) == (2, 3)
    assert sink.asked == [1, 2, 3, 4, 5] and sink.sent == [3, 4, 5]
    refs = [d.external_ref for d in store.deliveries()]
    assert refs == ["found-1", "found-2", "ref-3", "ref-4", "ref-5"]


def test_an_unclear_error_mid_batch_is_marked_so(store: Store) -> None:
    save(store, range(2))
    sink = Recorder(fail={1: TransportError("timed out", permanent=False)})
    Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due()
    first, second = store.deliveries()
    assert (first.last_error or "").startswith(UNKNOWN_OUTCOME)
    assert (second.status, second.attempts, second.last_error) == ("pending", 0, None)


# --- saving and reading ---------------------------------------------------------------------------


def test_a_big_batch_saves_each_new_post_once_and_skips_the_known(store: Store) -> None:
    store.save_batch("k", "1", [decided(n, org=None) for n in range(0, 600, 2)])
    batch = [decided(n, org=None if n % 3 else "eemland") for n in range(600)]
    result = store.save_batch("k", "2", [*batch, decided(1)])  # t:1 twice: decided once
    assert result.new_posts == 300
    assert result.alerts == len([n for n in range(1, 600, 2) if n % 3 == 0])
    assert store.known_post_ids(f"t:{n}" for n in range(601)) == {f"t:{n}" for n in range(600)}
    with store.engine.connect() as connection:
        decisions = connection.exec_driver_sql("SELECT count(*) FROM decisions").scalar()
        authors = connection.exec_driver_sql("SELECT count(*) FROM post_authors").scalar()
    assert (decisions, authors) == (600, 0)  # these posts have no author


def test_a_read_does_not_wait_for_the_write_lock_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/listener.db"
    store = Store(url)
    save(store, range(3))
    writer = sqlite3.connect(f"{tmp_path}/listener.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a batch being saved
    writer.execute("UPDATE outbox SET attempts = 9")
    try:
        started = time.monotonic()
        assert store.outbox_counts() == {"pending": 3}  # the last committed state
        assert store.cursor("k") is None
        assert store.known_post_ids(["t:1"]) == {"t:1"}
        assert store.next_due_at() == T0
        assert store.escalate_due(T0) == (0, 0)  # nothing due: no write transaction either
        assert time.monotonic() - started < 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        store.close()


def test_a_receiver_that_cannot_be_asked_has_each_send_recorded_at_once(store: Store) -> None:
    """Without `find_sent` a crash could not tell what was sent: nothing waits to be written."""
    save(store, range(3))
    seen: list[tuple[str, ...]] = []
    sink = Recorder()  # no find_sent
    sink.during.append(lambda: seen.append(tuple(d.status for d in store.deliveries())))
    Deliverer(store, {"sink": sink}, OutboxSettings(), clock=Clock()).deliver_due()
    assert seen == [
        ("sending", "sending", "sending"),
        ("sent", "sending", "sending"),
        ("sent", "sent", "sending"),
    ]
