"""Several processes on one PostgreSQL database at once: each with its own Store (its own
connections), started together on a barrier. PostgreSQL runs READ COMMITTED and does not
serialise writers as SQLite's BEGIN IMMEDIATE does, so every read-then-write in the store must
hold up here: the same posts saved twice, the same outbox drained twice, the same escalations
escalated twice, the same alert acknowledged twice, failures counted from several places."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlmodel import Session, func, select

from listener.config.model import OutboxSettings
from listener.outbox import Deliverer
from listener.store import AlertRow, DeliveryRow, EscalationRow, PostRow, Store
from tests.test_store_outbox import Sink, decided

T = TypeVar("T")
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    opened = [Store(postgres_url) for _ in range(4)]
    yield opened
    for store in opened:
        store.close()


def together(work: list[Callable[[], T]]) -> list[T]:
    """Run each function in its own thread, all released at once; their results, or raise the
    first error one of them raised."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work[index]()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def count(store: Store, model: Any, *where: Any) -> int:
    with Session(store.engine) as session:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


def test_the_same_posts_saved_by_several_processes_at_once_are_alerted_once(
    stores: list[Store],
) -> None:
    for round_ in range(3):
        numbers = list(range(round_ * 100, round_ * 100 + 100))
        batches = [
            [decided(n) for n in numbers],
            [decided(n) for n in reversed(numbers)],
            [decided(n) for n in numbers[::2]],
            [decided(n) for n in numbers[1::2] + numbers[::2]],
        ]
        results = together(
            [
                lambda s=s, b=b: s.save_batch(f"replay:{id(b)}", "1", b, now=T0)
                for s, b in zip(stores, batches, strict=True)
            ]
        )
        assert sum(r.new_posts for r in results) == 100
        assert sum(r.alerts for r in results) == 100
    assert count(stores[0], PostRow) == 300
    assert count(stores[0], AlertRow) == 300
    assert stores[0].outbox_counts() == {"pending": 300}


def test_several_deliverers_on_one_outbox_send_each_row_once(stores: list[Store]) -> None:
    stores[0].save_batch("k", None, [decided(n, receivers=("a", "b")) for n in range(80)], now=T0)
    sink = Sink()
    deliverers = [Deliverer(store, {"a": sink, "b": sink}, OutboxSettings()) for store in stores]
    together([d.deliver_due for d in deliverers])
    assert sorted(sink.sent) == sorted([*range(1, 81), *range(1, 81)])
    assert stores[0].outbox_counts() == {"sent": 160}


def test_escalations_due_escalated_by_several_processes_at_once_go_out_once(
    stores: list[Store],
) -> None:
    stores[0].save_batch("k", None, [decided(n) for n in range(40)], now=T0)
    with Session(stores[0].engine) as session, session.begin():
        for alert_id in range(1, 41):
            session.add(
                EscalationRow(
                    alert_id=alert_id,
                    route="r",
                    due_at=T0 + timedelta(minutes=15),
                    receivers=json.dumps(["oncall"]),
                )
            )
    stores[0].acknowledge(7, by="u", via="cli", now=T0)
    later = T0 + timedelta(minutes=20)
    results = together([lambda s=s: s.escalate_due(later) for s in stores])
    assert sum(escalated for escalated, _ in results) == 39
    assert sum(called_off for _, called_off in results) == 1
    assert count(stores[0], AlertRow, AlertRow.post_id.like("%#escalation")) == 39  # type: ignore[attr-defined]
    assert count(stores[0], DeliveryRow, DeliveryRow.receiver == "oncall") == 39
    assert {e.status for e in stores[0].escalations()} == {"sent", "called-off"}


def test_one_alert_acknowledged_from_several_places_at_once_keeps_the_first(
    stores: list[Store],
) -> None:
    stores[0].save_batch("k", None, [decided(1)], now=T0)
    results = together(
        [
            lambda s=s, n=n: s.acknowledge(1, by=f"user{n}", via="slack")
            for n, s in enumerate(stores)
        ]
    )
    assert sorted(new for _, new in results) == [False, False, False, True]
    assert len({row.by for row, _ in results}) == 1  # all see the one that stayed


def test_source_failures_counted_from_several_processes_are_all_counted(
    stores: list[Store],
) -> None:
    def fail_25_times(store: Store) -> None:
        for _ in range(25):
            store.record_source_failure("bluesky:search", "down", now=T0)

    together([lambda s=s: fail_25_times(s) for s in stores])
    [state] = stores[0].source_states()
    assert state.failures == 100
