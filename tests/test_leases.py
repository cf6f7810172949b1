"""Poll leases (listener.leases): one instance polls a source at a time, about once per interval
however many instances run, and another takes over when the one polling dies — on SQLite and
on a real PostgreSQL server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.leases import HANDOVER, LEASE, Leases
from listener.post import Post
from listener.sources import Batch
from listener.store import Store
from tests.support.configs import write_setup

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(database_url: str):
    opened = Store(database_url)
    yield opened
    opened.close()


def test_one_claim_at_a_time_then_the_owner_first_then_anyone(store: Store) -> None:
    clock = Clock()
    a = Leases(store.engine, "host-a:1:aa", clock=clock)
    b = Leases(store.engine, "host-b:2:bb", clock=clock)

    assert a.claim("rss:x").taken
    held = b.claim("rss:x")
    assert not held.taken and held.owner == "host-a:1:aa"
    assert held.retry_at == T0 + LEASE  # when A's claim would run out

    clock.now += timedelta(seconds=20)
    assert a.renew("rss:x")  # A is alive and still polling
    assert not b.claim("rss:x").taken
    a.release("rss:x", timedelta(minutes=5))  # done; next poll due in 5 minutes
    due = clock.now + timedelta(minutes=5)

    waiting = b.claim("rss:x")
    assert not waiting.taken and waiting.retry_at == due + HANDOVER  # not due, and not B's
    assert not a.claim("rss:x").taken  # not due for A either

    clock.now = due
    assert not b.claim("rss:x").taken  # A, which polled it last, goes first
    assert a.claim("rss:x").taken
    a.release("rss:x", timedelta(minutes=5))

    clock.now += timedelta(minutes=5) + HANDOVER  # A did not come: it is gone or stuck
    assert b.claim("rss:x").taken
    assert [row.owner for row in b.rows()] == ["host-b:2:bb"]


def test_a_dead_instance_s_claim_runs_out_and_its_late_writes_are_refused(store: Store) -> None:
    clock = Clock()
    a = Leases(store.engine, "host-a:1:aa", clock=clock)
    b = Leases(store.engine, "host-b:2:bb", clock=clock)
    assert a.claim("replay:x").taken
    clock.now += LEASE - timedelta(seconds=1)
    assert not b.claim("replay:x").taken
    clock.now += timedelta(seconds=1)  # A never renewed: its claim has run out
    assert b.claim("replay:x").taken
    assert not a.renew("replay:x")  # A wakes up: the source is not A's any more
    a.release("replay:x", timedelta(0))  # and A's release changes nothing
    [row] = b.rows()
    assert row.owner == "host-b:2:bb" and row.until > clock.now


def test_an_unscheduled_poll_needs_a_free_claim_but_not_a_due_one(store: Store) -> None:
    clock = Clock()
    a = Leases(store.engine, "host-a:1:aa", clock=clock)
    b = Leases(store.engine, "host-b:2:bb", clock=clock)
    assert a.claim("rss:x").taken
    assert not b.claim("rss:x", due_matters=False).taken  # A is polling it
    a.release("rss:x", timedelta(hours=1))
    assert not b.claim("rss:x").taken
    assert b.claim("rss:x", due_matters=False).taken  # `listener run --once`


def test_a_claim_of_a_process_on_this_host_that_is_gone_is_taken_at_once(store: Store) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = f"{socket.gethostname()}:{finished.stdout.strip()}:dd"
    alive = f"{socket.gethostname()}:1:ee"  # pid 1 is always there
    clock = Clock()
    assert Leases(store.engine, dead, clock=clock).claim("rss:x").taken
    assert Leases(store.engine, alive, clock=clock).claim("rss:y").taken
    me = Leases(store.engine, "host-me:3:ff", clock=clock)
    assert me.claim("rss:x").taken  # a crash, then a restart: no waiting for the lease
    assert not me.claim("rss:y").taken


def test_instances_racing_for_one_source_get_it_once(store: Store) -> None:
    """Eight instances claim the same sources at the same moment, over and over: each round,
    exactly one wins each source (on PostgreSQL these are truly concurrent transactions)."""
    clock = Clock()
    instances = [Leases(store.engine, f"host-{n}:{n}:x", clock=clock) for n in range(8)]
    for round_ in range(15):
        clock.now = T0 + round_ * (LEASE + HANDOVER + timedelta(seconds=1))
        barrier = threading.Barrier(len(instances))
        won: list[tuple[str, str]] = []

        def race(leases: Leases, barrier: threading.Barrier, won: list[tuple[str, str]]) -> None:
            barrier.wait()
            for key in ("rss:a", "rss:b"):
                if leases.claim(key).taken:
                    won.append((key, leases.owner))

        threads = [
            threading.Thread(target=race, args=(leases, barrier, won)) for leases in instances
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(key for key, _ in won) == ["rss:a", "rss:b"], won


def test_times_are_the_database_s_clock(store: Store) -> None:
    now = Leases(store.engine).now()
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


class CountingSource:
    key = "replay:posts.jsonl"
    name = "replay"
    interval = timedelta(seconds=30)

    def __init__(self) -> None:
        self.fetches = 0

    def fetch(self, cursor: str | None) -> Batch:
        self.fetches += 1
        post = Post(id=f"t:{self.fetches}", source="bluesky", text="niets", created_at=T0)
        return Batch([post], str(self.fetches))


def test_two_daemons_on_one_database_poll_a_source_once_per_interval(tmp_path: Path) -> None:
    """Two daemons (as two processes would be) on one SQLite file: while one polls a source the
    other's scheduled poll is skipped and says when to try again; the next scheduled poll is
    due an interval later whoever asks; `run --once` waits for the other's poll to end."""
    config = load_config(write_setup(tmp_path))
    first = Daemon.from_config(config, env={})
    second = Daemon.from_config(config, env={}, store=Store(config.database_url))
    assert first.leases is not None and second.leases is not None
    assert first.leases.owner != second.leases.owner
    source = CountingSource()
    try:
        assert first.poll(source, scheduled=True).fetched == 1

        skipped = second.poll(source, scheduled=True)  # due in about an interval: not now
        assert skipped.fetched == 0 and skipped.elsewhere is not None
        assert skipped.elsewhere.owner == first.leases.owner
        assert skipped.elsewhere.retry_at is not None
        wait = skipped.elsewhere.retry_at - datetime.now(UTC)
        interval = source.interval
        assert interval - timedelta(seconds=10) < wait <= interval + HANDOVER
        assert first.poll(source, scheduled=True).elsewhere is not None  # not due for it either

        assert first.leases.claim(source.key, due_matters=False).taken  # first polls again...
        release = threading.Timer(0.5, first.leases.release, (source.key, interval))
        release.start()
        started = datetime.now(UTC)
        once = second.poll(source)  # ...and `run --once` on the second waits for it
        assert once.fetched == 1 and datetime.now(UTC) - started >= timedelta(seconds=0.4)
        assert source.fetches == 2
    finally:
        second.store.close()
        first.store.close()


