"""Tuning while it runs: the daemon picks up edits to its configuration files without a
restart, keeps the last good configuration when an edit is broken, and never alerts twice on a
post a changed search finds again."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.reload import ConfigWatcher
from listener.sources import Batch
from listener.store import Store
from tests.support.configs import QUERIES, write_setup
from tests.support.feedserver import FeedServer
from tests.test_retention import wait_for

FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Nieuws</title><language>nl</language>
<item><title>De bieb in Leusden is dicht door een storing</title>
<link>https://nieuws.example/leusden-dicht</link><guid>leusden-dicht</guid>
<pubDate>Fri, 20 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>Bibliotheek Amersfoort opent een nieuwe leeszaal</title>
<link>https://nieuws.example/amersfoort-leeszaal</link><guid>amersfoort-leeszaal</guid>
<pubDate>Fri, 20 Nov 2026 11:00:00 GMT</pubDate></item>
</channel></rss>
"""
ONLY_RSS = QUERIES.replace(
    'terms = ["de bieb", "bibliotheek"]', 'terms = ["de bieb", "bibliotheek"]\nsources = ["rss"]'
)
MORE_TERMS = ONLY_RSS.replace(
    'terms = ["de bieb", "bibliotheek"]', 'terms = ["de bieb", "bibliotheek", "leeszaal"]'
)


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    with FeedServer(FEED) as server:
        yield server


def rss_setup(folder: Path, feed: FeedServer, queries: str = ONLY_RSS) -> Path:
    extra = f'[sources.rss]\nurl_template = "{feed.url("/search")}?q={{query}}"\n'
    return write_setup(folder, extra_main=extra, queries=queries)


@pytest.fixture
def daemon(tmp_path: Path, feed: FeedServer) -> Iterator[Daemon]:
    d = Daemon.from_config(load_config(rss_setup(tmp_path, feed)), env={})
    yield d
    d.store.close()


def source(daemon: Daemon, key: str) -> object:
    return next(s for s in daemon.sources if s.key == key)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_changed_search_reschedules_its_source_and_does_not_alert_again(
    tmp_path: Path, daemon: Daemon, feed: FeedServer
) -> None:
    watcher = ConfigWatcher(daemon, env={})
    assert watcher.check() is None  # nothing changed yet
    alerts = sum(daemon.poll(s).alerts for s in daemon.sources)
    assert alerts == 2  # both news items, each once per organisation
    brand = source(daemon, "rss:search:eemland-brand")
    old = source(daemon, "rss:search:de-bieb")

    (tmp_path / "queries" / "eemland.toml").write_text(MORE_TERMS, encoding="utf-8")
    changes = watcher.check()

    assert changes is not None
    assert changes.searches.changed == ["de-bieb"]
    assert changes.sources.changed == ["rss:search:de-bieb"]
    assert not changes.sources.added and not changes.sources.removed
    assert "searches ~de-bieb" in changes.summary()
    new = source(daemon, "rss:search:de-bieb")
    assert new is not old  # rebuilt with the new terms
    assert source(daemon, "rss:search:eemland-brand") is brand  # untouched: kept as it was
    assert any(s.id == "de-bieb" and "leeszaal" in s.terms for s in daemon.config.searches)
    result = daemon.poll(new)  # type: ignore[arg-type]
    assert "leeszaal" in feed.requests[-1].query["q"][0]
    assert (result.fetched, result.new_posts, result.alerts) == (2, 0, 0)  # the same posts
    assert len(daemon.store.alerts_since(daemon.clock() - timedelta(days=3650))) == 2
    assert watcher.check() is None  # reloaded once, not on every check


def test_the_same_post_decided_again_by_a_changed_search_is_not_alerted_twice(
    tmp_path: Path, daemon: Daemon
) -> None:
    """Even a post decided again after a change (its first save lost) keeps one alert per
    organisation: the store's unique (post, org) key holds."""
    watcher = ConfigWatcher(daemon, env={})
    [post_source] = [s for s in daemon.sources if s.key == "rss:search:de-bieb"]
    batch = post_source.fetch(None)
    first = [daemon.classifier.process(p, "rss", daemon.active) for p in batch.posts]
    (tmp_path / "queries" / "eemland.toml").write_text(MORE_TERMS, encoding="utf-8")
    assert watcher.check() is not None
    again = [daemon.classifier.process(p, "rss", daemon.active) for p in batch.posts]
    saved = daemon.store.save_batch("a", None, first)
    resaved = daemon.store.save_batch("b", None, again)
    assert saved.alerts == 2 and (resaved.new_posts, resaved.alerts) == (0, 0)


