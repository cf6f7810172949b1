"""End to end: a replay file → `listener run` → a local Slack-wire server and an SMTP server.

The daemon runs as a real process with the example `queries/` and `alerts/` from the repo; only
`config.toml` is written here, pointing Slack at `SlackWireServer` and email at `SmtpSink`. The
expected organisation and branch of every post are in `tests/data/e2e-truth.jsonl`, labelled by
hand from the post texts, not from listener's output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from tests.support.configs import ROOT
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink

DATA = Path(__file__).parent / "data"
TOKEN = "xoxb-e2e-test-token"
ALERTED = {
    t["id"]: (t["org"], t["branch"])
    for t in map(json.loads, (DATA / "e2e-truth.jsonl").read_text().splitlines())
    if t["org"]
}


def write_config(
    folder: Path,
    slack: SlackWireServer,
    smtp: SmtpSink,
    *,
    lease: str = "60s",
    database: str = "sqlite:///listener.db",
) -> Path:
    shutil.copytree(ROOT / "queries", folder / "queries")
    shutil.copytree(ROOT / "alerts", folder / "alerts")
    shutil.copy(DATA / "e2e-posts.jsonl", folder / "posts.jsonl")
    config = folder / "config.toml"
    config.write_text(
        f"""
database = "{database}"

[sources.replay]
path = "posts.jsonl"
interval = "1s"

[slack]
token_env = "E2E_SLACK_TOKEN"
base_url = "{slack.base_url}"
timeout = "5s"

[email]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
sender = "listener <listener@example.org>"

[outbox]
lease = "{lease}"
every = "0.2s"
drain_timeout = "20s"
[outbox.backoff]
initial = "0.2s"
max = "1s"
""",
        encoding="utf-8",
    )
    return config


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "SLACK_"))}
    env["E2E_SLACK_TOKEN"] = TOKEN
    return env


def listener(*args: str) -> list[str]:
    return [sys.executable, "-m", "listener", *args]


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        listener("run", "--once", "--config", str(config)),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def post_in_mail(mail) -> str:
    """The post an e-mail is about, found by the `e2e-NN` token that ends each test post's URL."""
    body = mail.message.get_body(("plain",)).get_content()
    [token] = set(re.findall(r"e2e-\d\d", body))
    [post] = [post for post in ALERTED if post.endswith(token)]
    return post


