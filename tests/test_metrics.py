"""GET /metrics: the daemon's real HTTP server scraped with httpx and parsed with
prometheus-client's own parser, after real polls and deliveries."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from listener.config import load_config
from listener.daemon import Daemon
from listener.httpserver import HttpServer
from listener.metrics import OUTBOX_STATUSES, STAGES
from listener.sources import Batch, SourceError
from tests.support.configs import write_setup
from tests.support.hookserver import Answer, HookServer
from tests.test_daemon import Clock, ScriptedSource, make_post

ROOT = Path(__file__).resolve().parents[1]
HTTP = "[http]\nport = 8080\n"  # on; the tests listen on port 0 instead
HOSTILE = "de bieb in Leusden is dicht [bold red]boos[/] <b>x</b> " + "lang " * 30

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def start(daemon: Daemon) -> HttpServer:
    server = daemon.http_server(env={})
    assert server is not None
    server.port = 0  # any free port
    server.start()
    return server


def scrape(server: HttpServer) -> tuple[str, Samples]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def daemon(tmp_path: Path, clock: Clock) -> Iterator[Daemon]:
    config = load_config(write_setup(tmp_path, extra_main=HTTP))
    d = Daemon.from_config(config, env={}, console=Console(file=io.StringIO()))
    d.clock = d.deliverer.clock = clock
    d.jitter = lambda: 1.0
    yield d
    d.store.close()


def test_polls_and_deliveries_are_counted_timed_and_scraped(daemon: Daemon, clock: Clock) -> None:
    posted = clock.now - timedelta(minutes=2)
    alerted = make_post(1, HOSTILE)
    alerted = type(alerted)(alerted.id, alerted.source, alerted.text, posted)
    source = ScriptedSource("s", [Batch([alerted, make_post(2, "hallo allemaal")], "c1")])
    result = daemon.poll(source)
    assert (result.fetched, result.new_posts, result.alerts) == (2, 2, 1)
    clock.now += timedelta(seconds=30)
    assert daemon.deliver().sent == 1

    server = start(daemon)
    try:
        text, samples = scrape(server)
    finally:
        server.stop()

    assert value(samples, "listener_posts_fetched_total", source="s") == 2
    assert value(samples, "listener_posts_new_total", source="s") == 2
    assert value(samples, "listener_posts_matched_total", source="s") == 1
    assert value(samples, "listener_source_errors_total", source="s") == 0
    assert value(samples, "listener_poll_seconds_count", source="s") == 1
    assert value(samples, "listener_alerts_sent_total", receiver="console") == 1
    assert value(samples, "listener_alerts_failed_total", receiver="console") == 0
    # match for both posts, locate and score for the one that matched; one save, one send
    assert value(samples, "listener_stage_seconds_count", stage="match") == 2
    assert value(samples, "listener_stage_seconds_count", stage="locate") == 1
    assert value(samples, "listener_stage_seconds_count", stage="score") == 1
    assert value(samples, "listener_stage_seconds_count", stage="save") == 1
    assert value(samples, "listener_stage_seconds_count", stage="deliver") == 1
    # the frozen clock: written 2 minutes before the poll, delivered 30 seconds after it
    assert value(samples, "listener_post_to_alert_seconds_count", receiver="console") == 1
    assert value(samples, "listener_post_to_alert_seconds_sum", receiver="console") == 150
    assert value(samples, "listener_fetch_to_delivery_seconds_sum", receiver="console") == 30
    bucket = "listener_post_to_alert_seconds_bucket"
    assert value(samples, bucket, receiver="console", le="120.0") == 0
    assert value(samples, bucket, receiver="console", le="300.0") == 1
    # read from the database at scrape time
    for status in OUTBOX_STATUSES:
        expected = 1 if status == "sent" else 0
        assert value(samples, "listener_outbox_depth", status=status) == expected
    polled_at = (clock.now - timedelta(seconds=30)).timestamp()
    assert value(samples, "listener_source_last_success_timestamp_seconds", source="s") == polled_at
    assert value(samples, "listener_source_failures_in_a_row", source="s") == 0
    assert value(samples, "listener_database_up") == 1

    # labels are source keys, receiver ids, stages and statuses: never post text
    allowed = {"s", "console", "replay:posts.jsonl", *STAGES, *OUTBOX_STATUSES}
    for (_, labels), _value in samples.items():
        for name, label in labels:
            assert name == "le" or label in allowed, (name, label)
    assert "bieb" not in text and "boos" not in text
    for line in text.splitlines():
        if line.startswith("# HELP"):
            assert line.split()[2].startswith("listener_") and len(line.split()) > 3, line


def test_a_failing_source_and_a_failing_receiver_are_counted(tmp_path: Path, clock: Clock) -> None:
    env = {"LISTENER_TEST_HOOK_URL": "", "LISTENER_TEST_HOOK_SECRET": "a-secret-for-signing"}
    receivers = (
        '[[receivers]]\nid = "hook"\ntype = "webhook"\n'
        'url_env = "LISTENER_TEST_HOOK_URL"\nsecret_env = "LISTENER_TEST_HOOK_SECRET"\n'
    )
    config = write_setup(
        tmp_path, extra_main=HTTP, extra_receivers=receivers, route_receivers='"hook"'
    )
    with HookServer() as hooks:
        env["LISTENER_TEST_HOOK_URL"] = hooks.url("/in")
        daemon = Daemon.from_config(load_config(config), env=env)
        daemon.clock = daemon.deliverer.clock = clock
        daemon.jitter = lambda: 1.0
        try:
            daemon.poll(ScriptedSource("broken", [SourceError("HTTP 503")]))
            daemon.poll(ScriptedSource("s", [Batch([make_post(1)], "c1")]))
            hooks.script(Answer(503, b"busy"))  # transient: tried again later
            daemon.deliver()
            clock.now += timedelta(minutes=5)
            hooks.script(Answer(400, b"no"))  # permanent: failed for good
            daemon.deliver()
            server = start(daemon)
            try:
                _, samples = scrape(server)
            finally:
                server.stop()
        finally:
            daemon.store.close()
    assert value(samples, "listener_source_errors_total", source="broken") == 1
    assert value(samples, "listener_source_failures_in_a_row", source="broken") == 1
    assert (
        "listener_source_last_success_timestamp_seconds",
        frozenset({("source", "broken")}),
    ) not in samples
    assert value(samples, "listener_delivery_retries_total", receiver="hook") == 1
    assert value(samples, "listener_alerts_failed_total", receiver="hook") == 1
    assert value(samples, "listener_alerts_sent_total", receiver="hook") == 0
    assert value(samples, "listener_stage_seconds_count", stage="deliver") == 2
    assert value(samples, "listener_outbox_depth", status="failed") == 1
    assert value(samples, "listener_post_to_alert_seconds_count", receiver="hook") == 0


def test_each_daemon_has_its_own_registry_not_the_global_one(tmp_path: Path) -> None:
    first = Daemon.from_config(load_config(write_setup(tmp_path / "a", extra_main=HTTP)), env={})
    second = Daemon.from_config(load_config(write_setup(tmp_path / "b", extra_main=HTTP)), env={})
    try:
        first.poll(ScriptedSource("s", [Batch([make_post(1), make_post(2, "hallo")], None)]))
        assert first.metrics is not None and second.metrics is not None
        assert first.metrics.registry is not second.metrics.registry
        assert first.metrics.registry.get_sample_value(
            "listener_posts_fetched_total", {"source": "s"}
        )
        assert (
            second.metrics.registry.get_sample_value(
                "listener_posts_fetched_total", {"source": "s"}
            )
            is None
        )
        assert not [m for m in REGISTRY.collect() if m.name.startswith("listener_")]
    finally:
        first.store.close()
        second.store.close()


def test_prometheus_may_ask_for_openmetrics(daemon: Daemon) -> None:
    server = start(daemon)
    try:
        response = httpx.get(
            f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}
        )
        head = httpx.head(f"{server.url}/metrics")
        post = httpx.post(f"{server.url}/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405


def test_every_metric_is_in_the_readme_table(daemon: Daemon) -> None:
    assert daemon.metrics is not None
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(listener_[a-z_]+)`", readme, re.M))
    names = set()
    for family in daemon.metrics.registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    assert names == documented
