"""Logs: JSON lines when stderr is not a terminal, text when it is or when asked; one line per
poll with its numbers as fields; and no secret from the environment in any line."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from listener.logs import build_handler, config_secret_names, secret_values, use_json
from listener.sources import Batch, SourceError
from tests.support.configs import write_setup
from tests.support.x_server import BEARER, XServer, tweet, user
from tests.test_daemon import Clock, ScriptedSource, make_post

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "X_BEARER_TOKEN": BEARER,
    "SLACK_BOT_TOKEN": "xoxb-1234567890-secret-slack-token",
    "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "LISTENER_WEBHOOK_TOKEN": "webhook-token-that-must-not-leak",
    "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
    "SMTP_PASSWORD": "smtp-pass-w0rd!",
    "MY_CUSTOM_VAR": "named-by-the-config-only",
}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything `listener.*` logs, as JSON lines, with nothing scrubbed."""
    stream = io.StringIO()
    handler = build_handler("auto", stream)  # a StringIO is no terminal: JSON
    logger = logging.getLogger("listener")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_format_follows_the_terminal_unless_the_config_says() -> None:
    assert use_json("auto", io.StringIO()) and not use_json("auto", Tty())
    assert use_json("json", Tty()) and not use_json("text", io.StringIO())
    text, data = Tty(), io.StringIO()
    for stream in (text, data):
        record = logging.LogRecord(
            "listener.x", logging.WARNING, "f", 1, "hello %s", ("you",), None
        )
        build_handler("auto", stream).emit(record)
    assert text.getvalue().endswith(" WARNING listener.x: hello you\n")
    [line] = lines(data)
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "listener.x",
        "hello you",
    )
    assert line["time"].endswith("+00:00")


def test_log_format_is_a_config_setting(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    assert load_config(config).main.log_format == "auto"
    config.write_text('log_format = "text"\n' + config.read_text(encoding="utf-8"))
    assert load_config(config).main.log_format == "text"
    config.write_text('log_format = "xml"\n' + config.read_text(encoding="utf-8"))
    with pytest.raises(Exception, match="log_format"):
        load_config(config)


def test_one_json_line_per_poll_with_its_numbers(
    tmp_path: Path, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    daemon = Daemon.from_config(load_config(write_setup(tmp_path)), env={})
    daemon.clock = Clock()
    try:
        posts = [make_post(1), make_post(2, "hallo")]
        daemon.poll(ScriptedSource("rss:search:de-bieb", [Batch(posts, "c1")]))
        daemon.poll(ScriptedSource("broken", [SourceError("HTTP 503")]))
    finally:
        daemon.store.close()
    polls = [line for line in lines(captured) if line.get("event") == "poll"]
    assert len(polls) == 2
    ok, failed = polls
    assert ok["source"] == "rss:search:de-bieb" and ok["searches"] == ["de-bieb"]
    assert (ok["fetched"], ok["new"], ok["alerts"], ok["error"]) == (2, 2, 1, None)
    assert isinstance(ok["duration_s"], float) and ok["duration_s"] >= 0
    assert ok["level"] == "INFO" and ok["message"].startswith("poll rss:search:de-bieb (de-bieb):")
    # a source without a search in its key polls for every search of its kind
    assert failed["searches"] == ["eemland-brand", "de-bieb"]
    assert (failed["fetched"], failed["error"]) == (0, "HTTP 503")


def test_a_poll_with_tokens_in_the_environment_logs_none_of_them(
    tmp_path: Path, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing scrubbed here: the code itself must not log a credential, also at debug level
    and also when the service refuses it."""
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    for noisy in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(noisy), "level", logging.DEBUG)
        monkeypatch.setattr(logging.getLogger(noisy), "handlers", [captured_handler(captured)])
    posts = [tweet("30", "de bieb in Leusden is dicht", author_id="1")]
    with XServer(posts, users=[user("1", "marieke")]) as good, XServer(bearer="other") as bad:
        results = []
        for server in (good, bad):
            extra = f'[sources.x]\napi_url = "{server.url()}"\nmax_results = 10\n'
            folder = tmp_path / str(len(results))
            daemon = Daemon.from_config(load_config(write_setup(folder, extra_main=extra)))
            try:
                results += [daemon.poll(s) for s in daemon.sources if s.key.startswith("x:")]
                daemon.deliver()
            finally:
                daemon.store.close()
    assert any(r.fetched for r in results) and any(r.error for r in results)
    logged = captured.getvalue()
    assert "poll x:search:" in logged and "401" in logged
    for name, value in SECRETS.items():
        assert value not in logged, name


def captured_handler(stream: io.StringIO) -> logging.Handler:
    return build_handler("json", stream)


def test_lines_are_scrubbed_of_the_environments_secrets(tmp_path: Path) -> None:
    extra = '[sources.mastodon]\n[[sources.mastodon.instances]]\nurl = "https://m.example"\n'
    extra += 'token_env = "MY_CUSTOM_VAR"\n'
    config = load_config(write_setup(tmp_path, extra_main=extra))
    env = SECRETS | {
        "LISTENER_DATABASE": "postgresql+psycopg://listener:db-pass-123@db.example/listener",
        "HOME": "/root",
        "SHORT_TOKEN": "abc",
    }
    names = config_secret_names(config)
    assert names == {"MY_CUSTOM_VAR"}  # the other variables are found by their names
    secrets = secret_values(env, names)
    assert "db-pass-123" in secrets and "/root" not in secrets and "abc" not in secrets
    for log_format in ("json", "text"):
        stream = io.StringIO()
        handler = build_handler(log_format, stream, secrets)  # type: ignore[arg-type]
        logger = logging.getLogger("listener.test-scrub")
        logger.addHandler(handler)
        try:
            logger.warning("oops: %s", " ".join(env.values()), extra={"field": BEARER})
            try:
                raise RuntimeError(f"failed with {SECRETS['SMTP_PASSWORD']}")
            except RuntimeError:
                logger.exception("boom")
        finally:
            logger.removeHandler(handler)
        out = stream.getvalue()
        for value in (*SECRETS.values(), "db-pass-123"):
            assert value not in out, (log_format, value)
            assert json.dumps(value)[1:-1] not in out
        assert "***" in out and "/root" in out


def test_listener_run_writes_json_lines_to_a_pipe_and_no_secret(tmp_path: Path) -> None:
    """The real command, stderr a pipe: JSON lines (but --once's summary), secrets nowhere."""
    posts = [tweet("30", "de bieb in Leusden is dicht", author_id="1")]
    with XServer(posts, users=[user("1", "marieke")]) as server:
        extra = f'[sources.x]\napi_url = "{server.url()}"\nmax_results = 10\n'
        config = write_setup(tmp_path, extra_main=extra)
        config.write_text('log_level = "debug"\n' + config.read_text(encoding="utf-8"))
        env = {k: v for k, v in os.environ.items() if k != "LISTENER_DATABASE"} | SECRETS
        done = subprocess.run(
            [sys.executable, "-m", "listener", "run", "--once", "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line for line in done.stderr.splitlines() if not line.startswith("{")] == [
        line for line in done.stderr.splitlines() if line.startswith("once: ")
    ]
    polls = [r for r in records if r.get("event") == "poll"]
    assert {r["source"] for r in polls} == {"replay:posts.jsonl", "x:search:eemland-brand"} | {
        "x:search:de-bieb"
    }
    assert any(r["alerts"] for r in polls)
    for name, value in SECRETS.items():
        assert value not in done.stderr + done.stdout, name