def query(database: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql`, read straight from the database (SQLite or PostgreSQL)."""
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()


def alerts_in(database: str) -> dict[int, tuple[str, str, str | None, str]]:
    """alert id → (post id, org, branch, level), read straight from the database."""
    rows = query(database, "SELECT id, post_id, org, branch, level FROM alerts")
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def text_objects(node: object):
    """Every Slack text object ({"type": "plain_text"|"mrkdwn", "text": ...}) in some blocks."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node
        for value in node.values():
            yield from text_objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from text_objects(item)


@pytest.fixture
def servers():
    with SlackWireServer(require_token=TOKEN) as slack, SmtpSink() as smtp:
        yield slack, smtp


def test_a_replay_file_becomes_exactly_the_expected_alerts_once(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    config = write_config(tmp_path, slack, smtp, database=database_url)
    done = run_once(config)

    alerts = alerts_in(database_url)
    decided = {post: (org, branch) for post, org, branch, _ in alerts.values()}
    assert decided == ALERTED

    # Every alert reached Slack exactly once, in the configured channel, with its alert id.
    messages = slack.messages
    assert sorted(m.metadata["event_payload"]["alert_id"] for m in messages) == sorted(alerts)
    assert {m.channel for m in messages} == {"#webcare"}
    assert {m.token for m in messages} == {TOKEN}

    # The high and critical ones were e-mailed as well (the example routes), to the team only.
    urgent = {aid for aid, (*_, level) in alerts.items() if level in ("high", "critical")}
    assert urgent, "the replay file has complaints and a safety post: some alerts must be urgent"
    mails = smtp.messages
    assert len(mails) == len(urgent)
    assert all(m.rcpt_tos == ["webcare@example.org"] for m in mails)
    assert Counter(alerts[aid][0] for aid in urgent) == Counter(post_in_mail(m) for m in mails)

    # The safety post (someone threatened, police on site) is the most urgent one.
    [safety] = [aid for aid, (post, *_) in alerts.items() if post == "bluesky:e2e-14"]
    assert alerts[safety][3] == "critical"

    # Bad lines were skipped with their line number, and the run carried on.
    assert "posts.jsonl:13" in done.stderr and "posts.jsonl:24" in done.stderr

    # A second run over the same file sends nothing new.
    run_once(config)
    assert len(slack.messages) == len(messages)
    assert len(smtp.messages) == len(mails)


def test_post_text_stays_inert_in_slack_and_email(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    run_once(write_config(tmp_path, slack, smtp, database=database_url))
    alerts = alerts_in(database_url)
    [evil] = [aid for aid, (post, *_) in alerts.items() if post == "bluesky:e2e-33"]
    [message] = [m for m in slack.messages if m.metadata["event_payload"]["alert_id"] == evil]

    assert "<!channel>" not in message.text and "&lt;!channel&gt;" in message.text
    assert "<https://evil.example|" not in message.text
    assert "@here" not in message.text.replace("@\u200bhere", "")
    texts = list(text_objects(message.blocks))
    assert any(t["type"] == "plain_text" and "<!channel>" in t["text"] for t in texts), (
        "the post text is shown as it was written, in plain_text, which Slack never parses"
    )
    for mrkdwn in (t["text"] for t in texts if t["type"] == "mrkdwn"):
        # listener's own <!date^…> token is the only Slack syntax allowed in mrkdwn
        assert not re.search(r"<!(?!date\^\d+\^)", mrkdwn), mrkdwn
        assert "<http" not in mrkdwn and "<@" not in mrkdwn, mrkdwn
        assert not re.search(r"@(here|channel|everyone)\b", mrkdwn)

    [mail] = [m for m in smtp.messages if post_in_mail(m) == "bluesky:e2e-33"]
    assert mail.rcpt_tos == ["webcare@example.org"]
    assert mail.message["Bcc"] is None
    assert "evil.example" not in str(mail.message["To"]) + str(mail.message["Cc"])
    html = mail.message.get_body(("html",)).get_content()
    assert "<https://evil.example|klik hier>" not in html
    assert "&lt;https://evil.example|klik hier&gt;" in html


def test_a_delivery_killed_midway_loses_no_alert(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    slack.delay = 0.25
    config = write_config(tmp_path, slack, smtp, lease="2s", database=database_url)
    process = subprocess.Popen(
        listener("run", "--once", "--config", str(config)),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    slack.wait_for(5, timeout=60)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    delivered_before = len(slack.messages)
    assert delivered_before < len(ALERTED), "killed too late to prove anything"

    slack.delay = 0
    run_once(config)
    alerts = alerts_in(database_url)
    received = Counter(m.metadata["event_payload"]["alert_id"] for m in slack.messages)
    assert set(received) == set(alerts), "an alert was lost"
    duplicates = {aid: n for aid, n in received.items() if n > 1}
    print(f"killed after {delivered_before} Slack messages; duplicates after restart: {duplicates}")
    assert sum(n - 1 for n in duplicates.values()) <= 1  # at most the one in flight


def test_sigterm_stops_the_daemon_cleanly_and_the_outbox_keeps_the_rest(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    slack.delay = 0.3
    config = write_config(tmp_path, slack, smtp, database=database_url)
    process = subprocess.Popen(
        listener("run", "--config", str(config)),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    slack.wait_for(2, timeout=60)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert time.monotonic() - started < 20
    assert "stopping" in stderr

    statuses = dict(query(database_url, "SELECT status, count(*) FROM outbox GROUP BY status"))
    [(alerts,)] = query(database_url, "SELECT count(*) FROM alerts")
    assert alerts == len(ALERTED)
    assert statuses.get("pending", 0) > 0, "stopped before everything was sent: rows stay pending"
    assert statuses.get("sending", 0) == 0
    assert statuses.get("sent", 0) >= 2


def test_slack_429s_and_smtp_4xx_are_waited_out_and_every_alert_arrives_once_in_order(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    slack.fail_next(3, status=429, retry_after=1)
    smtp.reply_next(2, "451 4.3.0 try again later")
    done = run_once(write_config(tmp_path, slack, smtp, database=database_url))

    alerts = alerts_in(database_url)
    ids = [m.metadata["event_payload"]["alert_id"] for m in slack.messages]
    assert ids == sorted(alerts), "each alert once, in the order it was decided"
    assert [status for _, status, _ in slack.requests].count(429) == 3
    urgent = [aid for aid, (*_, level) in alerts.items() if level in ("high", "critical")]
    assert sorted(post_in_mail(m) for m in smtp.messages) == sorted(alerts[a][0] for a in urgent)
    assert "retry after 1s" in done.stderr
    assert "0 failed, 0 left in the outbox" in done.stderr


def test_a_post_pushed_to_the_webhook_becomes_an_alert(
    tmp_path: Path, servers, database_url: str
) -> None:
    import socket

    import httpx

    slack, smtp = servers
    config = write_config(tmp_path, slack, smtp, database=database_url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config.write_text(
        config.read_text() + f"\n[http]\nport = {port}\n\n[sources.webhook]\nenabled = true\n"
    )
    (tmp_path / "posts.jsonl").write_text("")  # only what the webhook brings
    env = environment() | {"LISTENER_WEBHOOK_TOKEN": "hook-secret-token"}
    process = subprocess.Popen(
        listener("run", "--config", str(config)), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        post = {
            "id": "facebook:123",
            "source": "facebook",
            "text": "de bieb in Leusden is alweer dicht 😡",
            "created_at": "2026-11-20T10:00:00Z",
        }
        url = f"http://127.0.0.1:{port}/ingest"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(url, json=post, headers={"Authorization": "Bearer wrong"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the HTTP port never opened"
                time.sleep(0.1)
        assert answer.status_code == 401
        headers = {"Authorization": "Bearer hook-secret-token"}
        answer = httpx.post(url, json=post, headers=headers)
        assert (answer.status_code, answer.json()) == (200, {"accepted": 1, "new": 1})
        [message] = slack.wait_for(1, timeout=20)
        assert "Leusden" in message.text
        again = httpx.post(url, json=post, headers=headers)
        assert again.json() == {"accepted": 1, "new": 0}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "hook-secret-token" not in stderr
