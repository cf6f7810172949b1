"""Several instances on one PostgreSQL database (issue #8): every alert delivered once.

Three real `listener run` processes with the same config share one fresh PostgreSQL database
and a replay source of 1,000 generated posts (`tests/support/workload.py`) split over four
files (`path = "posts/*.jsonl"`: one replay source per file, so the instances can split the
polls). Alerts go to a `webhook` receiver pointing at a local `HookServer`. The config is the
same for all three; only the webhook URL in the environment differs (`/i0`, `/i1`, `/i2`), so
the sink knows which instance delivered what. The expected alerts are what listener's own
classifier decides for the same posts and queries (`workload.expected_alerts`); conversations
and spikes are off, because which post of a burst raises the incident depends on the order the
instances happen to save them in.

A test ends when every expected alert was received and the database says the outbox holds
nothing pending or sending, so nothing more can be sent; then the live daemons get SIGTERM and
must exit 0. Whatever happens, every daemon started here is killed in a `finally`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy

from tests.support import workload
from tests.support.configs import ROOT
from tests.support.hookserver import Answer, Hook, HookServer

POSTS = 1000
FILES = 4
INSTANCES = 3
SECRET = "cluster-test-signing-secret"
DEADLINE = 60.0  # seconds for a test's daemons to deliver everything (about 20 s normally)

CONFIG = """\
database = "{database}"
log_level = "info"
log_format = "text"

[sources.replay]
path = "posts/*.jsonl"
interval = "1s"
batch = 100

[cluster]
lease = "3s"

[outbox]
lease = "5s"
every = "0.2s"
drain_timeout = "20s"
[outbox.backoff]
initial = "0.2s"
max = "1s"

[spikes]
enabled = false
follow_ups = false
"""

ROUTES = """\
[[receivers]]
id = "hook"
type = "webhook"
url_env = "CLUSTER_HOOK_URL"
secret_env = "CLUSTER_HOOK_SECRET"

[[routes]]
min_level = "low"
receivers = ["hook"]
"""


def write_setup(folder: Path, database: str) -> Path:
    """The repository's example queries, one webhook receiver, the workload; the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "queries", folder / "queries", dirs_exist_ok=True)
    shutil.copytree(ROOT / "alerts" / "templates", folder / "alerts" / "templates")
    (folder / "alerts" / "routes.toml").write_text(ROUTES, encoding="utf-8")
    workload.write(folder / "posts", POSTS, FILES)
    config = folder / "config.toml"
    config.write_text(CONFIG.format(database=database), encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Post id → organisation of every alert, decided by the classifier on the same setup."""
    folder = tmp_path_factory.mktemp("cluster-expected")
    config = write_setup(folder, "sqlite:///unused.db")
    posts = workload.read(sorted((folder / "posts").glob("*.jsonl")))
    assert len(posts) == POSTS
    decided = workload.expected_alerts(config, posts)
    assert 0.15 * POSTS < len(decided) < 0.6 * POSTS, "the workload should be partly alerts"
    return decided


@dataclass(frozen=True)
class Delivery:
    instance: str  # "i0", "i1", … from the URL path
    key: str  # the Idempotency-Key header: one per alert and receiver
    post: str
    org: str


def delivery(hook: Hook) -> Delivery:
    body = json.loads(hook.body)
    return Delivery(
        hook.path.strip("/"),
        hook.headers["idempotency-key"],
        body["post"]["id"],
        body["alert"]["organisation"]["id"],
    )


class Cluster:
    """The daemons of one test: started together, each logging to its own file."""

    def __init__(self, config: Path, hooks: HookServer) -> None:
        self.config = config
        self.hooks = hooks
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self.engine = sqlalchemy.create_engine(self._database())

    def _database(self) -> str:
        line = self.config.read_text(encoding="utf-8").splitlines()[0]
        return line.split('"')[1]

    def start(self, count: int) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "SLACK_"))}
        for n in range(count):
            log = (self.config.parent / f"instance-{n}.log").open("wb")
            self.logs.append(log)
            env = base | {
                "CLUSTER_HOOK_URL": self.hooks.url(f"/i{n}"),
                "CLUSTER_HOOK_SECRET": SECRET,
            }
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "listener", "run", "--config", str(self.config)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )

    def count(self, sql: str) -> int:
        """The number a `SELECT count(*) …` gives."""
        with self.engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text(sql)).scalar_one())

    def settled(self) -> bool:
        """Every post saved and nothing left to send: no delivery can happen any more."""
        if self.count("SELECT count(*) FROM posts") < POSTS:
            return False
        return self.count("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')") == 0

    def wait_until_delivered(self, expected: int, *, dead: frozenset[int] = frozenset()) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            keys = {delivery(h).key for h in self.hooks.requests}
            if len(keys) >= expected and self.settled():
                return
            for n, process in enumerate(self.processes):
                if n not in dead and process.poll() is not None:
                    pytest.fail(f"instance {n} exited with {process.returncode}\n{self.tail(n)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"after {DEADLINE:.0f}s: {len(keys)} of {expected} alerts delivered\n"
                    + "\n".join(self.tail(n) for n in range(len(self.processes)))
                )
            time.sleep(0.1)

    def stop(self, *, dead: frozenset[int] = frozenset()) -> None:
        """SIGTERM the live instances; each must stop cleanly (exit 0) within 30 s."""
        live = [(n, p) for n, p in enumerate(self.processes) if n not in dead]
        for _, process in live:
            process.send_signal(signal.SIGTERM)
        for n, process in live:
            assert process.wait(timeout=30) == 0, (
                f"instance {n} did not stop cleanly\n{self.tail(n)}"
            )

    def tail(self, n: int, lines: int = 15) -> str:
        self.logs[n].flush()
        text = (self.config.parent / f"instance-{n}.log").read_text(errors="replace")
        return f"--- instance {n} (last {lines} log lines)\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def close(self) -> None:
        """Kill whatever still runs (after a failure), close the logs and the engine."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        for log in self.logs:
            log.close()
        self.engine.dispose()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    config = write_setup(tmp_path, postgres_url)
    with HookServer() as hooks:
        running = Cluster(config, hooks)
        try:
            yield running
        finally:
            running.close()


def test_three_instances_deliver_every_alert_exactly_once(
    cluster: Cluster, expected: dict[str, str]
) -> None:
    started = time.monotonic()
    cluster.start(INSTANCES)
    cluster.wait_until_delivered(len(expected))
    took = time.monotonic() - started
    cluster.stop()

    deliveries = [delivery(h) for h in cluster.hooks.requests]
    assert {(d.post, d.org) for d in deliveries} == set(expected.items())
    keys = Counter(d.key for d in deliveries)
    assert [k for k, n in keys.items() if n > 1] == [], "an alert was delivered twice"
    assert len(deliveries) == len(expected)
    assert cluster.count("SELECT count(*) FROM posts") == POSTS, "each post saved once"
    assert cluster.count("SELECT count(*) FROM alerts") == len(expected)
    by_instance = Counter(d.instance for d in deliveries)
    print(
        f"{INSTANCES} instances, {POSTS} posts in {FILES} files: {len(expected)} alerts "
        f"delivered once each in {took:.1f}s; by instance: {dict(sorted(by_instance.items()))}"
    )


KILL_AT = 8  # the sink holds the 8th webhook request; meanwhile one instance is killed


def polling(cluster: Cluster) -> dict[int, list[str]]:
    """Instance → the sources it is polling right now, from `poll_leases` (README, "Several
    instances": a claim names its owner as host:pid:token and holds until `until`)."""
    with cluster.engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("SELECT key, owner FROM poll_leases WHERE until > clock_timestamp()")
        ).all()
    pids = {process.pid: n for n, process in enumerate(cluster.processes)}
    found: dict[int, list[str]] = {}
    for key, owner in rows:
        pid = int(owner.split(":")[1])
        if pid in pids:
            found.setdefault(pids[pid], []).append(key)
    return found


