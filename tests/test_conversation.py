"""Conversations: replies and near-duplicates of an alerted post are follow-ups in its thread.

The pure rules first (`listener.conversation`), then the daemon on a real SQLite file with
slack-sdk's client against the Slack-wire server, aiosmtpd and the console.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from listener.alert import AlertMessage, FollowUp
from listener.conversation import Recent, continues, core_text, is_near_duplicate
from listener.notify.slack import broadcast, build_blocks, fallback_text, thread_of
from tests.support.alerts import make_alert
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink
from tests.support.threads import TOKEN, feed, make_daemon, post

COMPLAINT = "de bieb in Leusden is wéér dicht 😡 stond voor niks voor de deur"


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


# --- the rules -----------------------------------------------------------------------------------


def test_core_text_sets_aside_the_repost_prefix_links_and_mentions() -> None:
    assert core_text("RT @marieke.bsky.social: De bieb is DICHT https://x.example/1") == (
        "de bieb is dicht"
    )
    assert core_text("@bieb@mastodon.nl wéér dicht") == "weer dicht"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (COMPLAINT, f"RT @marieke: {COMPLAINT}"),
        (COMPLAINT, COMPLAINT.upper()),
        (COMPLAINT, f"Dit dus. “{COMPLAINT}” https://bsky.app/x"),
        (COMPLAINT, COMPLAINT.replace("stond", "stonf")),  # re-typed with a slip
    ],
)
def test_reposts_copies_quotes_and_retyped_texts_are_near_duplicates(a: str, b: str) -> None:
    assert is_near_duplicate(a, b)
    assert is_near_duplicate(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (COMPLAINT, "de bieb in Amersfoort heeft nieuwe openingstijden vanaf maandag"),
        ("dicht!", "dicht!"),  # too short to tell a repost from chance
        ("RT @x: ", "RT @y: "),
        (COMPLAINT, "dicht"),
    ],
)
def test_different_or_too_short_texts_are_not(a: str, b: str) -> None:
    assert not is_near_duplicate(a, b)


def _recent(alert_id: int, text: str, minutes: float = 0, root: int | None = None) -> Recent:
    message = make_alert(text, alert_id=alert_id)
    p = post(f"t:{alert_id}", text, minutes)
    from dataclasses import replace

    return Recent(alert_id, replace(message, post=p), root_id=root)


def test_a_reply_wins_over_a_near_duplicate_and_the_newest_candidate_counts() -> None:
    recent = [_recent(1, COMPLAINT), _recent(2, COMPLAINT, 5), _recent(3, "iets anders", 6)]
    reply = post("t:9", COMPLAINT, 10, reply_to="t:3")
    found = continues(reply, recent, timedelta(hours=24))
    assert found is not None and (found.parent.alert_id, found.kind) == (3, "reply")
    copy = post("t:10", f"RT @marieke: {COMPLAINT}", 10)
    found = continues(copy, recent, timedelta(hours=24))
    assert found is not None and (found.parent.alert_id, found.kind) == (2, "duplicate")


def test_a_follow_up_of_a_follow_up_joins_the_root_thread() -> None:
    recent = [_recent(1, COMPLAINT), _recent(2, "klopt, ik stond er ook", 5, root=1)]
    found = continues(post("t:9", "belachelijk", 9, reply_to="t:2"), recent, timedelta(hours=1))
    assert found is not None and found.parent.thread == 1


def test_posts_older_than_the_follow_up_window_are_not_followed() -> None:
    recent = [_recent(1, COMPLAINT, 0)]
    late = post("t:9", f"RT @marieke: {COMPLAINT}", 25 * 60, reply_to="t:1")
    assert continues(late, recent, timedelta(hours=24)) is None
    assert continues(late, recent, timedelta(hours=26)) is not None


def test_alert_json_stored_before_follow_ups_existed_still_loads() -> None:
    stored = json.loads(make_alert().to_json())
    del stored["follow_up"], stored["incident"]
    loaded = AlertMessage.from_json(json.dumps(stored))
    assert loaded.follow_up is None and loaded.incident is None
    follow = make_alert(alert_id=7)
    from dataclasses import replace

    follow = replace(follow, follow_up=FollowUp(3, "reply", "high", "de bieb"))
    assert AlertMessage.from_json(follow.to_json()) == follow


def test_a_follow_up_shows_untrusted_parent_text_as_plain_text_only() -> None:
    from dataclasses import replace

    evil = "<!channel> @here <https://evil.example|klik>"
    alert = replace(make_alert(evil), follow_up=FollowUp(3, "reply", "high", evil))
    assert "<!channel>" not in fallback_text(alert)
    for block in build_blocks(alert):
        for element in block.to_dict().get("elements", []):
            if isinstance(element, dict) and evil in str(element.get("text")):
                assert element["type"] == "plain_text"


# --- the daemon ----------------------------------------------------------------------------------


def test_a_reply_to_an_alerted_post_lands_in_its_slack_thread_and_is_no_new_alert(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    feed(
        daemon,
        [post("bluesky:p1", COMPLAINT)],
        [post("bluesky:p2", "@marieke in Leusden? ik stond er ook, bieb dicht", 10,
              reply_to="bluesky:p1", handle="joost")],
    )  # fmt: skip
    parent, reply = slack.messages
    assert parent.thread_ts is None
    assert reply.thread_ts == parent.ts, "the reply is in the parent's thread"
    assert (
        reply.metadata["event_payload"]["parent_alert_id"]
        == (parent.metadata["event_payload"]["alert_id"])
    )
    assert "reply to alert #" in reply.text
    [link] = daemon.store.links()
    parent_id = parent.metadata["event_payload"]["alert_id"]
    assert (link.kind, link.parent_alert_id) == ("reply", parent_id)
    assert [m for m in slack.messages if m.thread_ts is None] == [parent], "no second ping"
    daemon.store.close()


def test_a_repost_lands_in_the_thread_too_and_later_follow_ups_join_the_same_thread(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    feed(
        daemon,
        [post("bluesky:p1", COMPLAINT)],
        [post("bluesky:p2", f"RT @marieke: {COMPLAINT}", 3, handle="anna")],
        [post("bluesky:p3", "de bieb in Leusden weer dicht?? schandalig", 4,
              reply_to="bluesky:p2", handle="piet")],
    )  # fmt: skip
    parent, repost, reply = slack.messages
    assert repost.thread_ts == parent.ts and reply.thread_ts == parent.ts
    assert "repost or near-duplicate of alert" in repost.text
    assert [link.kind for link in daemon.store.links()] == ["duplicate", "reply"]
    daemon.store.close()


def test_a_follow_up_waits_for_its_parent_and_threads_after_a_429(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    slack.fail_next(1, status=429, retry_after=0.2)
    feed(
        daemon,
        [post("bluesky:p1", COMPLAINT), post("bluesky:p2", f"RT @x: {COMPLAINT}", 1)],
    )
    parent, repost = slack.messages
    assert repost.thread_ts == parent.ts
    daemon.store.close()


@pytest.mark.parametrize(
    ("level", "parent", "shown"),
    [("critical", "normal", True), ("high", "low", True), ("high", "high", False),
     ("normal", "low", False), ("critical", "critical", False)],
)  # fmt: skip
def test_a_follow_up_more_urgent_than_its_parent_is_also_shown_in_the_channel(
    level: str, parent: str, shown: bool
) -> None:
    from dataclasses import replace

    alert = replace(make_alert(), level=level, follow_up=FollowUp(1, "reply", parent, "x"))
    assert broadcast(alert) is shown
    threaded = replace(alert, follow_up=FollowUp(1, "reply", parent, "x", "C0TEST:17.000001"))
    assert thread_of(threaded) == ("C0TEST", "17.000001")
    assert thread_of(replace(alert, follow_up=FollowUp(1, "reply", parent, "x", "C0:bad"))) is None


def test_an_escalation_in_the_alerts_thread_is_also_shown_in_the_channel() -> None:
    from dataclasses import replace

    escalation = replace(make_alert(), follow_up=FollowUp(1, "escalation", "critical", "x"))
    assert broadcast(escalation)
    assert not broadcast(replace(escalation, follow_up=FollowUp(1, "reply", "critical", "x")))


def test_a_follow_up_by_email_is_a_reply_to_the_parent_message(
    tmp_path: Path, slack: SlackWireServer, smtp: SmtpSink
) -> None:
    daemon = make_daemon(tmp_path, slack, smtp)
    feed(
        daemon,
        [post("bluesky:p1", COMPLAINT)],
        [post("bluesky:p2", "ik stond er ook\r\nBcc: evil@example.org", 5,
              reply_to="bluesky:p1")],
    )  # fmt: skip
    first, second = smtp.wait_for(2)
    parent_id = first.message["Message-ID"]
    assert second.message["In-Reply-To"] == parent_id
    assert second.message["References"] == parent_id
    assert str(second.message["Subject"]).startswith("Re: ")
    assert second.message["Bcc"] is None and second.rcpt_tos == ["webcare@example.org"]
    assert "↳ reply to alert #1" in second.message.get_body(("plain",)).get_content()
    daemon.store.close()


def test_on_the_console_a_follow_up_is_indented_under_its_parent(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    out = io.StringIO()
    daemon = make_daemon(tmp_path, slack, console=out)
    feed(
        daemon,
        [post("bluesky:p1", COMPLAINT)],
        [post("bluesky:p2", "[bold red]ik ook[/] dicht", 5, reply_to="bluesky:p1")],
    )
    lines = out.getvalue().splitlines()
    [marker] = [line for line in lines if "↳ reply to alert #" in line]
    assert marker.startswith("    ")
    after = lines[lines.index(marker) + 1 :]
    assert after and all(line.startswith("    ") for line in after if line.strip())
    assert "[bold red]ik ook[/]" in out.getvalue()
    daemon.store.close()


def test_follow_ups_can_be_turned_off(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon = make_daemon(tmp_path, slack, spikes="follow_ups = false")
    feed(daemon, [post("bluesky:p1", COMPLAINT)], [post("bluesky:p2", f"RT @x: {COMPLAINT}", 2)])
    assert [m.thread_ts for m in slack.messages] == [None, None]
    assert daemon.store.links() == []
    daemon.store.close()


def test_a_crash_mid_delivery_and_a_restart_do_not_double_a_follow_up(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    first, second = (
        [post("bluesky:p1", COMPLAINT)],
        [post("bluesky:p2", "klopt, ik stond er ook", 5, reply_to="bluesky:p1")],
    )
    feed(daemon, first, second)
    assert len(slack.messages) == 2
    follow_up = slack.messages[1]
    assert follow_up.thread_ts is not None and "reply to alert #" in (follow_up.text or "")
    db = tmp_path / "listener.db"
    # A crash after Slack took the follow-up but before the outbox heard so: the lease runs out,
    # and a restarted daemon finds the message by its metadata instead of posting it again.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE outbox SET status = 'sending', lease_until = '2000-01-01 00:00:00.000000', "
            "sent_at = NULL, external_ref = NULL "
            "WHERE alert_id = (SELECT alert_id FROM alert_links WHERE kind = 'reply') "
            "AND receiver = 'slack'"
        )
    daemon.store.close()

    again = make_daemon(tmp_path, slack)
    feed(again, first, second)  # the source sends the same posts again after the restart
    assert len(slack.messages) == 2, "not posted twice"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM alert_links").fetchone()[0] == 1
    refs = {(d.alert_id, d.receiver): (d.status, d.external_ref) for d in again.store.deliveries()}
    assert {status for status, _ in refs.values()} == {"sent"}
    assert refs[2, "slack"][1] == f"C0TEST:{follow_up.ts}"
    again.store.close()


def test_a_follow_up_whose_parent_never_reached_slack_is_a_message_of_its_own(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    slack.error_next(1, "channel_not_found")  # the parent fails for good
    feed(daemon, [post("bluesky:p1", COMPLAINT)], [post("bluesky:p2", "ik ook", 5,
                                                        reply_to="bluesky:p1")])  # fmt: skip
    [alone] = slack.messages
    assert alone.thread_ts is None
    assert "reply to alert #" in alone.text
    flat = json.dumps(alone.blocks, ensure_ascii=False)
    assert "wéér dicht" in flat, "standing alone, it quotes the post it follows"
    daemon.store.close()
