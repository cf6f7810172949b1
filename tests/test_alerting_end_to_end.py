"""End to end with a frozen clock: posts in a replay file → the daemon → a local Slack-wire server
and an aiosmtpd server, through routes with a digest, quiet hours, a silence and an escalation.

The daemon and its deliverer share one clock that the test moves; nothing sleeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.daemon import Daemon
from tests.support.configs import QUERIES
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink

TOKEN = "xoxb-frozen-clock"
MONDAY_10 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam
TEXTS = {
    "critical": "Er ligt een man bewusteloos in de bieb in Leusden, ambulance onderweg!",
    "fire": "brand in de bibliotheek Leusden, iedereen naar buiten",
    "high": "de bieb in Leusden is wéér dicht",
    "low": "leuke activiteit bij de bieb in Leusden vandaag",
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@pytest.fixture
def servers() -> Iterator[tuple[SlackWireServer, SmtpSink]]:
    with SlackWireServer(require_token=TOKEN) as slack, SmtpSink() as smtp:
        yield slack, smtp


class Setup:
    """A config with a Slack receiver 'team' and an e-mail receiver 'oncall', and `routes`."""

    def __init__(
        self,
        folder: Path,
        slack: SlackWireServer,
        smtp: SmtpSink,
        routes: str,
        clock: Clock,
        database: str = "sqlite:///listener.db",
    ) -> None:
        (folder / "queries").mkdir()
        (folder / "alerts" / "templates").mkdir(parents=True)
        root = Path(__file__).resolve().parents[1]
        for template in (root / "alerts" / "templates").glob("*.j2"):
            (folder / "alerts" / "templates" / template.name).write_bytes(template.read_bytes())
        (folder / "queries" / "eemland.toml").write_text(QUERIES, encoding="utf-8")
        (folder / "alerts" / "routes.toml").write_text(
            '[[receivers]]\nid = "team"\ntype = "slack"\nchannel = "#webcare"\n\n'
            '[[receivers]]\nid = "oncall"\ntype = "email"\nto = ["oncall@example.org"]\n\n'
            + routes,
            encoding="utf-8",
        )
        self.posts = folder / "posts.jsonl"
        self.posts.touch()
        (folder / "config.toml").write_text(
            f"""
database = "{database}"

[sources.replay]
path = "posts.jsonl"

[slack]
token_env = "FROZEN_SLACK_TOKEN"
base_url = "{slack.base_url}"

[email]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
sender = "listener <listener@example.org>"
""",
            encoding="utf-8",
        )
        config = load_config(folder / "config.toml")
        self.daemon = Daemon.from_config(config, env={"FROZEN_SLACK_TOKEN": TOKEN})
        self.clock = clock
        self.daemon.clock = clock
        self.daemon.deliverer.clock = clock
        self.count = 0

    def post(self, level: str) -> str:
        """A post of that urgency, made now; the daemon polls and delivers."""
        self.count += 1
        post_id = f"bluesky:frozen-{self.count}"
        line = {
            "id": post_id,
            "source": "bluesky",
            "text": TEXTS[level],
            "created_at": self.clock.now.isoformat(),
            "url": f"https://bsky.app/profile/x/post/{self.count}",
            "author": {"handle": f"user{self.count}.bsky.social"},
        }
        with self.posts.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.tick()
        return post_id

    def tick(self) -> None:
        for source in self.daemon.sources:
            self.daemon.poll(source)
        self.daemon.deliver()

    def at(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.tick()


def slack_posts(slack: SlackWireServer) -> list[tuple[str, list[str]]]:
    """(event type, post ids) per Slack message: an alert names one post, a digest several."""
    found = []
    for message in slack.messages:
        metadata = message.metadata or {}
        text = json.dumps(message.blocks)
        posts = sorted(set(_ids(text)))
        found.append((str(metadata.get("event_type")), posts))
    return found


def _ids(text: str) -> list[str]:
    import re

    return [f"post/{n}" for n in re.findall(r"bsky\.app/profile/x/post/(\d+)", text)]


def test_a_digest_at_0830_on_workdays_groups_the_days_alerts(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    clock = Clock(MONDAY_10)
    routes = """
