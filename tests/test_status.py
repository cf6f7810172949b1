"""`listener status`: the sources, the outbox and the latest alerts, from the database alone,
while the daemon that writes it still has it open."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from listener.cli import app
from listener.config import load_config
from listener.daemon import Daemon
from listener.sources import Batch, SourceError
from tests.support.configs import write_setup
from tests.test_daemon import Clock, ScriptedSource, make_post

runner = CliRunner()
HOSTILE = "de bieb in Leusden is dicht [bold red]BOOS[/bold red] " + "x" * 100


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Daemon]]:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    config = write_setup(tmp_path)
    daemon = Daemon.from_config(load_config(config), env={}, console=Console(file=io.StringIO()))
    clock = Clock()
    daemon.clock = daemon.deliverer.clock = clock
    daemon.jitter = lambda: 1.0
    replay = next(s for s in daemon.sources if s.key == "replay:posts.jsonl")
    daemon.poll(replay)  # the configured source: polls, nothing in its file
    daemon.poll(ScriptedSource("replay:posts.jsonl", []))
    daemon.poll(ScriptedSource("gone", [SourceError("HTTP 503: down")]))  # not configured
    daemon.poll(ScriptedSource("s", [Batch([make_post(1, HOSTILE)], "c1")]))
    clock.now += timedelta(seconds=5)
    daemon.deliver()
    daemon.poll(
        ScriptedSource("s", [Batch([make_post(2, "de bieb in Amersfoort is dicht")], None)])
    )
    yield config, daemon  # the daemon's database stays open, as a running daemon's would
    daemon.store.close()


def test_status_shows_sources_outbox_and_recent_alerts(setup: tuple[Path, Daemon]) -> None:
    config, _ = setup
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = result.output
    # the configured source: last success and the next run (last poll + its 10s interval)
    [replay] = [line for line in out.splitlines() if "replay:posts.jsonl" in line]
    assert "10s" in replay and "2026-11-20 13:00 CET" in replay and "backing off" not in replay
    [gone] = [line for line in out.splitlines() if "│ gone" in line]
    assert "backing off" in gone and "HTTP 503: down" in gone and "never" in gone
    assert "outbox: pending 1, sending 0, held 0, failed 0, silenced 0, sent 1" in out
    # newest first, the post text cut to 80 characters and printed as it is, never as markup
    assert out.index("Amersfoort is dicht") < out.index("Leusden is dicht")
    assert "[bold red]BOOS[/bold red]" in out
    assert "x" * 90 not in out and "…" in out
    assert "eemland/leusden" in out


def test_status_json(setup: tuple[Path, Daemon]) -> None:
    config, daemon = setup
    assert daemon.leases is not None
    result = runner.invoke(app, ["status", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    sources = {s["key"]: s for s in data["sources"]}
    assert sources["replay:posts.jsonl"]["interval_s"] == 10
    assert sources["replay:posts.jsonl"]["last_success_at"] == "2026-11-20T12:00:00+00:00"
    assert sources["replay:posts.jsonl"]["next_run_at"] == "2026-11-20T12:00:10+00:00"
    assert sources["gone"] | {"last_poll_at": None} == {
        "key": "gone",
        "interval_s": None,
        "last_poll_at": None,
        "last_success_at": None,
        "failures": 1,
        "last_error": "HTTP 503: down",
        "backing_off": True,
        "next_run_at": None,
        "configured": False,
        "instance": daemon.leases.owner,  # it polled that source last
        "polling": False,
    }
    assert data["outbox"] == {
        "pending": 1,
        "sending": 0,
        "held": 0,
        "failed": 0,
        "silenced": 0,
        "sent": 1,
    }
    newest, older = data["alerts"]
    assert newest["id"] > older["id"]
    assert (older["level"], older["org"], older["branch"]) == ("high", "eemland", "leusden")
    assert len(older["text"]) == 80 and older["text"].startswith("de bieb in Leusden is dicht")


def test_status_without_a_database_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    config = write_setup(tmp_path)
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "never" in result.output and "at start" in result.output
    assert "no alerts yet" in result.output
    assert not (tmp_path / "listener.db").exists()


def test_status_names_the_instance_polling_each_source(setup: tuple[Path, Daemon]) -> None:
    from listener.leases import Leases

    config, daemon = setup
    other = Leases(daemon.store.engine, "worker-2:4242:ab")
    assert other.claim("s", due_matters=False).taken  # another instance is polling it now
    result = runner.invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "│ s " in line]
    assert "polling now" in line and "worker-2:4242:ab" in line
    [replay] = [line for line in result.output.splitlines() if "replay:posts.jsonl" in line]
    assert daemon.leases is not None and daemon.leases.owner in replay
