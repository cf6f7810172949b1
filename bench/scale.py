"""Posts per second through the whole daemon with 1, 2 and 4 instances on PostgreSQL, and with
1 instance on SQLite. Prints a table; asserts nothing.

    .venv/bin/python bench/scale.py [--posts 3000] [--files 8] [--instances 1,2,4] [--no-sqlite]

The workload is `tests/support/workload.py`: `--posts` generated Dutch posts (about a quarter
of them become alerts; 3,000 by default, as 20,000 take far more than 5 minutes a run here:
each new alert's placement reads the organisation's alerts of the last 24 hours, by post time,
so a run slows down as alerts pile up) split round-robin over `--files` replay files, read by
`[sources.replay] path = "posts/*.jsonl"` (one replay source per file, so instances can split
the polls; batches of 500 lines, polled every second). Every run gets a fresh database (a new
PostgreSQL database on the server named by LISTENER_TEST_POSTGRES, or on a throwaway server
started from tests/support/postgres.py; a new SQLite file), migrated with `listener db upgrade`
before the clock starts. The instances are real `listener run` processes with the same config;
alerts go to one `webhook` receiver, a local HTTP server in this process that answers 200 at
once and notes when each request arrived. Conversations and spikes are off so every run alerts
on the same posts.

**What is measured:** from the moment the instances are started (just before the first
process is spawned: their start-up, imports and gazetteer included) to the moment the sink
received the last alert, once the database holds every post and the outbox has nothing
pending or sending. posts/s is posts divided by that. "alerts" counts distinct Idempotency-Keys
received (a second copy of one would show as "dup").

The machine this was written on has 2 cores: with 4 instances, four processes (each with its
poll threads and a delivery thread) and the PostgreSQL server share those 2 cores, so more
instances add contention rather than CPU. Deliveries to one receiver are a queue across the
cluster (in order, one at a time), so alert delivery does not scale with instances either.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the workload, the sink, the PostgreSQL server

from tests.support import postgres, workload  # noqa: E402
from tests.support.hookserver import Answer, Hook, HookServer  # noqa: E402

SECRET = "bench-signing-secret"
TIMEOUT = 600.0  # seconds one run may take before it is given up

CONFIG = """\
database = "{database}"
log_level = "warning"
log_format = "text"

[sources.replay]
path = "posts/*.jsonl"
interval = "1s"
batch = 500

[cluster]
lease = "10s"

[outbox]
lease = "10s"
every = "0.5s"
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
url_env = "BENCH_HOOK_URL"
secret_env = "BENCH_HOOK_SECRET"

[[routes]]
min_level = "low"
receivers = ["hook"]
"""


class Sink(HookServer):
    """The webhook receiver: answers 200 at once and notes when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    def next_scripted(self, recorded: Hook) -> Answer | None:
        self.arrived.append(time.monotonic())
        return super().next_scripted(recorded)


@dataclass(frozen=True)
class Result:
    instances: int
    database: str
    posts: int
    alerts: int
    duplicates: int
    seconds: float
    polled: float  # seconds until every post was saved (source → database)


def setup(folder: Path, database: str, posts: Path) -> Path:
    """A config folder: the example queries, one webhook receiver, the workload's files."""
    shutil.copytree(ROOT / "queries", folder / "queries")
    shutil.copytree(ROOT / "alerts" / "templates", folder / "alerts" / "templates")
    (folder / "alerts" / "routes.toml").write_text(ROUTES, encoding="utf-8")
    shutil.copytree(posts, folder / "posts")
    config = folder / "config.toml"
    config.write_text(CONFIG.format(database=database), encoding="utf-8")
    return config


def listener(*args: str) -> list[str]:
    return [sys.executable, "-m", "listener", *args]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "SLACK_"))}


def progress(engine: sqlalchemy.Engine) -> tuple[int, int]:
    """Posts saved, and outbox rows still pending or sending."""
    with engine.connect() as conn:
        saved = conn.execute(sqlalchemy.text("SELECT count(*) FROM posts")).scalar_one()
        left = conn.execute(
            sqlalchemy.text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
        ).scalar_one()
    return int(saved), int(left)