def test_an_instance_that_stops_cleanly_hands_its_sources_over_when_due(store: Store) -> None:
    clock = Clock()
    a = Leases(store.engine, "host-a:1:aa", clock=clock)
    b = Leases(store.engine, "host-b:2:bb", clock=clock)
    assert a.claim("rss:x").taken
    a.release("rss:x", timedelta(minutes=5))
    assert a.resign() == 1
    clock.now += timedelta(minutes=5) - timedelta(seconds=1)
    assert not b.claim("rss:x").taken  # not due yet: no early poll
    clock.now += timedelta(seconds=1)
    assert b.claim("rss:x").taken  # due: no handover wait for an instance that left


def test_an_instance_that_lost_the_source_cannot_save_or_move_its_cursor(store: Store) -> None:
    from listener.store import LeaseLost

    clock = Clock()
    a = Leases(store.engine, "host-a:1:aa", clock=clock)
    b = Leases(store.engine, "host-b:2:bb", clock=clock)
    assert a.claim("replay:x").taken
    store.save_batch("replay:x", "1", [], fence=a.fence("replay:x"))
    clock.now += LEASE  # A stalls in a fetch; B takes the source over and saves
    assert b.claim("replay:x").taken
    store.save_batch("replay:x", "2", [], fence=b.fence("replay:x"))
    with pytest.raises(LeaseLost):  # A's late batch: nothing saved, the cursor stays B's
        store.save_batch("replay:x", "1b", [], fence=a.fence("replay:x"))
    assert store.cursor("replay:x") == "2"
