"""A daemon wired to a local Slack-wire server, an SMTP sink and the console, on a real SQLite
file, fed by a scripted source: for the conversation and spike tests.

    with SlackWireServer(require_token=TOKEN) as slack, SmtpSink() as smtp:
        daemon = make_daemon(tmp_path, slack, smtp, spikes='size = 3')
        feed(daemon, [post("t:1", "de bieb in Leusden is dicht"), ...])   # poll + deliver
        slack.messages, smtp.messages, daemon.store.links()
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from listener.config import load_config
from listener.daemon import Daemon
from listener.post import Author, Post
from listener.sources import Batch
from tests.support.configs import write_setup
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink

TOKEN = "xoxb-threads-test-token"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

RECEIVERS = """
[[receivers]]
id = "slack"
type = "slack"
channel = "#webcare"

[[receivers]]
id = "mail"
type = "email"
to = ["webcare@example.org"]
"""


@dataclass
class ScriptedSource:
    """Each poll returns the next batch of posts."""

    key: str = "scripted"
    batches: list[list[Post]] = field(default_factory=list)
    name: str = "replay"
    interval: timedelta = timedelta(seconds=10)

    def fetch(self, cursor: str | None) -> Batch:
        posts = self.batches.pop(0) if self.batches else []
        return Batch(posts, str(int(cursor or 0) + 1))


def post(
    id: str,
    text: str,
    minutes: float = 0,
    *,
    reply_to: str | None = None,
    handle: str = "marieke",
) -> Post:
    """A post made `minutes` after T0, with a link ending in its id."""
    return Post(
        id=id,
        source="bluesky",
        text=text,
        created_at=T0 + timedelta(minutes=minutes),
        url=f"https://bsky.app/profile/{handle}/post/{id.split(':')[-1]}",
        reply_to=reply_to,
        author=Author(handle=handle, name=handle.title()),
    )


def make_daemon(
    folder: Path,
    slack: SlackWireServer,
    smtp: SmtpSink | None = None,
    *,
    spikes: str = "",
    console: io.StringIO | None = None,
) -> Daemon:
    """A daemon whose every alert goes to Slack, the console and (when `smtp`) e-mail."""
    main = f"""
[slack]
token_env = "THREADS_SLACK_TOKEN"
base_url = "{slack.base_url}"
timeout = "5s"

[outbox]
every = "0.2s"
[outbox.backoff]
initial = "0.1s"
max = "0.5s"

[spikes]
{spikes}
"""
    receivers = '"slack", "console"'
    if smtp is not None:
        main += f"""
[email]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
sender = "listener <listener@example.org>"
"""
        receivers = '"slack", "mail", "console"'
    config = load_config(
        write_setup(folder, extra_main=main, extra_receivers=RECEIVERS, route_receivers=receivers)
    )
    out = Console(file=console if console is not None else io.StringIO(), width=100)
    return Daemon.from_config(config, env={"THREADS_SLACK_TOKEN": TOKEN}, console=out)


def feed(daemon: Daemon, *batches: Sequence[Post]) -> None:
    """Poll each batch (one transaction each) and deliver everything due."""
    source = ScriptedSource(batches=[list(b) for b in batches])
    for _ in batches:
        daemon.poll(source)  # type: ignore[arg-type]
    daemon.deliverer.drain()
