"""Spikes: `size` posts about one branch (or topic) within `window` raise one incident; later
posts of the spike go into its thread. Rules first, then the daemon on a real SQLite file with
slack-sdk against the Slack-wire server, and the real `listener` process end to end."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from listener.alert import AlertMessage
from listener.config.loader import ConfigError
from listener.conversation import Recent
from listener.spikes import distinctive_words, find_spike, topic_keys
from tests.support.alerts import make_alert
from tests.support.configs import write_setup
from tests.support.slackwire import SlackWireServer
from tests.support.threads import TOKEN, feed, make_daemon, post

LEUSDEN = [
    "de bieb in Leusden is dicht, stond voor niks voor de deur",
    "Waarom is de bibliotheek in Leusden vandaag gesloten? Geen bordje niks",
    "de bieb Leusden dicht en niemand neemt de telefoon op",
    "Alweer dicht, de bieb in Leusden. Mijn kinderen balen enorm",
    "De bibliotheek van Leusden zit op slot, wat is er aan de hand?",
    "Ook vanmiddag is de bieb in Leusden nog steeds dicht",
]


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


def top_level(slack: SlackWireServer) -> list:  # type: ignore[type-arg]
    return [m for m in slack.messages if m.thread_ts is None]


# --- the rules -----------------------------------------------------------------------------------


def _alert(alert_id: int, text: str, minutes: float, branch: str | None = "leusden") -> Recent:
    message = make_alert(text, alert_id=alert_id)
    message = replace(
        message, post=post(f"t:{alert_id}", text, minutes), branch_id=branch, labels=["outage"]
    )
    return Recent(alert_id, message)


def test_a_branch_is_the_topic_and_without_one_labels_and_rare_words_are() -> None:
    known = _alert(1, "de bieb in Vathorst is dicht", 0).message
    assert topic_keys(known) == ["branch:leusden"]
    unknown = replace(known, branch_id=None)
    assert topic_keys(unknown, ignore={"eemland"}) == ["label:outage", "word:vathorst"]
    assert distinctive_words("Bieb Eemland: stroomstoring in Vathorst!", {"eemland"}) == [
        "stroomstoring",
        "vathorst",
    ]


def test_the_post_that_reaches_the_size_within_the_window_completes_a_spike() -> None:
    recent = [_alert(i, LEUSDEN[i], i * 10) for i in range(4)]
    fifth: AlertMessage = _alert(5, LEUSDEN[4], 45).message
    spike = find_spike(fifth, recent, timedelta(hours=1), 5)
    assert spike is not None and spike.key == "branch:leusden"
    assert [r.alert_id for r in spike.members] == [0, 1, 2, 3]
    assert find_spike(fifth, recent[1:], timedelta(hours=1), 5) is None, "below the size"
    assert find_spike(fifth, recent, timedelta(minutes=30), 5) is None, "outside the window"
    other = replace(fifth, branch_id="amersfoort")
    assert find_spike(other, recent, timedelta(hours=1), 5) is None, "another branch"


def test_spikes_settings_are_read_from_config_toml(tmp_path: Path) -> None:
    from listener.config import load_config

    config = load_config(
        write_setup(tmp_path, extra_main='[spikes]\nwindow = "30m"\nsize = 3\nenabled = true\n')
    )
    assert (config.main.spikes.window, config.main.spikes.size) == (timedelta(minutes=30), 3)
    with pytest.raises(ConfigError, match=r"spikes\.sise"):
        load_config(write_setup(tmp_path, extra_main="[spikes]\nsise = 3\n"))


# --- the daemon ----------------------------------------------------------------------------------


def test_five_complaints_about_one_branch_in_an_hour_raise_one_incident_and_the_sixth_threads(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack)
    posts = [post(f"bluesky:l{i}", text, i * 10, handle=f"user{i}") for i, text in
             enumerate(LEUSDEN)]  # fmt: skip
    feed(daemon, posts[:3], posts[3:5], posts[5:])
    messages = slack.messages
    assert len(messages) == 6
    first_four, incident, sixth = messages[:4], messages[4], messages[5]
    assert all(m.thread_ts is None for m in first_four)
    assert "INCIDENT" in incident.text and "5 posts about Bibliotheek Leusden within 1h" in (
        incident.text
    )
    flat = json.dumps(incident.blocks, ensure_ascii=False)
    for p in posts[:5]:
        assert p.id in flat and p.url in flat, "the incident names every post with its link"
    assert incident.thread_ts is None
    assert sixth.thread_ts == incident.ts, "the sixth post goes into the incident's thread"
    assert "one more post of incident #" in sixth.text

    [row] = daemon.store.incidents()
    assert (row.key, row.level) == ("branch:leusden", "high")
    kinds = sorted(link.kind for link in daemon.store.links())
    assert kinds == ["member"] * 4 + ["spike"]
    with sqlite3.connect(tmp_path / "listener.db") as conn:
        level = conn.execute("SELECT level FROM alerts WHERE id = ?", (row.alert_id,)).fetchone()
    assert level[0] in ("high", "critical")
    daemon.store.close()


def test_below_the_size_there_is_no_incident(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon = make_daemon(tmp_path, slack)
    feed(daemon, [post(f"bluesky:l{i}", t, i * 10) for i, t in enumerate(LEUSDEN[:4])])
    assert len(top_level(slack)) == 4
    assert not any("INCIDENT" in (m.text or "") for m in slack.messages)
    assert daemon.store.incidents() == []
    daemon.store.close()


def test_outside_the_window_there_is_no_incident(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon = make_daemon(tmp_path, slack)
    feed(daemon, [post(f"bluesky:l{i}", t, i * 20) for i, t in enumerate(LEUSDEN[:5])])
    assert len(top_level(slack)) == 5 and daemon.store.incidents() == []
    daemon.store.close()


def test_spikes_can_be_turned_off_and_sized(tmp_path: Path, slack: SlackWireServer) -> None:
    off = make_daemon(tmp_path / "off", slack, spikes="enabled = false")
    feed(off, [post(f"bluesky:l{i}", t, i) for i, t in enumerate(LEUSDEN)])
    assert off.store.incidents() == []
    off.store.close()
    small = make_daemon(tmp_path / "small", slack, spikes='size = 2\nwindow = "5m"')
    feed(small, [post(f"bluesky:s{i}", t, i) for i, t in enumerate(LEUSDEN[:3])])
    [row] = small.store.incidents()
    assert row.key == "branch:leusden"
    small.store.close()


def test_posts_of_unknown_branch_sharing_a_rare_word_make_a_spike(
    tmp_path: Path, slack: SlackWireServer
) -> None:
    daemon = make_daemon(tmp_path, slack, spikes="size = 3")
    texts = [
        "Bieb Eemland in Vathorst heeft geen koffie meer",
        "Bibliotheek Eemland Vathorst: waar zijn de kranten gebleven",
        "Bieb Eemland, is de leestafel in Vathorst verhuisd?",
    ]
    feed(daemon, [post(f"bluesky:v{i}", t, i * 5) for i, t in enumerate(texts)])
    [row] = daemon.store.incidents()
    assert row.key == "word:vathorst"
    assert "'vathorst'" in slack.messages[-1].text
    daemon.store.close()


def test_incident_text_from_posts_stays_inert(tmp_path: Path, slack: SlackWireServer) -> None:
    daemon = make_daemon(tmp_path, slack, spikes="size = 2")
    evil = "<!channel> @here de bieb in Leusden is dicht <https://evil.example|klik hier>"
    feed(daemon, [post("bluesky:e0", LEUSDEN[0]), post("bluesky:e1", evil, 1)])
    incident = slack.messages[-1]
    assert "INCIDENT" in incident.text
    assert "<!channel>" not in incident.text
    for block in incident.blocks or []:
        text = block.get("text") or {}
        if "<!channel>" in str(text.get("text")):
            assert text["type"] == "plain_text"
    daemon.store.close()


# --- the real process ----------------------------------------------------------------------------


def test_end_to_end_a_spike_and_a_reply_arrive_as_one_incident_and_threads(
    tmp_path: Path,
) -> None:
    from tests.support.smtp import SmtpSink
    from tests.test_end_to_end import TOKEN as E2E_TOKEN
    from tests.test_end_to_end import run_once, write_config

    lines = [post(f"bluesky:l{i}", text, i * 10, handle=f"user{i}") for i, text in
             enumerate(LEUSDEN)]  # fmt: skip
    lines.append(post("bluesky:r1", "klopt, ik stond er ook", 55, reply_to="bluesky:l0"))
    with SlackWireServer(require_token=E2E_TOKEN) as slack, SmtpSink() as smtp:
        config = write_config(tmp_path, slack, smtp)
        (tmp_path / "posts.jsonl").write_text(
            "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in lines)
        )
        run_once(config)
        run_once(config)  # a second run over the same file sends nothing new
        messages = slack.messages
    by_ts = {m.ts: m for m in messages}
    incidents = [m for m in messages if "INCIDENT" in (m.text or "")]
    assert len(incidents) == 1 and incidents[0].thread_ts is None
    threaded = [m for m in messages if m.thread_ts is not None]
    assert {by_ts[m.thread_ts].metadata["event_payload"]["alert_id"] for m in threaded} == {
        incidents[0].metadata["event_payload"]["alert_id"],
        messages[0].metadata["event_payload"]["alert_id"],
    }, "the sixth complaint threads under the incident, the reply under the first complaint"
    assert len(messages) == 7
    ids = [m.metadata["event_payload"]["alert_id"] for m in messages]
    assert len(ids) == len(set(ids)), "nothing doubled"


def test_an_incident_and_a_follow_up_are_routed_like_any_alert(tmp_path: Path) -> None:
    from listener.config import load_config
    from listener.daemon import build_grouper

    receivers = "".join(
        f'[[receivers]]\nid = "{r}"\ntype = "console"\n' for r in ("leusden-team", "rest")
    )
    config = write_setup(tmp_path, extra_receivers=receivers)
    routes = tmp_path / "alerts" / "routes.toml"
    routes.write_text(
        'default = "rest"  # top-level keys come before the tables\n'
        + routes.read_text().replace(
            '[[routes]]\nmin_level = "low"\nreceivers = ["console"]',
            '[[routes]]\nbranches = ["leusden"]\nlabels = ["outage"]\nreceivers = ["leusden-team"]',
        ),
        encoding="utf-8",
    )
    grouper = build_grouper(load_config(config), {"console", "leusden-team", "rest"})
    assert grouper.route is not None
    outage = replace(make_alert(), branch_id="leusden", labels=["outage"])
    assert grouper.route(outage, "high") == ["leusden-team"]
    assert grouper.route(replace(outage, branch_id=None), "high") == ["rest"]  # the default