def test_a_broken_edit_is_logged_with_file_line_and_field_and_the_daemon_keeps_going(
    tmp_path: Path, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = ConfigWatcher(daemon, env={})
    good = daemon.config
    routes = tmp_path / "alerts" / "routes.toml"
    edit(routes, 'receivers = ["console"]', 'receivers = ["console", "slakc"]')

    with caplog.at_level(logging.INFO, logger="listener.reload"):
        assert watcher.check() is None

    problem = f"{routes}:7: routes[0].receivers: unknown receiver 'slakc' (known: console)"
    assert problem in caplog.text
    assert (
        "configuration not reloaded: 1 problem(s); still running the last good one" in caplog.text
    )
    assert daemon.config is good
    caplog.clear()
    assert watcher.check() is None  # the same broken files are not reported again
    assert caplog.text == ""

    edit(routes, '"slakc"', '"mail"')
    edit(
        routes,
        "[[routes]]",
        '[[receivers]]\nid = "mail"\ntype = "webhook"\nurl_env = "NO_SUCH_URL"\n'
        'secret_env = "NO_SUCH_SECRET"\n\n[[routes]]',
    )
    with caplog.at_level(logging.INFO, logger="listener.reload"):
        changes = watcher.check()
    assert changes is not None
    assert changes.receivers.added == ["mail"] and changes.routes.changed == ["routes-1"]
    assert "configuration reloaded: routes ~routes-1; receivers +mail" in caplog.text
    assert [r.receivers for r in daemon.config.routes] == [["console", "mail"]]
    assert "mail" in daemon.deliverer.unavailable  # its secrets are not set: said, not fatal


def test_a_new_and_a_removed_query_file_add_and_remove_searches_and_sources(
    tmp_path: Path, daemon: Daemon
) -> None:
    watcher = ConfigWatcher(daemon, env={})
    extra = tmp_path / "queries" / "late.toml"
    extra.write_text(
        '[[searches]]\nid = "late-night"\nkind = "local"\nterms = ["avondopenstelling"]\n'
        'sources = ["rss"]\n',
        encoding="utf-8",
    )
    changes = watcher.check()
    assert changes is not None and changes.searches.added == ["late-night"]
    assert changes.sources.added == ["rss:search:late-night"]
    assert "rss:search:late-night" in {s.key for s in daemon.sources}

    extra.unlink()
    changes = watcher.check()
    assert changes is not None and changes.searches.removed == ["late-night"]
    assert changes.sources.removed == ["rss:search:late-night"]
    assert "rss:search:late-night" not in {s.key for s in daemon.sources}


def test_a_changed_urgency_file_is_picked_up(tmp_path: Path, feed: FeedServer) -> None:
    config = rss_setup(tmp_path, feed)
    edit(config, 'alerts_dir = "alerts"', 'alerts_dir = "alerts"\nurgency = "urgency.toml"')
    (tmp_path / "urgency.toml").write_text("[levels]\ncritical = 80\n", encoding="utf-8")
    daemon = Daemon.from_config(load_config(config), env={})
    try:
        watcher = ConfigWatcher(daemon, env={})
        (tmp_path / "urgency.toml").write_text("[levels]\ncritical = 70\n", encoding="utf-8")
        changes = watcher.check()
        assert changes is not None and changes.urgency
        assert daemon.config.urgency.levels.critical == 70
        assert daemon.classifier.config is daemon.config  # decides with the new settings
    finally:
        daemon.store.close()


@dataclass
class GatedSource:
    """A source whose fetch waits until the test lets it go."""

    key: str = "gated"
    name: str = "replay"
    interval: timedelta = timedelta(seconds=10)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def fetch(self, cursor: str | None) -> Batch:
        self.entered.set()
        assert self.release.wait(10)
        return Batch([], None)


def test_the_swap_waits_for_a_poll_in_flight(tmp_path: Path, daemon: Daemon) -> None:
    watcher = ConfigWatcher(daemon, env={})
    gated = GatedSource()
    daemon.sources = [*daemon.sources, gated]  # type: ignore[list-item]
    poll = threading.Thread(target=daemon._poll_job, args=[gated])
    swap = threading.Thread(target=watcher.check)
    poll.start()
    try:
        assert gated.entered.wait(10)
        (tmp_path / "queries" / "eemland.toml").write_text(MORE_TERMS, encoding="utf-8")
        classifier = daemon.classifier
        swap.start()
        swap.join(0.2)
        assert swap.is_alive(), "the swap did not wait for the poll"
        assert daemon.classifier is classifier  # the poll decides with one configuration
    finally:
        gated.release.set()
        poll.join(10)
    swap.join(10)
    assert not swap.is_alive() and daemon.classifier is not classifier
    assert gated not in daemon.sources  # not in the new configuration: not polled again
    daemon._poll_job(gated)
    assert gated.entered.is_set()
    gated.entered.clear()
    daemon._poll_job(gated)
    assert not gated.entered.is_set()


def test_the_running_daemon_reloads_and_polls_a_new_search(
    tmp_path: Path, feed: FeedServer
) -> None:
    setup = rss_setup(tmp_path, feed)
    daemon = Daemon.from_config(load_config(setup), env={})
    daemon.reload_every = timedelta(seconds=0.1)
    first = weakref.ref(daemon.classifier)
    runner = threading.Thread(target=daemon.run_forever)
    runner.start()
    try:
        assert wait_for(lambda: len(feed.requests) >= 2), "the sources were not polled at start"
        assert gc.get_freeze_count() > 0  # settled at start (`listener.heap`)
        (tmp_path / "queries" / "late.toml").write_text(
            '[[searches]]\nid = "late-night"\nkind = "local"\nterms = ["avondopenstelling"]\n'
            'sources = ["rss"]\n',
            encoding="utf-8",
        )
        assert wait_for(
            lambda: any("avondopenstelling" in r.query["q"][0] for r in feed.requests)
        ), "the new search's source was not polled"
        assert daemon._scheduler.get_job("poll:rss:search:late-night") is not None
        (tmp_path / "queries" / "late.toml").unlink()
        assert wait_for(lambda: daemon._scheduler.get_job("poll:rss:search:late-night") is None)
        assert wait_for(lambda: first() is None)  # the first classifier, settled, went at a reload
    finally:
        daemon.stop_event.set()
        runner.join(30)
        daemon.store.close()
    assert not runner.is_alive()
    assert gc.get_freeze_count() == 0  # stopped: everything handed back to the collector
    assert daemon._scheduler is None and not daemon.scheduler_running()
    daemon.apply(load_config(setup), env={})  # after the stop: nothing scheduled or settled
    assert gc.get_freeze_count() == 0
    store = Store(daemon.config.database_url)
    try:
        assert len(store.alerts_since(daemon.clock() - timedelta(days=3650))) == 2
    finally:
        store.close()


def test_a_source_taken_out_of_config_toml_is_closed(tmp_path: Path, feed: FeedServer) -> None:
    config = rss_setup(tmp_path, feed)
    jetstream = '[sources.jetstream]\nenabled = true\ninstances = ["ws://127.0.0.1:9/subscribe"]\n'
    config.write_text(config.read_text(encoding="utf-8") + jetstream, encoding="utf-8")
    daemon = Daemon.from_config(load_config(config), env={})
    try:
        watcher = ConfigWatcher(daemon, env={})
        [stream] = [s for s in daemon.sources if s.name == "jetstream"]
        edit(config, "enabled = true", "enabled = false")
        changes = watcher.check()
        assert changes is not None and changes.sources.removed == [stream.key]
        assert stream._closed  # type: ignore[attr-defined]
        assert all(s.name != "jetstream" for s in daemon.sources)
    finally:
        daemon.store.close()


def test_a_setting_only_a_restart_changes_is_said_so(
    tmp_path: Path, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = ConfigWatcher(daemon, env={})
    config = tmp_path / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[http]\nport = 8765\n", "utf-8")
    with caplog.at_level(logging.INFO, logger="listener.reload"):
        changes = watcher.check()
    assert changes is not None and changes.needs_restart == ["http"]
    assert "config.toml: http changed; these take effect when listener restarts" in caplog.text
