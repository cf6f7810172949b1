"""Forgetting an author (`listener forget`, `Store.forget_author`): their posts, decisions,
snapshots and author rows go, alerts about their posts stay only as redacted counts, and nothing
about them is sent later, one alert at a time or in a digest."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from listener.alert import AlertMessage
from listener.cli import app
from listener.config import load_config
from listener.daemon import Daemon
from listener.post import Author, Engagement, Post
from tests.support.configs import write_setup
from tests.test_retention import DIGEST_ROUTES

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MARIEKE = Author(handle="Marieke.bsky.social", name="Marieke de Vries", location="Leusden")
JAN = Author(handle="jan.bsky.social", name="Jan", location="Amersfoort")
SECRET_TEXT = "de bieb in Leusden is dicht en mijn pasje is kwijt"
OTHER_TEXT = "bibliotheek Amersfoort heeft vanavond een lezing over vogels"


def post(pid: str, text: str, author: Author, hours: float, source: str = "bluesky") -> Post:
    return Post(
        pid,
        source,
        text,
        NOW - timedelta(hours=hours),
        url=f"https://bsky.app/profile/{author.handle}/post/{pid}",
        author=author,
        engagement=Engagement(likes=3, reposts=1, replies=0),
    )


def make_daemon(folder: Path, routes: str | None = None) -> tuple[Daemon, io.StringIO]:
    path = write_setup(folder)
    if routes is not None:
        (folder / "alerts" / "routes.toml").write_text(routes, encoding="utf-8")
    printed = io.StringIO()
    console = Console(file=printed, width=200, emoji=False)
    daemon = Daemon.from_config(load_config(path), env={}, console=console)
    daemon.clock = lambda: NOW
    daemon.deliverer.clock = lambda: NOW
    daemon.sources = []
    return daemon, printed


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, io.StringIO]]:
    made = make_daemon(tmp_path)
    yield made
    made[0].store.close()


def database_text(folder: Path) -> str:
    """Every row of every table, as SQL: what a copy of the database would give away."""
    connection = sqlite3.connect(folder / "listener.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def test_forgetting_an_author_erases_their_posts_and_keeps_redacted_alert_counts(
    tmp_path: Path, daemon: tuple[Daemon, io.StringIO]
) -> None:
    d, printed = daemon
    d.ingest([post("bluesky:m1", SECRET_TEXT, MARIEKE, 5), post("bluesky:j1", OTHER_TEXT, JAN, 3)])
    d.ingest([post("bluesky:m2", "lekker weer vandaag", MARIEKE, 2)])  # stored, not alerted
    alerts = d.store.alerts_since(NOW - timedelta(days=1))
    assert len(alerts) == 2
    before = database_text(tmp_path)
    assert "Marieke" in before and "mijn pasje" in before and "bluesky:m1" in before

    counts = d.store.forget_author("@marieke.BSKY.social")

    assert counts["posts"] == 2
    assert counts["decisions"] == 2
    assert counts["post authors"] == 2
    assert counts["engagement snapshots"] == 2
    assert counts["alerts redacted"] == 1
    assert counts["deliveries stopped"] == 1  # not delivered yet: now it never will be
    after = database_text(tmp_path)
    traces = ("marieke", "Marieke", "mijn pasje", "bluesky:m1", "bluesky:m2", '"Leusden"')
    for trace in traces:
        assert trace not in after, trace
    assert "Jan" in after and "vogels" in after  # somebody else's post stays
    kept = d.store.alerts_since(NOW - timedelta(days=1))
    assert [a.id for a in kept] == [a.id for a in alerts]  # reports still count the alert
    forgotten = next(a for a in kept if a.id == alerts[0].id)
    assert forgotten.post_id == f"forgotten:{forgotten.id}"
    message = AlertMessage.from_json(forgotten.message)
    assert message.post.text == "" and message.post.author is None and message.post.url is None
    assert message.evidence == [] and message.reasons == []
    assert (message.org_id, message.branch_id, message.level) == (
        alerts[0].org,
        alerts[0].branch,
        alerts[0].level,
    )
    stopped = [r for r in d.store.deliveries() if r.alert_id == forgotten.id]
    assert [(r.status, r.last_error) for r in stopped] == [("failed", "forgotten on request")]

    d.deliver()
    shown = printed.getvalue()
    assert "vogels" in shown  # Jan's alert goes out
    assert "pasje" not in shown and "arieke" not in shown
    assert d.store.forget_author("marieke.bsky.social") == {}  # nothing left to forget


def test_posts_saved_before_post_authors_existed_are_found_by_the_handle_in_their_json(
    tmp_path: Path, daemon: tuple[Daemon, io.StringIO]
) -> None:
    d, _ = daemon
    d.ingest([post("bluesky:old", SECRET_TEXT, MARIEKE, 30)])
    connection = sqlite3.connect(tmp_path / "listener.db")
    with connection:
        connection.execute("DELETE FROM post_authors")  # as saved before the table existed
    connection.close()
    assert d.store.author_history("marieke.bsky.social", "eemland", NOW).posts == 0

    counts = d.store.forget_author("marieke.bsky.social")

    assert counts["posts"] == 1 and counts["alerts redacted"] == 1
    assert "post authors" not in counts
    assert "pasje" not in database_text(tmp_path)


def test_source_keeps_the_same_handle_on_another_network(
    tmp_path: Path, daemon: tuple[Daemon, io.StringIO]
) -> None:
    d, _ = daemon
    d.ingest(
        [
            post("bluesky:m1", "lekker weer vandaag", MARIEKE, 5),
            post("mastodon:m1", "ook hier lekker weer", MARIEKE, 4, source="mastodon"),
        ]
    )
    preview = d.store.forget_author("marieke.bsky.social", source="mastodon", dry_run=True)
    assert preview["posts"] == 1
    assert "ook hier" in database_text(tmp_path)  # a dry run changes nothing
    assert d.store.forget_author("marieke.bsky.social", source="mastodon")["posts"] == 1
    text = database_text(tmp_path)
    assert "ook hier" not in text and "lekker weer vandaag" in text


def test_a_follow_up_by_someone_else_loses_the_forgotten_parent_text(
    daemon: tuple[Daemon, io.StringIO],
) -> None:
    d, _ = daemon
    d.ingest([post("bluesky:m1", SECRET_TEXT, MARIEKE, 5)])
    reply = Post(
        "bluesky:j-reply",
        "bluesky",
        "klopt, ik stond ook voor een dichte deur",
        NOW - timedelta(hours=4),
        author=JAN,
        reply_to="bluesky:m1",
    )
    d.ingest([reply])
    [parent, follow] = d.store.alerts_since(NOW - timedelta(days=1))
    quoted = AlertMessage.from_json(follow.message).follow_up
    assert quoted is not None and "pasje" in quoted.parent_text

    counts = d.store.forget_author("marieke.bsky.social")

    assert counts["quotes in other alerts"] == 1
    after = AlertMessage.from_json(d.store.alert(follow.id or 0).message)  # type: ignore[union-attr]
    assert after.follow_up is not None and after.follow_up.parent_text == ""
    assert after.follow_up.parent_alert_id == parent.id  # still in the same thread
    assert after.post.text == reply.text  # Jan's own post stays


def test_a_digest_not_sent_yet_says_nothing_about_the_forgotten_author(tmp_path: Path) -> None:
    d, printed = make_daemon(tmp_path, DIGEST_ROUTES)
    try:
        d.ingest(
            [post("bluesky:m1", SECRET_TEXT, MARIEKE, 5), post("bluesky:j1", OTHER_TEXT, JAN, 3)]
        )
        assert {r.status for r in d.store.deliveries()} == {"held"}
        [digest] = d.store.digests()
        assert d.store.digest_sizes() == {digest.id: 2}

        counts = d.store.forget_author("marieke.bsky.social")

        assert counts["deliveries stopped"] == 1 and counts["digest items removed"] == 1
        assert d.store.digest_sizes() == {digest.id: 1}
        later = NOW + timedelta(hours=2)
        claimed = d.store.claim_digest(digest.id or 0, later, timedelta(seconds=60))
        assert claimed is not None and len(claimed.messages) == 1
        assert "pasje" not in claimed.messages[0] and "marieke" not in claimed.messages[0].lower()
        d.store.mark_digest_retry(digest.id or 0, "test", later)
        d.clock = lambda: later
        d.deliverer.clock = lambda: later
        d.deliver()
        shown = printed.getvalue()
        assert "vogels" in shown
        assert "pasje" not in shown and "arieke" not in shown
        statuses = {r.alert_id: (r.status, r.last_error) for r in d.store.deliveries()}
        assert sorted(statuses.values()) == [("failed", "forgotten on request"), ("sent", None)]
    finally:
        d.store.close()


def test_a_digest_of_only_forgotten_alerts_is_not_sent_at_all(tmp_path: Path) -> None:
    d, printed = make_daemon(tmp_path, DIGEST_ROUTES)
    try:
        d.ingest([post("bluesky:m1", SECRET_TEXT, MARIEKE, 5)])
        assert len(d.store.digests()) == 1
        assert d.store.forget_author("marieke.bsky.social")["digests emptied"] == 1
        assert d.store.digests() == []
        later = NOW + timedelta(hours=2)
        d.deliverer.clock = lambda: later
        result = d.deliver()
        assert result.digests == 0 and printed.getvalue() == ""
    finally:
        d.store.close()


def test_the_command_shows_what_it_found_asks_and_says_what_it_removed(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    d = Daemon.from_config(load_config(config), env={})
    d.ingest([post("bluesky:m1", SECRET_TEXT, MARIEKE, 5)])
    d.store.close()
    runner = CliRunner()

    said_no = runner.invoke(
        app, ["forget", "--author", "@Marieke.bsky.social", "--config", str(config)], input="n\n"
    )
    assert said_no.exit_code == 1, said_no.output
    assert "stored about @marieke.bsky.social (nothing erased yet): 1 posts," in said_no.output
    assert "nothing erased" in said_no.output
    assert "pasje" in database_text(tmp_path)

    done = runner.invoke(
        app,
        ["forget", "--author", "marieke.bsky.social", "--yes", "--config", str(config)],
    )
    assert done.exit_code == 0, done.output
    assert "forgot @marieke.bsky.social: 1 posts" in done.output
    assert "1 alerts redacted" in done.output
    assert "pasje" not in database_text(tmp_path)

    again = runner.invoke(
        app, ["forget", "--author", "marieke.bsky.social", "--yes", "--config", str(config)]
    )
    assert again.exit_code == 0 and "nothing stored about @marieke.bsky.social" in again.output
    unknown = runner.invoke(
        app, ["forget", "--author", "x", "--source", "myspace", "--config", str(config)]
    )
    assert unknown.exit_code == 2 and "unknown source 'myspace'" in unknown.output


def test_the_redacted_alert_json_still_loads_for_reports(
    daemon: tuple[Daemon, io.StringIO],
) -> None:
    d, _ = daemon
    d.ingest([post("bluesky:m1", SECRET_TEXT, MARIEKE, 5)])
    d.store.forget_author("marieke.bsky.social")
    [alert] = d.store.alerts_since(NOW - timedelta(days=1))
    data = json.loads(alert.message)
    assert data["post"]["author"] is None and data["post"]["text"] == ""
    assert data["post"]["created_at"].startswith("2026-11-20T07:00")  # counted on its day


ESCALATING_ROUTES = """\
[[receivers]]
id = "console"
type = "console"

[[receivers]]
id = "oncall"
type = "console"

[[routes]]
receivers = ["console"]
escalate_after = "15m"
escalate_to = ["oncall"]
"""
CRITICAL_TEXT = "Er ligt een man bewusteloos in de bieb in Leusden, ambulance onderweg!"


def test_a_pending_escalation_of_a_forgotten_alert_is_called_off(tmp_path: Path) -> None:
    d, printed = make_daemon(tmp_path, ESCALATING_ROUTES)
    try:
        d.ingest([post("bluesky:m1", CRITICAL_TEXT, MARIEKE, 0.1)])
        [escalation] = d.store.escalations()
        assert escalation.status == "pending"

        assert d.store.forget_author("marieke.bsky.social")["escalations called off"] == 1

        [escalation] = d.store.escalations()
        assert escalation.status == "called-off"
        later = NOW + timedelta(hours=1)
        d.deliverer.clock = lambda: later
        result = d.deliver()
        assert result.escalated == 0 and result.sent == 0
        assert "bewusteloos" not in printed.getvalue()
    finally:
        d.store.close()