def run(instances: int, database: str, label: str, posts: Path, count: int) -> Result:
    """One measurement: `instances` daemons on `database` until everything is delivered."""
    with tempfile.TemporaryDirectory(prefix="listener-scale-") as tmp, Sink() as sink:
        config = setup(Path(tmp), database, posts)
        subprocess.run(
            listener("db", "upgrade", "--config", str(config)),
            env=environment(),
            check=True,
            capture_output=True,
        )
        engine = sqlalchemy.create_engine(database)
        processes: list[subprocess.Popen[bytes]] = []
        logs = [(Path(tmp) / f"instance-{n}.log").open("wb") for n in range(instances)]
        try:
            started = time.monotonic()
            for n in range(instances):
                env = environment() | {
                    "BENCH_HOOK_URL": sink.url(f"/i{n}"),
                    "BENCH_HOOK_SECRET": SECRET,
                }
                processes.append(
                    subprocess.Popen(
                        listener("run", "--config", str(config)),
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=logs[n],
                    )
                )
            polled: float | None = None
            while True:
                saved, left = progress(engine)
                if saved >= count and polled is None:
                    polled = time.monotonic()
                if saved >= count and left == 0:
                    break
                if time.monotonic() - started > TIMEOUT:
                    raise SystemExit(f"{label}, {instances} instance(s): gave up after {TIMEOUT}s")
                for n, process in enumerate(processes):
                    if process.poll() is not None:
                        logs[n].flush()
                        tail = (Path(tmp) / f"instance-{n}.log").read_text(errors="replace")
                        raise SystemExit(
                            f"{label}: instance {n} exited with {process.returncode}:\n"
                            + "\n".join(tail.splitlines()[-20:])
                        )
                time.sleep(0.2)
            finished = max(sink.arrived, default=time.monotonic())
            keys = [hook.headers.get("idempotency-key", "") for hook in sink.requests]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for log in logs:
                log.close()
            engine.dispose()
    unique = len(set(keys))
    assert polled is not None
    return Result(
        instances, label, count, unique, len(keys) - unique, finished - started, polled - started
    )


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """LISTENER_TEST_POSTGRES when set, else a throwaway server for the length of the bench."""
    url = os.environ.get(postgres.ENV)
    if url:
        yield url
    else:
        with postgres.server() as started:
            yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000, help="posts in the workload")
    parser.add_argument("--files", type=int, default=8, help="replay files to split them over")
    parser.add_argument(
        "--instances", default="1,2,4", help="instance counts to run on PostgreSQL, e.g. 1,2,4"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",") if n.strip()]

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="listener-scale-posts-") as tmp:
        posts = Path(tmp) / "posts"
        workload.write(posts, args.posts, args.files)
        print(
            f"{args.posts:,} posts over {args.files} replay files; {os.cpu_count()} CPU cores "
            "(the instances and PostgreSQL share them)",
            flush=True,
        )
        with postgres_server() as server:
            for instances in counts:
                with postgres.fresh_database(server) as database:
                    results.append(run(instances, database, "postgresql", posts, args.posts))
                report(results[-1])
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory(prefix="listener-scale-db-") as db:
                database = f"sqlite:///{Path(db) / 'listener.db'}"
                results.append(run(1, database, "sqlite", posts, args.posts))
            report(results[-1])
    print()
    header = f"{'instances':>9}  {'database':<10}  {'posts':>7}  {'alerts':>6}  {'dup':>3}"
    print(f"{header}  {'seconds':>7}  {'posts/s':>7}  {'all saved at':>12}")
    for r in results:
        print(
            f"{r.instances:>9}  {r.database:<10}  {r.posts:>7,}  {r.alerts:>6,}  "
            f"{r.duplicates:>3}  {r.seconds:>7.1f}  {r.posts / r.seconds:>7.0f}  "
            f"{r.polled:>11.1f}s"
        )


def report(result: Result) -> None:
    print(
        f"  {result.instances} instance(s) on {result.database}: every post saved after "
        f"{result.polled:.1f}s, the last alert delivered after {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
