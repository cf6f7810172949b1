"""Retention: the daemon forgets posts older than `[retention] posts`, at start and every
`[retention] every`; posts that were alerted stay."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.post import Post
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
