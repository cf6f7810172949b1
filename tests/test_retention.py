"""Retention: the daemon forgets posts older than `[retention] posts`, at start and every
`[retention] every`; posts that were alerted stay."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.post import Author, Post
from tests.support.configs import write_setup

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALERTED_TEXT = "de bieb in Leusden is dicht"  # local search, located in Leusden: an alert
QUIET_TEXT = "lekker weer vandaag"  # no organisation: no alert


def post(pid: str, text: str, age: timedelta) -> Post:
    return Post(pid, "bluesky", text, NOW - age)


def make_daemon(folder: Path, retention: str = "") -> Daemon:
    config = load_config(write_setup(folder, extra_main=retention))
    daemon = Daemon.from_config(config, env={})
    daemon.clock = lambda: NOW
    daemon.sources = []
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = make_daemon(tmp_path)
    yield d
    d.store.close()


def stored_ids(daemon: Daemon) -> set[str]:
    return {p.id for p in daemon.store.posts_since(NOW - timedelta(days=3650))}


def test_posts_older_than_the_retention_go_and_alerted_ones_stay(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.ingest(
        [
            post("old-quiet", QUIET_TEXT, timedelta(days=91)),
            post("old-alerted", ALERTED_TEXT, timedelta(days=200)),
            post("recent-quiet", QUIET_TEXT, timedelta(days=89)),
        ]
    )
    assert stored_ids(daemon) == {"old-quiet", "old-alerted", "recent-quiet"}
    with caplog.at_level(logging.INFO, logger="listener.daemon"):
        assert daemon.prune_posts() == 1
    assert stored_ids(daemon) == {"old-alerted", "recent-quiet"}
    assert "retention: 1 post(s) from before 2026-08-22T12:00+00:00 pruned" in caplog.text
    assert daemon.prune_posts() == 0


def test_the_retention_setting_decides_what_is_old(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, '[retention]\nposts = "7d"\n')
    try:
        daemon.ingest(
            [
                post("eight-days", QUIET_TEXT, timedelta(days=8)),
                post("six-days", QUIET_TEXT, timedelta(days=6)),
            ]
        )
        assert daemon.prune_posts() == 1
        assert stored_ids(daemon) == {"six-days"}
    finally:
        daemon.store.close()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def run_in_background(daemon: Daemon) -> Callable[[], None]:
    """Start `run_forever` in a thread; returns what stops it and waits for it."""
    runner = threading.Thread(target=daemon.run_forever)
    runner.start()

    def stop() -> None:
        daemon.stop_event.set()
        runner.join(timeout=30)
        daemon.store.close()
        assert not runner.is_alive()

    return stop


def test_the_running_daemon_prunes_at_start(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, '[retention]\nevery = "1h"\n')
    daemon.ingest([post("stale", QUIET_TEXT, timedelta(days=100))])
    stop = run_in_background(daemon)
    try:
        assert wait_for(lambda: stored_ids(daemon) == set()), "not pruned at start"
    finally:
        stop()


def test_the_running_daemon_prunes_again_every_retention_every(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, '[retention]\nevery = "0.3s"\n')
    stop = run_in_background(daemon)
    try:
        time.sleep(0.5)  # the pruning at start is done
        daemon.ingest(
            [
                post("stale", QUIET_TEXT, timedelta(days=100)),
                post("fresh", QUIET_TEXT, timedelta(days=1)),
            ]
        )
        assert wait_for(lambda: stored_ids(daemon) == {"fresh"}), "not pruned again"
    finally:
        stop()


# --- alerts: `[retention] alerts` (365 days) ------------------------------------------------------

DIGEST_ROUTES = """\
[[receivers]]
id = "console"
type = "console"

