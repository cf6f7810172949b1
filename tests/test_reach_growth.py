"""Reach that grows between polls: a post seen again with new counts is an engagement snapshot,
and an alerted post growing fast gets one follow-up in its alert's thread, at its new level.

The pure parts first (`Growth`, the score, `GrowthWatch`), then the daemon on a real SQLite file
with a scripted source returning the same post again with higher counts, slack-sdk's client
against the Slack-wire server.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from listener.conversation import Recent
from listener.daemon import Daemon
from listener.growth import GrowthWatch, Sighting, growth_between
from listener.post import Engagement, Post
from listener.store import REACH_SOURCE
from listener.urgency.context import Context, Growth
from listener.urgency.score import score_post, weighted_engagement, with_growth
from listener.urgency.settings import default_settings, settings_from
from tests.support.alerts import make_alert
from tests.support.slackwire import SlackWireMessage, SlackWireServer
from tests.support.threads import T0, TOKEN, ScriptedSource, make_daemon, post

COMPLAINT = "de bieb in Leusden is wéér dicht 😡 stond voor niks voor de deur"
GROWTH_LINE = "reach: +240 likes/reposts/replies in 35 min (411/h) +10"


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


def counted(p: Post, likes: int, reposts: int = 0, replies: int = 0) -> Post:
    return replace(p, engagement=Engagement(likes=likes, reposts=reposts, replies=replies))


# --- growth and the score ------------------------------------------------------------------------


def test_growth_is_weighted_engagement_gained_per_hour_between_two_sightings() -> None:
    settings = default_settings()
    before = Sighting(T0, likes=5, reposts=0, replies=1)
    after = Sighting(T0 + timedelta(minutes=35), likes=205, reposts=20, replies=1)
    growth = growth_between(before, after, settings)
    assert growth == Growth(gained=240, minutes=35)
    assert growth.describe() == "+240 likes/reposts/replies in 35 min (411/h)"


def test_sightings_close_together_count_as_growth_min_minutes_apart() -> None:
    before = Sighting(T0, likes=0)
    after = Sighting(T0 + timedelta(seconds=10), likes=10)
    assert growth_between(before, after, default_settings()).minutes == 5


def test_the_weights_come_from_the_urgency_settings() -> None:
    e = Engagement(likes=10, reposts=10, replies=10)
    assert weighted_engagement(e, default_settings()) == 40  # likes + 2×reposts + replies
    custom = settings_from({"reach": {"engagement_reposts": 5, "engagement_replies": 0}})
    assert weighted_engagement(e, custom) == 60


def test_the_threshold_and_the_step_are_urgency_settings() -> None:
    settings = default_settings()
    assert settings.reach.growth_alert_per_hour == 50
    watch = GrowthWatch(settings_from({"reach": {"growth_alert_per_hour": 500}}))
    assert watch.bar() == 500
    assert watch.bar([400.0]) == 800  # twice the last follow-up's growth
    assert watch.bar([100.0]) == 500  # never under the threshold


def test_the_score_takes_growth_between_polls_when_there_is_one() -> None:
    p = counted(post("t:1", COMPLAINT), likes=15)
    since_posting = score_post(p, context=Context(now=T0 + timedelta(hours=1)))
    assert not any("likes/reposts/replies" in r for r in since_posting.reasons)  # 15 an hour
    growth = Growth(gained=240, minutes=35)
    grown = score_post(p, context=Context(now=T0 + timedelta(hours=1), growth=growth))
    assert GROWTH_LINE in grown.reasons
    assert grown.score == since_posting.score + 10


def test_without_growth_the_score_counts_engagement_since_posting_as_before() -> None:
    p = counted(post("t:1", COMPLAINT), likes=400, reposts=50)
    urgency = score_post(p, context=Context(now=T0 + timedelta(hours=2)))
    assert "reach: 500 likes/reposts/replies in 2 h (250 an hour) +8.8" in urgency.reasons


def test_with_growth_swaps_the_engagement_line_and_keeps_every_other_factor() -> None:
    p = counted(post("t:1", COMPLAINT), likes=400, reposts=50)
    decided = score_post(p, context=Context(now=T0 + timedelta(hours=2)))
    regrown = with_growth(
        decided.score, decided.labels, decided.reasons, p, Growth(240, 35), default_settings()
    )
    assert regrown.reasons[0] == GROWTH_LINE
    assert not any("an hour" in r for r in regrown.reasons)
    assert regrown.reasons[1:] == [r for r in decided.reasons if "an hour" not in r]
    assert regrown.score == pytest.approx(decided.score - 8.8 + 10)


def test_growth_adds_nothing_to_a_post_that_needs_no_action() -> None:
    p = counted(post("t:1", "wat een fijne bieb in Leusden, echt een aanrader"), likes=1)
    urgency = score_post(p, context=Context(now=T0, growth=Growth(10_000, 10)))
    assert not any(r.startswith("reach") for r in urgency.reasons)


def test_a_follow_up_needs_the_growth_to_raise_the_alerts_level() -> None:
    watch = GrowthWatch(default_settings())
    alert = replace(make_alert(COMPLAINT), level="high", score=60.0, labels=["outage"], reasons=[])
    parent = Recent(7, alert, receivers=("slack",))
    raised = watch.follow_up(parent, alert.post, Growth(240, 35))
    assert raised is not None
    assert (raised.message.level, raised.message.score) == ("critical", 70.0)
    assert raised.message.reasons == [GROWTH_LINE]
    assert raised.message.follow_up is not None and raised.message.follow_up.kind == "reach"
    assert (raised.parent_id, raised.receivers) == (7, ["slack"])
    lower = Recent(7, replace(alert, score=50.0), receivers=("slack",))  # 60 with it: high
    assert watch.follow_up(lower, alert.post, Growth(240, 35)) is None
    assert watch.follow_up(parent, alert.post, Growth(20, 35)) is None  # 34/h: under the bar


# --- the daemon ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def poll_at(daemon: Daemon, clock: Clock, minutes: float, *posts: Post) -> None:
    """One poll at T0 + `minutes` returning `posts`, then deliver everything due."""
    clock.now = T0 + timedelta(minutes=minutes)
    source = ScriptedSource(batches=[list(posts)])
    daemon.poll(source)  # type: ignore[arg-type]
    daemon.deliverer.drain()


def clocked(tmp_path: Path, slack: SlackWireServer) -> tuple[Daemon, Clock]:
    daemon = make_daemon(tmp_path, slack)
    clock = Clock()
    daemon.clock = clock
    return daemon, clock


def flat(message: SlackWireMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def reach_links(daemon: Daemon) -> list[int]:
    return [link.parent_alert_id for link in daemon.store.links() if link.kind == "reach"]


FIRST = counted(post("bluesky:p1", COMPLAINT), likes=5, replies=1)
GROWN = counted(post("bluesky:p1", COMPLAINT), likes=205, reposts=20, replies=1)  # +240


def test_a_post_seen_again_growing_fast_gets_one_follow_up_in_its_thread(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    [parent] = slack.messages
    alert_id = parent.metadata["event_payload"]["alert_id"]
    assert daemon.store.alert(alert_id).level == "high"  # type: ignore[union-attr]

    poll_at(daemon, clock, 45, GROWN)
    parent_again, grown = slack.messages
    assert parent_again == parent
    assert grown.thread_ts == parent.ts, "in the alert's thread"
    assert grown.broadcast, "more urgent than the alert: shown in the channel too"
    assert f"reach growing fast on alert #{alert_id}" in grown.text
    assert GROWTH_LINE in flat(grown)
    assert "critical" in grown.text.lower()
    assert reach_links(daemon) == [alert_id]
    [follow_up] = [a for a in daemon.store.alerts_since(T0) if a.id != alert_id]
    assert (follow_up.level, follow_up.score) == ("critical", 70.0)
    assert [s.likes for s in daemon.store.snapshots("bluesky:p1")] == [5, 205]
    daemon.store.close()


def test_slow_growth_gives_no_follow_up_but_is_recorded(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    poll_at(daemon, clock, 45, counted(FIRST, likes=25, replies=1))  # +20 in 35 min: 34/h
    assert len(slack.messages) == 1
    assert reach_links(daemon) == []
    first, second = daemon.store.snapshots("bluesky:p1")
    assert (first.per_hour, second.per_hour) == (None, pytest.approx(20 * 60 / 35))
    assert not second.raised
    daemon.store.close()


def test_seen_again_without_a_next_step_gives_no_second_follow_up(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    poll_at(daemon, clock, 45, GROWN)  # 411/h: a follow-up
    poll_at(daemon, clock, 80, counted(GROWN, likes=505, reposts=20, replies=1))  # 514/h
    poll_at(daemon, clock, 80.5, counted(GROWN, likes=505, reposts=20, replies=1))  # resent
    assert len(slack.messages) == 2
    assert len(reach_links(daemon)) == 1
    # twice the last follow-up's growth is the next step: one more follow-up, same thread
    poll_at(daemon, clock, 115, counted(GROWN, likes=1005, reposts=20, replies=1))  # 857/h
    parent, _, second = slack.messages
    assert second.thread_ts == parent.ts
    assert "+500 likes/reposts/replies in 34 min" in flat(second)
    assert len(reach_links(daemon)) == 2
    assert [s.raised for s in daemon.store.snapshots("bluesky:p1")] == [
        False, True, False, False, True,
    ]  # fmt: skip
    daemon.store.close()


def test_a_post_that_was_never_alerted_gets_no_follow_up(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    quiet = counted(post("bluesky:q1", "lekker weer vandaag, iedereen naar buiten"), likes=1)
    poll_at(daemon, clock, 10, quiet)
    poll_at(daemon, clock, 20, counted(quiet, likes=5000, reposts=800))
    assert slack.messages == []
    assert daemon.store.links() == []
    assert [s.likes for s in daemon.store.snapshots("bluesky:q1")] == [1, 5000]
    daemon.store.close()


def test_growth_that_does_not_raise_the_level_gives_no_follow_up(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    question = "weet iemand hoe laat de bieb in Leusden vandaag open is?"  # 25: normal
    asked = counted(post("bluesky:v1", question), likes=0)
    poll_at(daemon, clock, 10, asked)
    poll_at(daemon, clock, 45, counted(asked, likes=240))  # 411/h: 35 with it, still normal
    assert len(slack.messages) == 1
    assert reach_links(daemon) == []
    daemon.store.close()


def test_snapshots_survive_a_restart(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    daemon.store.close()

    again, clock = clocked(tmp_path, slack)
    poll_at(again, clock, 45, GROWN)  # grows from the sighting saved before the restart
    parent, grown = slack.messages
    assert grown.thread_ts == parent.ts
    assert GROWTH_LINE in flat(grown)
    again.store.close()

    with sqlite3.connect(tmp_path / "listener.db") as conn:
        rows = conn.execute(
            "SELECT likes, reposts, replies, raised FROM engagement_snapshots ORDER BY seen_at"
        ).fetchall()
        assert rows == [(5, 0, 1, 0), (205, 20, 1, 1)]


def test_a_batch_that_fails_keeps_neither_the_snapshot_nor_the_follow_up(
    tmp_path: Path, slack: SlackWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    store = daemon.store
    original: Callable[..., None] = store._set_cursor

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_set_cursor", broken)
    clock.now = T0 + timedelta(minutes=45)
    with pytest.raises(RuntimeError):
        store.save_batch("scripted", "2", [], clock.now, seen=[GROWN], reach=daemon.reach)
    assert len(store.snapshots("bluesky:p1")) == 1
    assert reach_links(daemon) == []
    monkeypatch.setattr(store, "_set_cursor", original)
    # the same batch again (the source returns it again): the follow-up, once
    saved = store.save_batch("scripted", "2", [], clock.now, seen=[GROWN], reach=daemon.reach)
    assert (saved.follow_ups, saved.deliveries) == (1, 2)  # slack and console
    daemon.deliverer.drain()
    assert len(slack.messages) == 2
    daemon.store.close()


def test_a_resend_by_webhook_is_a_snapshot_too(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon, clock = clocked(tmp_path, slack)
    clock.now = T0 + timedelta(minutes=10)
    assert daemon.ingest([FIRST]) == 1
    clock.now = T0 + timedelta(minutes=45)
    assert daemon.ingest([GROWN]) == 0
    daemon.deliverer.drain()
    parent, grown = slack.messages
    assert grown.thread_ts == parent.ts
    daemon.store.close()


def test_the_follow_ups_stand_in_post_is_not_replayed(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon, clock = clocked(tmp_path, slack)
    poll_at(daemon, clock, 10, FIRST)
    poll_at(daemon, clock, 45, GROWN)
    assert [p.id for p in daemon.store.posts_since(T0 - timedelta(days=1))] == ["bluesky:p1"]
    with sqlite3.connect(tmp_path / "listener.db") as conn:
        stand_in = conn.execute("SELECT id FROM posts WHERE source = ?", (REACH_SOURCE,)).fetchall()
    assert stand_in == [("bluesky:p1#reach1",)]
    daemon.store.close()


def test_a_pruned_post_takes_its_snapshots_with_it(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon, clock = clocked(tmp_path, slack)
    quiet = counted(post("bluesky:q1", "lekker weer vandaag, iedereen naar buiten"), likes=1)
    poll_at(daemon, clock, 10, quiet, FIRST)
    poll_at(daemon, clock, 20, counted(quiet, likes=50), GROWN)
    clock.now = T0 + timedelta(days=400)
    assert daemon.prune_posts() == 1  # the alerted post stays, with its snapshots
    assert daemon.store.snapshots("bluesky:q1") == []
    assert len(daemon.store.snapshots("bluesky:p1")) == 2
    daemon.store.close()
