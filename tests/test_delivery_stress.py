"""Nothing lost, nothing doubled, under stress: a burst of 500 alerts into Slack's rate limits,
an SMTP server that is down for a while, and a daemon killed with SIGKILL twenty times while it
delivers. Real parts: slack-sdk against the local Slack-wire server, smtplib against aiosmtpd,
`listener run` as a child process on a real SQLite file."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.alert import AlertMessage
from listener.config.model import (
    Backoff,
    EmailSettings,
    MainFile,
    OutboxSettings,
    Receiver,
    SlackSettings,
)
from listener.notify import build_notifier
from listener.outbox import Deliverer
from listener.post import Author, Post
from listener.store import Decided, NewAlert, Store
from tests.support.configs import ROOT
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink

TOKEN = "xoxb-stress-test-token"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FAST = OutboxSettings(
    backoff=Backoff(initial=timedelta(seconds=0.2), max=timedelta(seconds=0.5)),
    max_attempts=100,
    lease=timedelta(seconds=1),
)


def alert(n: int) -> AlertMessage:
    post = Post(
        id=f"bluesky:stress-{n}",
        source="bluesky",
        text=f"de bieb in Leusden is dicht ({n})",
        created_at=T0 + timedelta(seconds=n),
        url=f"https://bsky.app/profile/user{n}/post/{n}",
        author=Author(handle=f"user{n}.bsky.social", name=f"User {n}"),
    )
    return AlertMessage(0, post, "eemland", "Eemland", "leusden", "Leusden", "de-bieb", "high", 60)


def fill_outbox(store: Store, count: int, receiver: str) -> list[int]:
    """`count` alerts to `receiver`, as the daemon would have saved them; their ids."""
    items = [
        Decided(
            message.post,
            {"org": "eemland", "branch": "leusden", "query": "de-bieb"}
            | {"urgency": "high", "score": 60},
            NewAlert(message, [receiver]),
        )
        for message in map(alert, range(count))
    ]
    for start in range(0, count, 100):
        store.save_batch("stress", None, items[start : start + 100], T0)
    return sorted(d.alert_id for d in store.deliveries())


def alert_ids(slack: SlackWireServer) -> list[int]:
    return [m.metadata["event_payload"]["alert_id"] for m in slack.messages if m.metadata]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'listener.db'}")
    yield s
    s.close()


def test_a_burst_of_500_alerts_through_429s_arrives_in_order_and_once(store: Store) -> None:
    with SlackWireServer(require_token=TOKEN) as slack:
        main = MainFile(slack=SlackSettings(token_env="STRESS_TOKEN", base_url=slack.base_url))
        receiver = Receiver(id="webcare", type="slack", channel="#webcare")
        notifier = build_notifier(
            receiver, main, ROOT / "alerts" / "templates", env={"STRESS_TOKEN": TOKEN}
        )
        expected = fill_outbox(store, 500, "webcare")
        limits = [40, 120, 121, 250, 400, 499]  # after this many messages, Slack says 429
        done = threading.Event()

        def rate_limit() -> None:
            pending = list(limits)
            while pending and not done.is_set():
                if len(slack.messages) >= pending[0]:
                    slack.fail_next(1, status=429, retry_after=0.3)
                    pending.pop(0)
                time.sleep(0.001)

        injector = threading.Thread(target=rate_limit, daemon=True)
        injector.start()
        result = Deliverer(store, {"webcare": notifier}, FAST).drain(timedelta(seconds=60))
        done.set()
        injector.join()
        ids = alert_ids(slack)
        statuses = Counter(status for _, status, _ in slack.requests)
    print(f"500 alerts: {statuses[429]} answered 429, {len(ids)} messages, {result.retried} waits")
    assert statuses[429] >= 4, "the 429s came too late to prove anything"
    assert result.sent == 500 and result.failed == 0
    assert ids == expected, "every alert once, in the order it was decided"
    assert {d.status for d in store.deliveries()} == {"sent"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_smtp_server_that_is_down_for_a_while_gets_every_alert_once(store: Store) -> None:
    port = free_port()
    settings = EmailSettings(host="127.0.0.1", port=port, security="none", sender="l@example.org")
    main = MainFile(email=settings)
    receiver = Receiver(id="mail", type="email", to=["webcare@example.org"])
    notifier = build_notifier(receiver, main, ROOT / "alerts" / "templates", env={})
    expected = fill_outbox(store, 30, "mail")
    deliverer = Deliverer(store, {"mail": notifier}, FAST)
    down = deliverer.drain(timedelta(seconds=1.5))  # nobody listens on the port
    assert down.sent == 0 and down.retried >= 2 and down.failed == 0
    assert {d.status for d in store.deliveries()} == {"pending"}
    assert "refused" in (store.deliveries()[0].last_error or "").lower()
    with SmtpSink(port=port) as smtp:
        back = deliverer.drain(timedelta(seconds=30))
        mails = smtp.wait_for(30)
    assert back.sent == 30 and back.failed == 0
    order = [
        int(re.findall(r"/post/(\d+)", m.message.get_body(("plain",)).get_content())[0])
        for m in mails
    ]
    assert order == list(range(30)), "every alert once, in order"
    assert len(expected) == 30


def test_a_daemon_killed_twenty_times_while_delivering_loses_nothing(tmp_path: Path) -> None:
    count = 150
    (tmp_path / "queries").mkdir()
    (tmp_path / "alerts").mkdir()
    (tmp_path / "posts.jsonl").touch()
    (tmp_path / "queries" / "eemland.toml").write_text(
        (ROOT / "tests" / "support" / "configs.py")
        .read_text()
        .split('QUERIES = """\\\n')[1]
        .split('"""')[0],
        encoding="utf-8",
    )
    (tmp_path / "alerts" / "routes.toml").write_text(
        '[[receivers]]\nid = "webcare"\ntype = "slack"\nchannel = "#webcare"\n\n'
        '[[routes]]\nreceivers = ["webcare"]\n',
        encoding="utf-8",
    )
    rng = random.Random(7)
    kills: list[int] = []
    with SlackWireServer(require_token=TOKEN, delay=0.05) as slack:
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
database = "sqlite:///listener.db"
log_level = "warning"

