"""Source health: a source failing or silent far too long raises one alert about listener."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.sources import Batch, SourceError
from tests.support.configs import write_setup
from tests.test_daemon import Clock, ScriptedSource, make_post


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    d = Daemon.from_config(load_config(write_setup(tmp_path)), env={})
    d.clock = Clock()
    d.jitter = lambda: 1.0
    yield d
    d.store.close()


def poll_for(daemon: Daemon, source: ScriptedSource, span: timedelta) -> None:
    """Poll every interval for `span`, past any backoff, as the scheduler would."""
    end = daemon.clock.now + span
    while daemon.clock.now <= end:
        daemon._not_before.clear()
        daemon.poll(source)
        daemon.clock.now += source.interval


def health_alerts(daemon: Daemon) -> list[str]:
    from sqlmodel import Session, select

    from listener.store import AlertRow

    with Session(daemon.store.engine) as session:
        return [a.post_id for a in session.exec(select(AlertRow).where(AlertRow.org == "listener"))]


def test_a_source_failing_for_an_hour_raises_one_alert_to_every_receiver(daemon: Daemon) -> None:
    source = ScriptedSource("bluesky:search:x", [SourceError("401 Unauthorized")] * 100)
    source.interval = timedelta(minutes=5)
    poll_for(daemon, source, timedelta(minutes=55))
    assert health_alerts(daemon) == []  # not yet: a short outage is no news
    poll_for(daemon, source, timedelta(hours=2))
    [alert] = health_alerts(daemon)
    assert alert.startswith("listener:health:bluesky:search:x:")
    [delivery] = [d for d in daemon.store.deliveries()]
    assert delivery.receiver == "console"
    message = daemon.store.due(daemon.clock.now)
    assert message  # in the outbox, to be delivered like any alert


def test_the_alert_says_what_fails_since_when_and_what_to_check(daemon: Daemon) -> None:
    source = ScriptedSource(
        "bluesky:search:x", [SourceError("401: check BLUESKY_APP_PASSWORD")] * 50
    )
    source.interval = timedelta(minutes=5)
    poll_for(daemon, source, timedelta(hours=2))
    trouble = daemon.health.trouble(source.key, source.interval, daemon.clock.now)
    assert trouble is not None
    assert "bluesky:search:x has failed for 2 hours" in trouble.text
    assert "401: check BLUESKY_APP_PASSWORD" in trouble.text


def test_a_recovered_source_is_healthy_and_a_new_outage_alerts_again(daemon: Daemon) -> None:
    failing = [SourceError("503")] * 30
    source = ScriptedSource("rss:x", [*failing, Batch([make_post(1)], "c"), *failing])
    source.interval = timedelta(minutes=5)
    poll_for(daemon, source, timedelta(hours=2))  # 25 of the 30 failures
    assert daemon.health.trouble(source.key, source.interval, daemon.clock.now) is not None
    poll_for(daemon, source, timedelta(minutes=25))  # the rest, then the success
    assert daemon.health.trouble(source.key, source.interval, daemon.clock.now) is None
    poll_for(daemon, source, timedelta(hours=2))  # a new outage
    assert len(health_alerts(daemon)) == 2  # one per outage, never one per poll


def test_a_source_that_answers_but_brings_nothing_for_days_is_reported(daemon: Daemon) -> None:
    source = ScriptedSource("rss:quiet", [Batch([make_post(1)], "c")])
    source.interval = timedelta(minutes=15)
    poll_for(daemon, source, timedelta(hours=23))
    assert health_alerts(daemon) == []
    poll_for(daemon, source, timedelta(hours=2))
    trouble = daemon.health.trouble(source.key, source.interval, daemon.clock.now)
    assert trouble is not None and "has brought no new post for" in trouble.text
    assert len(health_alerts(daemon)) == 1
