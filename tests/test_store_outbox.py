"""Store and outbox on real SQLite and PostgreSQL databases: batches, claims, retries, leases."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from listener.alert import AlertMessage
from listener.config.model import OutboxSettings
from listener.notify import TransportError
from listener.outbox import Deliverer
from listener.post import Post
from listener.store import Decided, NewAlert, Store


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)  # SQLite and PostgreSQL (tests/conftest.py)
    yield s
    s.close()


def make_post(n: int) -> Post:
    return Post(
        id=f"t:{n}",
        source="replay",
        text=f"post {n}",
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
    )


def decided(n: int, org: str | None = "eemland", receivers: tuple[str, ...] = ("sink",)) -> Decided:
    post = make_post(n)
    decision = {
        "id": post.id,
        "org": org,
        "branch": None,
        "query": "q",
        "urgency": "high",
        "score": 50,
    }
    alert = None
    if org:
        message = AlertMessage(0, post, org, "Eemland", None, None, "q", "high", 50.0)
        alert = NewAlert(message, receivers)
    return Decided(post, decision, alert)


@dataclass
class Sink:
    """A notifier that records what it was given, failing as scripted."""

    errors: list[TransportError] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, alert: AlertMessage) -> str:
        if self.errors:
            raise self.errors.pop(0)
        with self.lock:
            self.sent.append(alert.alert_id)
        return f"ref-{alert.alert_id}"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_batch_saves_posts_alerts_outbox_and_cursor_together(store: Store) -> None:
    result = store.save_batch("replay:x", '{"offset": 10}', [decided(1), decided(2, org=None)])
    assert (result.new_posts, result.alerts, result.deliveries) == (2, 1, 1)
    assert store.cursor("replay:x") == '{"offset": 10}'
    assert store.known_post_ids(["t:1", "t:2", "t:3"]) == {"t:1", "t:2"}
    assert store.outbox_counts() == {"pending": 1}


def test_a_post_seen_again_is_not_alerted_again(store: Store) -> None:
    store.save_batch("k", "1", [decided(1)])
    again = store.save_batch("k", "2", [decided(1)])
    assert (again.new_posts, again.alerts) == (0, 0)
    assert store.cursor("k") == "2"
    assert store.outbox_counts() == {"pending": 1}


def test_a_failed_batch_leaves_nothing_behind(store: Store) -> None:
    store.save_batch("k", "1", [decided(1)])
    broken = Decided(make_post(2), {"org": None}, None)  # the decision lacks required fields
    with pytest.raises(KeyError):
        store.save_batch("k", "2", [decided(3), broken])
    assert store.cursor("k") == "1"
    assert store.known_post_ids(["t:2", "t:3"]) == set()


def test_delivery_marks_rows_sent_with_the_receivers_reference(store: Store) -> None:
    store.save_batch("k", None, [decided(n) for n in range(5)])
    sink = Sink()
    result = Deliverer(store, {"sink": sink}, OutboxSettings()).deliver_due()
    assert result.sent == 5
    assert sink.sent == [1, 2, 3, 4, 5]
    assert store.outbox_counts() == {"sent": 5}
    assert [d.external_ref for d in store.deliveries()] == [f"ref-{n}" for n in range(1, 6)]


def test_a_transient_error_is_retried_after_retry_after_and_keeps_order(store: Store) -> None:
    clock = Clock()
    store.save_batch("k", None, [decided(n) for n in range(3)], now=clock.now)
    sink = Sink(errors=[TransportError("429", permanent=False, retry_after=7)])
    deliverer = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=clock)
    first = deliverer.deliver_due()
    assert (first.sent, first.retried) == (0, 1)  # the receiver is not tried again this round
    row = store.deliveries()[0]
    assert row.next_attempt_at == clock.now + timedelta(seconds=7)
    assert row.last_error == "429"
    clock.now += timedelta(seconds=7)
    assert deliverer.deliver_due().sent == 3
    assert sink.sent == [1, 2, 3]


def test_a_permanent_error_marks_the_row_failed_with_the_reason(store: Store) -> None:
    store.save_batch("k", None, [decided(1)])
    sink = Sink(errors=[TransportError("channel_not_found", permanent=True)])
    result = Deliverer(store, {"sink": sink}, OutboxSettings()).deliver_due()
    assert result.failed == 1
    [row] = store.deliveries()
    assert (row.status, row.last_error, row.attempts) == ("failed", "channel_not_found", 1)


def test_an_unavailable_receiver_keeps_its_rows_pending(store: Store) -> None:
    store.save_batch("k", None, [decided(1)])
    deliverer = Deliverer(store, {}, OutboxSettings(), unavailable={"sink": "token not set"})
    assert deliverer.deliver_due().retried == 1
    [row] = store.deliveries()
    assert (row.status, row.last_error) == ("pending", "token not set")


def test_retries_give_up_after_max_attempts(store: Store) -> None:
    clock = Clock()
    store.save_batch("k", None, [decided(1)], now=clock.now)
    sink = Sink(errors=[TransportError("down", permanent=False) for _ in range(3)])
    deliverer = Deliverer(store, {"sink": sink}, OutboxSettings(max_attempts=3), clock=clock)
    for _ in range(3):
        deliverer.deliver_due()
        clock.now += timedelta(hours=2)
    [row] = store.deliveries()
    assert row.status == "failed"
    assert row.last_error == "gave up after 3 attempts: down"


def test_a_claim_is_taken_once_and_an_expired_lease_is_taken_back(store: Store) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    store.save_batch("k", None, [decided(1)], now=now)
    lease = timedelta(seconds=60)
    first = store.claim(1, now, lease)
    assert first is not None and first.attempts == 1
    assert store.claim(1, now, lease) is None  # held by the first worker
    assert store.claim(1, now + timedelta(seconds=61), lease) is not None  # the worker died


def test_two_workers_racing_deliver_each_row_once(database_url: str) -> None:
    url = database_url
    setup = Store(url)
    setup.save_batch("k", None, [decided(n) for n in range(60)])
    sink = Sink()
    stores = [Store(url), Store(url)]
    workers = [
        threading.Thread(target=Deliverer(s, {"sink": sink}, OutboxSettings()).deliver_due)
        for s in stores
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(sink.sent) == list(range(1, 61))
    assert setup.outbox_counts() == {"sent": 60}
    for s in (setup, *stores):
        s.close()


def test_a_row_waiting_out_a_retry_holds_back_its_receivers_later_rows(store: Store) -> None:
    clock = Clock()
    store.save_batch("k", None, [decided(n) for n in range(3)], now=clock.now)
    sink = Sink(errors=[TransportError("429", permanent=False, retry_after=5)])
    deliverer = Deliverer(store, {"sink": sink}, OutboxSettings(), clock=clock)
    deliverer.deliver_due()
    clock.now += timedelta(seconds=2)
    assert deliverer.deliver_due().sent == 0  # rows 2 and 3 wait behind row 1
    clock.now += timedelta(seconds=3)
    assert deliverer.deliver_due().sent == 3
    assert sink.sent == [1, 2, 3]


def test_a_failed_row_does_not_block_the_queue(store: Store) -> None:
    store.save_batch("k", None, [decided(n) for n in range(2)])
    sink = Sink(errors=[TransportError("invalid_blocks", permanent=True)])
    result = Deliverer(store, {"sink": sink}, OutboxSettings()).deliver_due()
    assert (result.failed, result.sent) == (1, 1)
    assert sink.sent == [2]


def test_one_receivers_trouble_does_not_hold_up_another(store: Store) -> None:
    store.save_batch("k", None, [decided(n, receivers=("down", "sink")) for n in range(3)])
    sink = Sink()
    deliverer = Deliverer(store, {"sink": sink}, OutboxSettings(), unavailable={"down": "no token"})
    deliverer.deliver_due()
    assert sink.sent == [1, 2, 3]
    assert store.outbox_counts() == {"pending": 3, "sent": 3}