[[routes]]
receivers = ["oncall"]
mode = "digest"
digest_at = ["08:30"]
digest_days = "workdays"
"""
    setup = Setup(tmp_path, slack, smtp, routes, clock, database_url)
    try:
        setup.post("high")
        setup.at(MONDAY_10 + timedelta(hours=5))
        setup.post("low")
        setup.at(MONDAY_10 + timedelta(hours=22, minutes=29))  # Tuesday 08:29
        assert smtp.messages == []
        setup.at(MONDAY_10 + timedelta(hours=22, minutes=30))  # Tuesday 08:30
        [mail] = smtp.wait_for(1)
        assert "2 alerts" in str(mail.message["Subject"])
        body = mail.message.get_body(("plain",)).get_content()
        assert body.index("/post/1") < body.index("/post/2")
        setup.at(MONDAY_10 + timedelta(hours=28))  # Tuesday 14:00
        assert len(smtp.messages) == 1  # once
        assert {d.status for d in setup.daemon.store.deliveries()} == {"sent"}
    finally:
        setup.daemon.store.close()


def test_quiet_hours_hold_the_night_but_a_critical_alert_goes_out(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    evening = MONDAY_10 + timedelta(hours=11)  # 21:00
    clock = Clock(evening)
    routes = """
[[routes]]
receivers = ["team"]
quiet_hours = "18:00-08:00"
during_quiet = "critical"
"""
    setup = Setup(tmp_path, slack, smtp, routes, clock, database_url)
    try:
        setup.post("high")
        setup.post("critical")
        setup.at(evening + timedelta(hours=2))
        setup.post("low")
        assert slack_posts(slack) == [("listener_alert", ["post/2"])]
        setup.at(MONDAY_10 + timedelta(hours=21, minutes=59))  # 07:59
        assert len(slack.messages) == 1
        setup.at(MONDAY_10 + timedelta(hours=22))  # 08:00: the night's alerts, as one message
        assert slack_posts(slack) == [
            ("listener_alert", ["post/2"]),
            ("listener_digest", ["post/1", "post/3"]),
        ]
    finally:
        setup.daemon.store.close()


def test_a_silence_holds_back_alerts_until_it_ends(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    clock = Clock(MONDAY_10)
    setup = Setup(tmp_path, slack, smtp, '[[routes]]\nreceivers = ["team"]\n', clock, database_url)
    try:
        store = setup.daemon.store
        store.add_silence(
            ["branch=leusden"], MONDAY_10 + timedelta(hours=2), "verbouwing", now=clock()
        )
        setup.post("high")
        setup.at(MONDAY_10 + timedelta(hours=1, minutes=59))
        setup.post("low")
        assert slack.messages == []
        setup.at(MONDAY_10 + timedelta(hours=2))
        setup.post("high")
        assert slack_posts(slack) == [("listener_alert", ["post/3"])]
        assert [d.status for d in store.deliveries()] == ["silenced", "silenced", "sent"]
    finally:
        setup.daemon.store.close()


def test_a_critical_alert_nobody_acknowledged_escalates_to_the_on_call_mail(
    tmp_path: Path, servers, database_url: str
) -> None:
    slack, smtp = servers
    clock = Clock(MONDAY_10)
    routes = """
[[routes]]
receivers = ["team"]
escalate_after = "15m"
escalate_to = ["oncall"]
"""
    setup = Setup(tmp_path, slack, smtp, routes, clock, database_url)
    try:
        setup.post("critical")
        setup.post("fire")
        store = setup.daemon.store
        store.acknowledge(2, by="U0ANNA", via="slack", now=clock())  # the second is handled
        assert len(slack.messages) == 2
        setup.at(MONDAY_10 + timedelta(minutes=14))
        assert smtp.messages == []
        setup.at(MONDAY_10 + timedelta(minutes=15))
        [mail] = smtp.wait_for(1)
        assert str(mail.message["Subject"]).startswith("[Escalated] not acknowledged")
        assert "/post/1" in mail.message.get_body(("plain",)).get_content()
        setup.at(MONDAY_10 + timedelta(hours=3))
        assert len(smtp.messages) == 1 and len(slack.messages) == 2
        assert [e.status for e in store.escalations()] == ["sent", "called-off"]
    finally:
        setup.daemon.store.close()