def test_an_instance_killed_mid_run_loses_nothing(
    cluster: Cluster, expected: dict[str, str]
) -> None:
    """SIGKILL one instance mid-run, while the sink holds a webhook request: the instance that
    sent it when that one is polling a source too (then it dies mid-send and mid-poll), else
    the one polling the most sources (the posts are read 100 a batch, so polls last a while).

    Nothing may be lost. Duplicates allowed: at most one, and only the held request when its
    sender was killed. Why: the webhook has no way to ask the receiver whether a request arrived
    (Slack has a look-up; a webhook only the Idempotency-Key header), so a row left `sending` by
    a dead instance is sent again when its outbox lease ends; and a receiver's deliveries are a
    queue (only the first undelivered row of a receiver can be claimed, by any instance), so at
    most one row of it is in flight at any moment. Polls add none: a batch's posts, alerts and
    cursor are saved in one transaction and posts and alerts have unique keys, so the instance
    that takes over a dead one's poll starts after the last batch saved."""
    cluster.hooks.script(*([Answer()] * (KILL_AT - 1)), Answer(delay=4.0))
    started = time.monotonic()
    cluster.start(INSTANCES)
    deadline = time.monotonic() + DEADLINE
    while len(cluster.hooks.requests) < KILL_AT:
        assert time.monotonic() < deadline, "the instances never delivered"
        time.sleep(0.005)
    held = delivery(cluster.hooks.requests[KILL_AT - 1])
    sender = int(held.instance.removeprefix("i"))
    busy = polling(cluster)
    victim = sender if sender in busy else max(busy, key=lambda n: len(busy[n]), default=sender)
    cluster.processes[victim].send_signal(signal.SIGKILL)
    cluster.processes[victim].wait(timeout=10)
    killed_at = time.monotonic() - started
    in_flight = {held.key} if victim == sender else set()
    posts_then = cluster.count("SELECT count(*) FROM posts")
    assert busy.get(victim) and posts_then < POSTS, "killed too late to prove anything"

    cluster.wait_until_delivered(len(expected), dead=frozenset({victim}))
    took = time.monotonic() - started
    cluster.stop(dead=frozenset({victim}))

    deliveries = [delivery(h) for h in cluster.hooks.requests]
    assert {(d.post, d.org) for d in deliveries} == set(expected.items()), "an alert was lost"
    keys = Counter(d.key for d in deliveries)
    duplicates = {key: n for key, n in keys.items() if n > 1}
    assert set(duplicates) <= in_flight, "only the delivery the dead instance had in flight"
    assert sum(n - 1 for n in duplicates.values()) <= 1
    assert len(keys) == len(expected)
    assert cluster.count("SELECT count(*) FROM posts") == POSTS
    assert cluster.count("SELECT count(*) FROM alerts") == len(expected)
    by_instance = Counter(d.instance for d in deliveries)
    print(
        f"killed instance {victim} at {killed_at:.1f}s while it polled {sorted(busy[victim])}"
        f"{f' and sent {held.key}' if in_flight else ''} ({posts_then} of {POSTS} posts saved "
        f"by then); all {len(expected)} alerts delivered after {took:.1f}s; duplicates: "
        f"{duplicates or 0}; by instance: {dict(sorted(by_instance.items()))}"
    )