[sources.replay]
path = "posts.jsonl"
interval = "1h"

[slack]
token_env = "STRESS_SLACK_TOKEN"
base_url = "{slack.base_url}"
timeout = "5s"

[outbox]
lease = "1s"
every = "0.1s"
drain_timeout = "30s"
[outbox.backoff]
initial = "0.2s"
max = "1s"
""",
            encoding="utf-8",
        )
        store = Store(f"sqlite:///{tmp_path / 'listener.db'}")
        expected = fill_outbox(store, count, "webcare")
        store.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "SLACK_"))}
        env["STRESS_SLACK_TOKEN"] = TOKEN
        command = [sys.executable, "-m", "listener", "run", "--config", str(config)]
        for _ in range(20):
            before = len(slack.messages)
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 30
            while len(slack.messages) == before and time.monotonic() < deadline:
                time.sleep(0.01)  # wait until it delivers, then kill it at a random moment
            time.sleep(rng.uniform(0.0, 0.15))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills.append(len(slack.messages))
            if len(set(alert_ids(slack))) == count:
                break
        finished = subprocess.run(
            [*command[:-2], "--once", *command[-2:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        received = Counter(alert_ids(slack))
        order = alert_ids(slack)
        lookups = sum(method == "conversations.history" for method, _, _ in slack.requests)
    duplicates = {alert_id: n for alert_id, n in received.items() if n > 1}
    print(
        f"killed {len(kills)} times, at {kills} Slack messages; {lookups} look-ups before "
        f"re-sending; duplicates: {duplicates or 0}"
    )
    assert len(kills) >= 10, "delivery finished before enough kills to prove anything"
    assert set(received) == set(expected), "an alert was lost"
    assert duplicates == {}, "the metadata lookup should have found every message sent before"
    assert order == expected, "in order"
