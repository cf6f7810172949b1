"""Alert latency through the running daemon: a post appended to a replay file → its Slack message.

Prints figures; asserts nothing. Issue 9's target: p99 under 1 s at 500 posts a second.

    .venv/bin/python bench/latency.py [--rate 500] [--seconds 20] [--warmup 3] [--drain 30]
        [--interval 0.2s] [--batch 500] [--every 0.2s] [--library-share 0.07] [--seed 9] [--keep]

**Set-up.** A temporary folder gets a `config.toml` (SQLite database `listener.db` in that
folder, `[sources.replay]` on `posts.jsonl` polled every `--interval`, `[outbox] every`
`--every`, conversations and spikes off so every alert is a message of its own), the repo's
`queries/`, and `alerts/` with one Slack receiver that is also the `default`, so every post
tied to an organisation is one `chat.postMessage`. Slack is `tests.support.slackwire`'s local
Web API server in this process, which notes the moment each `chat.postMessage` arrives. The
daemon is a real `python -m listener run --config …` subprocess (its log in the folder).

**Posts.** Deterministic (`--seed`): Dutch everyday chatter (some naming the branches' towns),
other senses of "bibliotheek" and libraries outside every branch area, and a share
(`--library-share`, 7%) about the example organisations ("de bieb in Leusden is wéér dicht",
"Bibliotheek Eemland", "CODA Apeldoorn", …). Which posts alert is decided before the run by
`listener.pipeline.Classifier` on the same config, not hard-coded. Each post carries a unique
marker (`lat-0000123`) in its id and URL; the Slack message is matched to its post by the
marker in the URL of its "Open post" button.

**What is measured.** Start-up is not latency: the replay file starts with one alerting post,
and feeding begins once its message reached Slack. Then posts are appended at `--rate` a
second (each written with one `write` as it falls due, `created_at` the moment it is written),
first `--warmup` seconds unmeasured, then `--seconds` measured. A post's latency is from just
after the `write` that appended its line to the arrival of the `chat.postMessage` carrying its
alert, both on this process's monotonic clock. After feeding, it waits up to `--drain` seconds
for the alerts still due. Printed: posts fed and the achieved feed rate, alerts expected,
received and missing (and any not expected), p50 / p99 / max latency, and where the time went,
per alerted post, from the database's own timestamps: appended → decided (until `posts.
fetched_at`, the moment its batch was decided: waiting for the replay poll, reading, deciding),
decided → sending (until `outbox.sent_at`, the moment its send began: saving the batch in its
transaction, the delivery loop's wake-up, claiming its receiver's batch of rows, the alerts
sent before it in that batch), sending → Slack
(rendering, the HTTP call). Last, the replay polls from the daemon's log (how many, how long,
how far apart). The daemon is stopped with SIGTERM (then SIGKILL) whatever happens; `--keep`
keeps the folder (config, posts, database, log) to look into.

The Slack stand-in answers at once and never rate-limits; real Slack takes about one message a
second per channel, so at this alert rate a real channel would be the limit (README, Known
limits).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.slackwire: the local Slack Web API server

from listener.config import load_config  # noqa: E402
from listener.pipeline import Classifier  # noqa: E402
from listener.post import Author, Post  # noqa: E402
from tests.support.slackwire import SlackWireServer  # noqa: E402

TOKEN = "xoxb-latency-bench"
TOKEN_ENV = "LATENCY_SLACK_TOKEN"
RECEIVER = "webcare-slack"
MARKER = re.compile(r"lat-(\d{7})")
START_UP_TIMEOUT = 120.0  # seconds for the daemon to deliver its first alert

CONFIG = """\
database = "sqlite:///listener.db"
timezone = "Europe/Amsterdam"
queries_dir = "queries"
alerts_dir = "alerts"
log_level = "info"
log_format = "json"

[sources.replay]
path = "posts.jsonl"
interval = "{interval}"
batch = {batch}

[slack]
token_env = "{token_env}"
base_url = "{base_url}"
timeout = "5s"

[outbox]
lease = "30s"
every = "{every}"
[outbox.backoff]
initial = "0.2s"
max = "1s"

[spikes]
enabled = false      # every alert its own message: no incidents ...
follow_ups = false   # ... and no threads of near-duplicates
"""

ROUTES = f"""\
default = "{RECEIVER}"   # every post tied to an organisation goes to Slack, whatever its level

[[receivers]]
id = "{RECEIVER}"
type = "slack"
channel = "#webcare"