[[routes]]
id = "hourly"
receivers = ["console"]
mode = "digest"
digest_every = "1h"
"""


def authored(pid: str, text: str, handle: str, when: datetime) -> Post:
    return Post(pid, "bluesky", text, when, author=Author(handle=handle))


def table_counts(folder: Path) -> dict[str, int]:
    connection = sqlite3.connect(folder / "listener.db")
    try:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not name.startswith(("sqlite_", "alembic"))
        ]
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        connection.close()


def test_alerts_older_than_the_retention_go_with_everything_hanging_off_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = make_daemon(tmp_path)
    (tmp_path / "alerts" / "routes.toml").write_text(DIGEST_ROUTES, encoding="utf-8")
    daemon = Daemon.from_config(load_config(tmp_path / "config.toml"), env={}, store=daemon.store)
    old = NOW - timedelta(days=400)
    daemon.clock = lambda: old
    daemon.store.add_silence(["author=spammer"], old + timedelta(days=1), "spam", now=old)
    daemon.ingest(
        [
            authored("old-1", ALERTED_TEXT, "anna", old - timedelta(hours=3)),
            authored("old-2", ALERTED_TEXT, "bert", old - timedelta(hours=2)),  # a follow-up
            authored(
                "old-3", "de bieb in Amersfoort is dicht", "spammer", old - timedelta(hours=1)
            ),
        ]
    )
    first = daemon.store.alerts_since(old - timedelta(days=1))[0]
    assert first.id is not None
    daemon.store.add_feedback(first.id, "relevant", now=old)
    daemon.store.acknowledge(first.id, by="anna", via="cli", now=old)
    recent = NOW - timedelta(days=10)
    daemon.clock = lambda: recent
    daemon.ingest([authored("new-1", "de bieb in Amersfoort is weer open", "cees", recent)])
    [kept] = daemon.store.alerts_since(recent)
    assert kept.id is not None
    daemon.store.add_feedback(kept.id, "relevant", now=recent)
    before = table_counts(tmp_path)
    assert before["alerts"] == 4 and before["alert_links"] == 1
    assert before["silenced_deliveries"] == 1 and before["digest_items"] == 3

    daemon.clock = lambda: NOW
    with caplog.at_level(logging.INFO, logger="listener.daemon"):
        gone = daemon.prune_alerts()

    assert gone["alerts"] == 3 and gone["posts"] == 3 and gone["decisions"] == 3
    assert gone["deliveries"] == 3 and gone["digest items"] == 2 and gone["digests"] == 1
    assert gone["links"] == 1 and gone["feedback"] == 1 and gone["acks"] == 1
    assert gone["silenced deliveries"] == 1 and gone["post authors"] == 3
    assert "retention: 3 alert(s) from before 2025-11-20T12:00+00:00 deleted, with" in caplog.text
    after = table_counts(tmp_path)
    assert after["alerts"] == 1 and after["posts"] == 1 and after["feedback"] == 1
    assert after["outbox"] == 1 and after["digest_items"] == 1 and after["digests"] == 1
    assert after["alert_links"] == after["acks"] == after["silenced_deliveries"] == 0
    assert [a.id for a in daemon.store.alerts_since(NOW - timedelta(days=3650))] == [kept.id]
    assert daemon.prune_alerts() == {}
    daemon.store.close()


def test_the_alert_retention_setting_decides_what_is_old(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, '[retention]\nalerts = "30d"\n')
    try:
        for days, pid in ((31, "a"), (29, "b")):
            daemon.clock = lambda days=days: NOW - timedelta(days=days)  # type: ignore[misc]
            daemon.ingest([post(pid, ALERTED_TEXT, timedelta(days=days))])
        daemon.clock = lambda: NOW
        assert daemon.prune_alerts()["alerts"] == 1
        assert stored_ids(daemon) == {"b"}
    finally:
        daemon.store.close()


def test_the_running_daemon_prunes_old_alerts_at_start(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path, '[retention]\nevery = "1h"\nalerts = "30d"\n')
    daemon.clock = lambda: NOW - timedelta(days=40)
    daemon.ingest([post("stale-alert", ALERTED_TEXT, timedelta(days=40))])
    daemon.clock = lambda: NOW
    assert stored_ids(daemon) == {"stale-alert"}
    stop = run_in_background(daemon)
    try:
        assert wait_for(lambda: stored_ids(daemon) == set()), "old alert not pruned at start"
    finally:
        stop()
