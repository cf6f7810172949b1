"""The daemon's wiring: polling, cursors, and a failing source that backs off alone."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.post import Author, Post
from listener.sources import Batch, SourceError
from tests.support.configs import write_setup


@dataclass
class ScriptedSource:
    """A source whose fetches are scripted: a Batch to return or an exception to raise."""

    key: str
    script: list[Batch | Exception]
    name: str = "replay"
    interval: timedelta = timedelta(seconds=10)
    cursors: list[str | None] = field(default_factory=list)

    def fetch(self, cursor: str | None) -> Batch:
        self.cursors.append(cursor)
        step = self.script.pop(0) if self.script else Batch([], None)
        if isinstance(step, Exception):
            raise step
        return step


def make_post(n: int, text: str = "de bieb in Leusden is dicht") -> Post:
    return Post(
        id=f"t:{n}", source="bluesky", text=text, created_at=datetime(2026, 11, 20, tzinfo=UTC)
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    config = load_config(write_setup(tmp_path))
    d = Daemon.from_config(config, env={})
    d.clock = Clock()
    d.jitter = lambda: 1.0
    yield d
    d.store.close()


def test_a_poll_saves_every_batch_and_resumes_from_the_cursor(daemon: Daemon) -> None:
    source = ScriptedSource(
        "s",
        [
            Batch([make_post(1)], "c1", more=True),
            Batch([make_post(2), make_post(3, "hallo")], "c2"),
        ],
    )
    result = daemon.poll(source)
    # the second post says what the first said: a follow-up in its thread, not a new alert
    assert (result.fetched, result.new_posts, result.alerts, result.follow_ups) == (3, 3, 1, 1)
    assert source.cursors == [None, "c1"]
    assert daemon.store.cursor("s") == "c2"
    daemon.poll(source)
    assert source.cursors[-1] == "c2"


def test_a_failing_source_backs_off_and_the_others_keep_running(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    broken = ScriptedSource(
        "broken", [SourceError("HTTP 503"), SourceError("HTTP 503"), Batch([], None)]
    )
    fine = ScriptedSource("fine", [Batch([make_post(1)], "c1")])
    clock = daemon.clock
    with caplog.at_level(logging.WARNING):
        assert daemon.poll(broken).error == "HTTP 503"
    assert "source broken failed (1 in a row), next try in 30s: HTTP 503" in caplog.text
    assert daemon.poll(fine).new_posts == 1

    daemon.poll(broken)  # still backing off: not even tried
    assert len(broken.cursors) == 1
    clock.now += timedelta(seconds=31)
    daemon.poll(broken)
    assert "source broken failed (2 in a row), next try in 60s" in caplog.text
    clock.now += timedelta(seconds=61)
    assert daemon.poll(broken).error is None
    [state] = [s for s in daemon.store.source_states() if s.key == "broken"]
    assert state.failures == 0


def test_a_retry_after_from_the_source_is_honoured(daemon: Daemon) -> None:
    source = ScriptedSource("s", [SourceError("429", retry_after=600)])
    daemon.poll(source)
    daemon.clock.now += timedelta(seconds=300)
    daemon.poll(source)
    assert len(source.cursors) == 1


def test_a_crashing_source_is_logged_and_does_not_stop_the_daemon(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    source = ScriptedSource("s", [ZeroDivisionError("bug")])
    with caplog.at_level(logging.ERROR):
        result = daemon.poll(source)
    assert result.error == "ZeroDivisionError: bug"
    assert "source s crashed" in caplog.text


def test_a_stop_request_ends_polling_between_batches(daemon: Daemon) -> None:
    source = ScriptedSource(
        "s", [Batch([make_post(1)], "c1", more=True), Batch([make_post(2)], "c2")]
    )
    original = daemon.store.save_batch

    def save_then_stop(*args, **kwargs):
        saved = original(*args, **kwargs)
        daemon.stop_event.set()
        return saved

    daemon.store.save_batch = save_then_stop  # type: ignore[method-assign]
    daemon.poll(source)
    assert source.cursors == [None]
    assert daemon.store.cursor("s") == "c1"


def test_a_permanent_source_error_waits_the_maximum_and_is_an_error(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    source = ScriptedSource("s", [SourceError("HTTP 404", transient=False)])
    with caplog.at_level(logging.ERROR):
        daemon.poll(source)
    assert "source s failed (1 in a row), next try in 3600s: HTTP 404" in caplog.text


def test_a_poll_that_saved_alerts_wakes_delivery_at_once(daemon: Daemon) -> None:
    daemon.poll(ScriptedSource("quiet", [Batch([make_post(1, "hallo")], "c1")]))
    assert not daemon.wake_delivery.is_set()
    daemon.poll(ScriptedSource("busy", [Batch([make_post(2)], "c1")]))
    assert daemon.wake_delivery.is_set()


def test_with_nominatim_on_an_unknown_profile_location_is_looked_up_once(tmp_path: Path) -> None:
    from tests.support.nominatim_server import NominatimServer, place

    eemplein = place(1, "Eemplein, Amersfoort, Utrecht, Nederland", "52.1572", "5.3826", "nl")
    with NominatimServer(places={"eemplein 77": [eemplein]}) as server:
        geo = (
            f'[geo]\nnominatim = true\nnominatim_domain = "{server.domain}"\n'
            'nominatim_scheme = "http"\nuser_agent = "listener tests (test@example.org)"\n'
            'min_interval = "0.01s"\n'
        )
        daemon = Daemon.from_config(load_config(write_setup(tmp_path, extra_main=geo)), env={})
        posts = [
            Post(f"t:{n}", "bluesky", "de bieb is dicht", datetime(2026, 11, 20, tzinfo=UTC),
                 author=Author(handle=f"a{n}", location="Eemplein 77"))
            for n in (1, 2)
        ]  # fmt: skip
        daemon.poll(ScriptedSource("s", [Batch(posts, "c1")]))
        decisions = [daemon.classifier.decide(p) for p in posts]
        daemon.store.close()
    assert [(d.org, d.branch) for d in decisions] == [("eemland", "amersfoort")] * 2
    assert [r.params["q"] for r in server.requests] == ["eemplein 77"]  # then the cache answers


def test_backoff_has_jitter_so_sources_that_failed_together_retry_apart(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.jitter = lambda: 1.1
    with caplog.at_level(logging.WARNING):
        daemon.poll(ScriptedSource("s", [SourceError("HTTP 503")]))
    assert "next try in 33s" in caplog.text