[[routes]]
min_level = "low"
receivers = ["{RECEIVER}"]
"""

# The post that shows the daemon is up: it must alert (checked with the classifier).
START_UP_TEXT = "de bieb in Leusden is wéér dicht 😡 stond voor niks voor de deur"

# {lib}: how people name the library; the classifier decides which of these alert.
LIBRARIES = (
    "de bieb in Leusden",
    "de bieb in Leusen",
    "de bibliotheek in Leusden",
    "de bieb in Amersfoort",
    "de bieb van Amersfoort",
    "de bieb in Hooglanderveen",
    "Bibliotheek Eemland",
    "Bieb Eemland",
    "@bibliotheekeemland",
    "het Eemhuis",
    "CODA Apeldoorn",
    "bieb CODA",
    "de bieb in Apeldoorn",
    "de bibliotheek in Ugchelen",
)
LIBRARY_TEMPLATES = (
    "{lib} is weer dicht",
    "{lib} is wéér dicht 😡 stond voor niks voor de deur",
    "{lib} is alweer dicht, en niemand zegt iets",
    "Waarom is {lib} vandaag dicht?",
    "Weet iemand hoe laat {lib} vandaag opengaat?",
    "Bij {lib} zijn alle computers kapot, al een week",
    "De printer bij {lib} doet het weer eens niet 🙄",
    "Al drie weken wachten op mijn reservering bij {lib}",
    "Heerlijke middag bij {lib}, dank aan de vrijwilligers van het taalcafé! 💚",
    "Zaterdag boekenmarkt bij {lib}, kom langs!",
    "Waarom is de wifi bij {lib} zo traag?",
)
OTHER_SENSES = (
    "Mijn hele Steam-bibliotheek is weg na de update, wat een ellende",
    "Welke Python library gebruiken jullie voor het parsen van TOML?",
    "Mijn Spotify bibliotheek is ineens helemaal leeg",
    "Net The Midnight Library uitgelezen, wat een boek",
    "De bieb in Zwolle is weer dicht, balen",
    "Naar de bibliotheek in Groningen geweest, wat een gebouw is het Forum",
    "Mijn iCloud-bibliotheek zit alweer vol",
)
CHATTER = (
    "De trein naar Utrecht heeft weer eens twintig minuten vertraging",
    "Wat een regen vandaag in {town}",
    "Iemand tips voor een goede pizzeria in {town}?",
    "Eindelijk de verwarming laten repareren, scheelt weer",
    "Zaterdag markt in {town}, lekker druk",
    "Ajax speelt vanavond weer beroerd",
    "Net de kinderen naar school gebracht, fiets lek natuurlijk",
    "Nieuwe koffiezaak in {town} is echt een aanrader",
    "Waarom staat de A28 bij {town} elke ochtend vast?",
    "Vandaag eindelijk mijn rijbewijs gehaald!",
    "Het park in {town} ligt vol bladeren, prachtig in de herfst",
    "Mijn buurman is alweer aan het boren, op zondag",
    "De gemeente {town} gaat de parkeertarieven weer verhogen",
    "Stroomstoring in {town}, hele wijk zit in het donker",
    "Just finished my run, legs are dead",
    "Anyone else's train stuck outside {town}?",
)
TOWNS = ("Amersfoort", "Leusden", "Apeldoorn", "Utrecht", "Zwolle", "Rotterdam", "Ugchelen")
ENDINGS = ("", "", "", " 😡", " 💚", " 🙄", "!", " echt waar", " 😅")
NAMES = (
    "marieke", "joost", "sanne", "pieter", "fatima", "daan", "lotte", "mohamed", "anouk", "bram",
    "esther", "thijs", "yara", "ruben", "ilse", "kees", "noor", "sem", "femke", "jeroen",
)  # fmt: skip
PROFILES = (None, None, "Leusden", "Amersfoort", "📍 Amersfoort", "Apeldoorn", "Utrecht", "NL")


@dataclass(frozen=True, slots=True)
class Planned:
    """One post to feed, and whether the classifier says it becomes a Slack alert."""

    number: int
    post: Post
    alerts: bool


def make_post(number: int, text: str, rng: random.Random) -> Post:
    """A canonical Bluesky-like post whose id and URL carry the marker `lat-<number>`."""
    name = rng.choice(NAMES)
    handle = f"{name}{rng.randrange(1000)}.bsky.social"
    marker = f"lat-{number:07d}"
    return Post(
        id=f"bluesky:{marker}",
        source="bluesky",
        text=text,
        created_at=datetime.now(UTC),  # replaced by the moment the line is written
        url=f"https://bsky.app/profile/{handle}/post/{marker}",
        lang="nl",
        author=Author(
            handle=handle,
            name=name.capitalize(),
            location=rng.choice(PROFILES),
            followers=rng.randrange(20, 3000),
        ),
    )


def plan_posts(count: int, seed: int, library_share: float) -> list[Post]:
    """`count` posts numbered from 1: chatter, other senses, and `library_share` about the
    example organisations. The same posts for the same seed."""
    rng = random.Random(seed)
    posts = []
    for number in range(1, count + 1):
        roll = rng.random()
        if roll < library_share:
            template = rng.choice(LIBRARY_TEMPLATES)
            text = template.format(lib=rng.choice(LIBRARIES))
            text = text[0].upper() + text[1:]
        elif roll < library_share + 0.03:
            text = rng.choice(OTHER_SENSES)
        else:
            text = rng.choice(CHATTER).format(town=rng.choice(TOWNS))
        posts.append(make_post(number, text + rng.choice(ENDINGS), rng))
    return posts


def write_setup(folder: Path, base_url: str, interval: str, every: str, batch: int) -> Path:
    """config.toml, queries/ (the repo's) and alerts/ (one Slack receiver) in `folder`."""
    shutil.copytree(ROOT / "queries", folder / "queries")
    shutil.copytree(ROOT / "alerts", folder / "alerts")
    (folder / "alerts" / "routes.toml").write_text(ROUTES, encoding="utf-8")
    config = folder / "config.toml"
    text = CONFIG.format(
        interval=interval, every=every, batch=batch, base_url=base_url, token_env=TOKEN_ENV
    )
    config.write_text(text, encoding="utf-8")
    return config


def expected(config: Path, posts: Sequence[Post]) -> list[bool]:
    """Whether each post becomes an alert to Slack, by listener's own classifier."""
    classifier = Classifier(load_config(config))
    return [
        (decided := classifier.process(post, "replay", {RECEIVER})).alert is not None
        and RECEIVER in decided.alert.receivers
        for post in posts
    ]


class TimedSlack(SlackWireServer):
    """The Slack stand-in, noting when the first message naming each marker arrived."""

    def __init__(self) -> None:
        super().__init__(require_token=TOKEN)
        self.arrived: dict[int, float] = {}
        self.duplicates = 0
        self.unmarked = 0
        self._seen = threading.Condition()

    def _accept(self, token: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        moment = time.monotonic()
        answer = super()._accept(token, payload)
        if not answer.get("ok"):
            return answer
        numbers = {int(m) for m in MARKER.findall(json.dumps(payload, ensure_ascii=False))}
        with self._seen:
            if not numbers:
                self.unmarked += 1
            for number in numbers:
                if number in self.arrived:
                    self.duplicates += 1
                else:
                    self.arrived[number] = moment
            self._seen.notify_all()
        return answer

    def wait_until(self, numbers: set[int], timeout: float) -> bool:
        """Until every one of `numbers` arrived (True) or `timeout` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not numbers <= self.arrived.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._seen.wait(min(left, 0.5))
        return True


@dataclass(slots=True)
class Fed:
    """When each post's line was appended: monotonic and wall-clock seconds, by number."""

    monotonic: dict[int, float]
    wall: dict[int, float]


def line_of(post: Post, now: datetime) -> bytes:
    data = replace(post, created_at=now).to_dict()
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


def feed(path: Path, posts: Sequence[Post], rate: float, daemon: subprocess.Popen[bytes]) -> Fed:
    """Append `posts` to `path` at `rate` a second, each line with one write as it falls due
    (several in one write only when the feeder fell behind), noting when each was written."""
    fed = Fed({}, {})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        start = time.monotonic()
        sent = 0
        while sent < len(posts):
            now = time.monotonic()
            due = min(len(posts), math.floor((now - start) * rate) + 1)
            if due > sent:
                wall = datetime.now(UTC)
                chunk = b"".join(line_of(post, wall) for post in posts[sent:due])
                os.write(fd, chunk)
                written, written_wall = time.monotonic(), time.time()
                for post in posts[sent:due]:
                    number = int(post.id.rsplit("-", 1)[1])
                    fed.monotonic[number] = written
                    fed.wall[number] = written_wall
                sent = due
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon exited while feeding ({daemon.returncode})")
            pause = start + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        os.close(fd)
    return fed


def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, then SIGKILL after 30 s; how it ended."""
    if process.poll() is not None:
        return f"had exited ({process.returncode})"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
        return f"stopped by SIGTERM ({process.returncode})"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return "killed: SIGTERM did not stop it within 30 s"


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted `values`."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


def stage_times(database: Path, numbers: Sequence[int], fed: Fed) -> dict[int, list[float]]:
    """Per alerted post: [appended → decided, decided → delivery started] in seconds, from
    `posts.fetched_at` and `outbox.sent_at` in the daemon's database."""
    wanted = {f"bluesky:lat-{n:07d}": n for n in numbers}
    stages: dict[int, list[float]] = {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        found = conn.execute(
            "SELECT posts.id, posts.fetched_at, outbox.sent_at FROM posts"
            " JOIN alerts ON alerts.post_id = posts.id"
            " JOIN outbox ON outbox.alert_id = alerts.id"
            " WHERE outbox.receiver = ? AND outbox.sent_at IS NOT NULL",
            (RECEIVER,),
        ).fetchall()
    for post_id, fetched_at, sent_at in found:
        number = wanted.get(post_id)
        if number is not None:
            decided, started = _epoch(fetched_at), _epoch(sent_at)
            stages[number] = [decided - fed.wall[number], started - decided]
    return stages


def _epoch(stored: str) -> float:
    moment = datetime.fromisoformat(stored)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def poll_summary(log: Path, since: float) -> str:
    """The daemon's replay polls after wall-clock `since`, from its JSON log: how many, how
    often, their duration and size."""
    polls: list[dict[str, Any]] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "poll":
            polls.append(entry)
    times = [_log_time(p) for p in polls]
    chosen = [p for p, t in zip(polls, times, strict=True) if t is None or t >= since]
    if not chosen:
        return "no poll lines in the daemon's log"
    durations = sorted(float(p.get("duration_s") or 0) for p in chosen)
    fetched = sorted(int(p.get("fetched") or 0) for p in chosen)
    stamps = sorted(t for t in times if t is not None and t >= since)
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
    gap = f", gap between polls p50 {ms(percentile(gaps, 0.5))} max {ms(gaps[-1])}" if gaps else ""
    return (
        f"{len(chosen)} polls, duration p50 {ms(percentile(durations, 0.5))}"
        f" max {ms(durations[-1])}, posts a poll p50 {percentile(fetched, 0.5)}"
        f" max {fetched[-1]}{gap}"
    )


def _log_time(entry: dict[str, Any]) -> float | None:
    for key in ("time", "ts", "timestamp", "@timestamp"):
        value = entry.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return _epoch(value)
            except ValueError:
                return None
    return None


def ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f} ms"


def row(label: str, value: str, note: str = "") -> None:
    print(f"{label:<26} {value:>12}" + (f"  ({note})" if note else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="posts a second")
    parser.add_argument("--seconds", type=float, default=20, help="measured feeding time")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured feeding first")
    parser.add_argument("--drain", type=float, default=30, help="max wait for the last alerts")
    parser.add_argument("--interval", default="0.2s", help="[sources.replay] interval")
    parser.add_argument("--every", default="0.2s", help="[outbox] every")
    parser.add_argument("--batch", type=int, default=500, help="[sources.replay] batch (lines)")
    parser.add_argument("--library-share", type=float, default=0.07, help="posts about a library")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    warm = round(args.rate * args.warmup)
    measured = round(args.rate * args.seconds)
    folder = Path(tempfile.mkdtemp(prefix="listener-latency-"))
    slack = TimedSlack()
    with slack:
        config = write_setup(folder, slack.base_url, args.interval, args.every, args.batch)
        rng = random.Random(args.seed)
        first = make_post(0, START_UP_TEXT, rng)
        posts = plan_posts(warm + measured, args.seed, args.library_share)
        started = time.perf_counter()
        first_alerts, *alerts = expected(config, [first, *posts])
        classified = time.perf_counter() - started
        if not first_alerts:
            raise SystemExit(f"the start-up post does not alert on this config: {START_UP_TEXT}")
        replay = folder / "posts.jsonl"
        replay.write_bytes(line_of(first, datetime.now(UTC)))
        log_path = folder / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTENER_", "SLACK_"))}
        env[TOKEN_ENV] = TOKEN
        with log_path.open("wb") as log:
            process = start_daemon(config, env, log)
            try:
                launched = time.monotonic()
                while not slack.wait_until({0}, 0.5):
                    if process.poll() is not None:
                        raise SystemExit(
                            f"the daemon exited ({process.returncode}); see {log_path}"
                        )
                    if time.monotonic() - launched > START_UP_TIMEOUT:
                        raise SystemExit(f"no first alert in {START_UP_TIMEOUT:.0f} s; {log_path}")
                start_up = time.monotonic() - launched
                fed_since = time.time()
                fed = feed(replay, posts, args.rate, process)
                fed_until = time.monotonic()
                want = {p.number for p in planned(posts, alerts) if p.alerts}
                slack.wait_until(want, args.drain)
                waited = time.monotonic() - fed_until
            finally:
                ended = stop(process)
        report(
            args, posts, alerts, fed, slack, folder, warm,
            start_up=start_up, classified=classified, waited=waited, ended=ended,
            fed_since=fed_since,
        )  # fmt: skip
    if args.keep:
        print(f"kept: {folder} (config.toml, posts.jsonl, listener.db, daemon.log)")
    else:
        shutil.rmtree(folder, ignore_errors=True)


def start_daemon(config: Path, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "listener", "run", "--config", str(config)]
    return subprocess.Popen(
        command, env=env, cwd=config.parent, stdout=log, stderr=subprocess.STDOUT
    )


def planned(posts: Sequence[Post], alerts: Sequence[bool]) -> list[Planned]:
    return [
        Planned(int(post.id.rsplit("-", 1)[1]), post, alert)
        for post, alert in zip(posts, alerts, strict=True)
    ]


def report(
    args: argparse.Namespace,
    posts: Sequence[Post],
    alerts: Sequence[bool],
    fed: Fed,
    slack: TimedSlack,
    folder: Path,
    warm: int,
    *,
    start_up: float,
    classified: float,
    waited: float,
    ended: str,
    fed_since: float,
) -> None:
    plan = planned(posts, alerts)
    measured = plan[warm:]
    numbers = [p.number for p in measured]
    times = sorted(fed.monotonic[n] for n in numbers)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    expect = [p.number for p in measured if p.alerts]
    got = [n for n in expect if n in slack.arrived]
    missing = [n for n in expect if n not in slack.arrived]
    alerting = {p.number for p in plan if p.alerts} | {0}
    unexpected = sorted(n for n in slack.arrived if n not in alerting)
    latencies = sorted(slack.arrived[n] - fed.monotonic[n] for n in got)

    print(
        f"listener latency: replay file → daemon → Slack chat.postMessage, replay interval "
        f"{args.interval}, batch {args.batch}, outbox every {args.every}, SQLite"
    )
    row("classified beforehand", f"{len(posts) + 1:,}", f"{classified:.1f} s, Classifier")
    row("daemon start-up", f"{start_up:.1f} s", "to its first alert in Slack; not measured")
    row("warm-up posts", f"{warm:,}", f"{args.warmup:g} s, not measured")
    rate = (len(times) - 1) / span if span else 0.0
    row("posts fed", f"{len(measured):,}", f"{args.seconds:g} s measured")
    row("feed rate", f"{rate:,.0f}/s", f"asked {args.rate:,.0f}/s")
    share = len(expect) / len(measured) if measured else 0.0
    row("alerts expected", f"{len(expect):,}", f"{share:.1%} of the posts fed")
    row("alerts received", f"{len(got):,}", f"{waited:.1f} s waited after feeding")
    row("alerts missing", f"{len(missing):,}", ", ".join(f"lat-{n:07d}" for n in missing[:5]))
    if unexpected or slack.duplicates or slack.unmarked:
        note = ", ".join(f"lat-{n:07d}" for n in unexpected[:5])
        row("alerts not expected", f"{len(unexpected):,}", note)
        row("duplicates / unmarked", f"{slack.duplicates} / {slack.unmarked}")
    if latencies:
        row("latency p50", ms(percentile(latencies, 0.50)))
        row("latency p99", ms(percentile(latencies, 0.99)))
        row("latency max", ms(latencies[-1]))
        quarters = [got[len(got) * q // 4 : len(got) * (q + 1) // 4] for q in range(4)]
        medians = [
            ms(percentile(sorted(slack.arrived[n] - fed.monotonic[n] for n in part), 0.5))
            for part in quarters
            if part
        ]
        row("  p50 by quarter of run", medians[0], "then " + ", ".join(medians[1:]))
        verdict = "met" if percentile(latencies, 0.99) < 1.0 else "missed"
        row("target p99 < 1 s", verdict)
    stages = stage_times(folder / "listener.db", got, fed)
    for number, parts in stages.items():  # the rest: from the delivery's start to Slack
        parts.append(slack.arrived[number] - fed.monotonic[number] - sum(parts))
    labels = ("appended → decided", "decided → sending", "sending → Slack")  # see the docstring
    for index, label in enumerate(labels if stages else ()):
        part = sorted(s[index] for s in stages.values())
        row(
            f"  {label}",
            ms(percentile(part, 0.5)),
            f"p99 {ms(percentile(part, 0.99))}, max {ms(part[-1])}",
        )
    print(f"replay polls while fed: {poll_summary(folder / 'daemon.log', fed_since)}")
    print(f"daemon: {ended}")


if __name__ == "__main__":
    main()
