"""Digests in Slack: `digest_blocks` (title, when held, the oldest 45 alerts as plain_text with
'Open' buttons, the rest counted per level) sent by the bot notifier with digest metadata, and
found again by its idempotency key. Hostile post text stays inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from listener.alert import AlertMessage, Digest
from listener.notify.slack import SlackNotifier, digest_blocks, digest_fallback_text
from tests.support.alerts import make_alert
from tests.support.slackwire import SlackWireServer

TOKEN = "xoxb-1111-2222-secretsecretsecret-abcd"
HOSTILE = "<!channel> @here <@U123> <https://x|y> *bold* @everyone & co"
OPENED = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
DUE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


def notifier(slack: SlackWireServer) -> SlackNotifier:
    return SlackNotifier(TOKEN, "#webcare", slack.base_url, 5.0, receiver_id="webcare")


def alert(index: int, level: str = "normal", **more: Any) -> AlertMessage:
    url = more.pop("url", f"https://social.example/@jan/{index}")
    made = make_alert(more.pop("text", f"post {index}"), url=url, alert_id=100 + index, **more)
    return replace(made, level=level)


def digest(alerts: list[AlertMessage], **more: Any) -> Digest:
    fields: dict[str, Any] = {
        "digest_id": 7,
        "receiver": "webcare",
        "route": "routes.toml#2",
        "reason": "digest",
        "opened_at": OPENED.isoformat(),
        "due_at": DUE.isoformat(),
        "alerts": alerts,
    }
    return Digest(**(fields | more))


def date_token(moment: datetime) -> str:
    utc = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{utc}>"


def text_objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("plain_text", "mrkdwn") and "text" in node else []
        return found + [t for value in node.values() for t in text_objects(value)]
    if isinstance(node, list):
        return [t for value in node for t in text_objects(value)]
    return []


def assert_inert_mrkdwn(text: str) -> None:
    stripped = re.sub(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", "", text)
    assert "<" not in stripped and ">" not in stripped, text
    assert not re.search(r"@(here|channel|everyone)", stripped), text
    assert "*bold*" not in text, text


def test_a_digest_of_three_alerts_is_one_message_oldest_first(slack: SlackWireServer) -> None:
    alerts = [
        alert(0, "critical"),
        alert(1, "high", url="javascript:alert(1)"),
        alert(2, "normal", name=None, handle=None, followers=None, location=None),
    ]

    ref = notifier(slack).send_digest(digest(alerts))

    [message] = slack.wait_for(1)
    assert ref == f"C0TEST:{message.ts}"
    assert message.text == "Digest: 3 alerts (1 critical, 1 high)"
    assert message.metadata == {
        "event_type": "listener_digest",
        "event_payload": {"digest_id": 7, "key": "digest-7:webcare"},
    }
    assert message.payload["unfurl_links"] is False
    header, held, *sections = message.blocks or []
    assert header["text"]["text"] == "🗞 Digest: 3 alerts (1 critical, 1 high)"
    assert held["elements"] == [
        {"type": "mrkdwn", "text": f"Held from {date_token(OPENED)} to {date_token(DUE)}"},
        {"type": "plain_text", "text": "route routes.toml#2", "emoji": False},
    ]
    assert [s["type"] for s in sections] == ["section"] * 3
    assert [s["text"] for s in sections] == [
        {
            "type": "plain_text",
            "emoji": False,
            "text": "🔴 CRITICAL · Bibliotheek Eemland / Vathorst\npost 0\n"
            "— Jan Jansen (@jan) · 1,234 followers · 📍 Amersfoort",
        },
        {
            "type": "plain_text",
            "emoji": False,
            "text": "🟠 HIGH · Bibliotheek Eemland / Vathorst\npost 1\n"
            "— Jan Jansen (@jan) · 1,234 followers · 📍 Amersfoort",
        },
        {
            "type": "plain_text",
            "emoji": False,
            "text": "🟡 NORMAL · Bibliotheek Eemland / Vathorst\npost 2",
        },
    ]
    first, second, third = (s.get("accessory") for s in sections)
    assert first is not None and third is not None
    assert (first["type"], first["text"]["text"], first["url"], first["action_id"]) == (
        "button",
        "Open",
        "https://social.example/@jan/0",
        "open_post_0",
    )
    assert second is None  # not a link Slack may open
    assert third["action_id"] == "open_post_2"
    assert "acknowledge" not in str(message.blocks)  # a digest has no per-alert controls


def test_a_digest_is_found_by_its_key_after_a_lost_answer(slack: SlackWireServer) -> None:
    sender = notifier(slack)
    slack.drop_answer_next(1)
    with pytest.raises(Exception, match="cannot reach"):
        sender.send_digest(digest([alert(0)]))
    [message] = slack.wait_for(1)

    assert sender.find_sent_digest(digest([alert(0)])) == f"C0TEST:{message.ts}"
    assert sender.find_sent_digest(digest([alert(0)], digest_id=8)) is None
    assert sender.find_sent(alert(0)) is None  # an alert's key is not a digest's


def test_a_digest_of_120_alerts_shows_the_oldest_45_and_counts_the_rest(
    slack: SlackWireServer,
) -> None:
    levels = ["critical"] * 5 + ["high"] * 40 + ["high"] * 25 + ["normal"] * 45 + ["low"] * 5
    alerts = [alert(i, level) for i, level in enumerate(levels)]

    notifier(slack).send_digest(digest(alerts, reason="quiet"))

    [message] = slack.wait_for(1)
    blocks = message.blocks or []
    assert len(blocks) <= 50
    assert blocks[0]["text"]["text"] == (
        "🗞 Held during quiet hours: 120 alerts (5 critical, 65 high)"
    )
    sections = [b for b in blocks if b["type"] == "section"]
    assert [s["text"]["text"].split("\n")[1] for s in sections] == [f"post {i}" for i in range(45)]
    assert len({s["accessory"]["action_id"] for s in sections}) == 45
    assert blocks[-1] == {
        "type": "context",
        "elements": [
            {
                "type": "plain_text",
                "text": "and 75 more alerts: 25 high, 45 normal, 5 low",
                "emoji": False,
            }
        ],
    }


def test_one_more_alert_than_fits_is_counted_in_the_singular() -> None:
    blocks = digest_blocks(digest([alert(i) for i in range(46)]))
    assert len(blocks) == 48
    assert blocks[-1].to_dict()["elements"][0]["text"] == "and 1 more alert: 1 normal"


def test_hostile_text_in_a_digest_never_reaches_mrkdwn_unescaped(slack: SlackWireServer) -> None:
    hostile = replace(
        alert(0, "high", text=f"{HOSTILE} " * 100, name=HOSTILE, handle=HOSTILE, location=HOSTILE),
        branch_name=HOSTILE,
    )
    evil = digest([hostile, alert(1, text=HOSTILE)], route=HOSTILE, opened_at=HOSTILE)

    notifier(slack).send_digest(evil)

    [message] = slack.wait_for(1)
    assert message.text == digest_fallback_text(evil)
    found = text_objects(message.blocks)
    mrkdwn = [t["text"] for t in found if t["type"] == "mrkdwn"] + [message.text or ""]
    for text in mrkdwn:
        assert_inert_mrkdwn(text)
    plain = [t for t in found if t["type"] == "plain_text" and HOSTILE in t["text"]]
    assert len(plain) == 4 and all(t["emoji"] is False for t in plain)  # 2 alerts, held, route
    assert all(len(t["text"]) <= 3000 for t in found)
    first = plain[2]["text"].split("\n")  # the first alert (after held and route)
    assert len(first[1]) <= 500 and first[1].endswith("…")  # the post is cut short
