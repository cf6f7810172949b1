"""SlackNotifier against a local Slack Web API stand-in: blocks, feedback controls, error
classification, escaping; find_sent after a lost answer, the Acknowledge button, progress in
the header and update_parent."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block

from listener.alert import (
    MAX_BRANCH_CHOICES,
    AlertMessage,
    BranchChoice,
    FollowUp,
    Incident,
    IncidentMember,
    Progress,
    branch_choices,
)
from listener.config.model import Branch, MainFile, Organisation, Receiver, SlackSettings
from listener.notify import NotifierUnavailable, TransportError, build_notifier
from listener.notify.slack import SlackNotifier, build_blocks, clip, judged_line
from listener.store import FeedbackRow
from tests.support.alerts import TEXT
from tests.support.alerts import make_alert as support_alert
from tests.support.slackwire import SlackWireServer

TOKEN = "xoxb-1111-2222-secretsecretsecret-abcd"
HOSTILE = "<!channel> @here <@U123> <https://evil.example|click> *bold* @everyone & co"


def make_alert(
    text: str = TEXT,
    url: str | None = "https://social.example/@jan/1",
    evidence: list[str] | None = None,
    alert_id: int = 42,
    **author: Any,
) -> AlertMessage:
    return support_alert(
        text, url=url, evidence=evidence, distance_km=None, alert_id=alert_id, **author
    )


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


def notifier_for(base_url: str, timeout: float = 5.0, channel: str = "#webcare") -> SlackNotifier:
    return SlackNotifier(
        token=TOKEN, channel=channel, base_url=base_url, timeout=timeout, receiver_id="webcare"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def texts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every text object in the blocks (section/header text, context elements, buttons)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def assert_inert_mrkdwn(text: str) -> None:
    """No mention, link or broadcast can form: only our own <!date^…> token may use < >."""
    stripped = re.sub(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", "", text)
    assert "<" not in stripped and ">" not in stripped, text
    assert not re.search(r"@(here|channel|everyone)", stripped), text


# --- delivery ----------------------------------------------------------------------------------


def test_a_normal_alert_arrives_with_blocks_and_metadata(slack: SlackWireServer) -> None:
    reference = notifier_for(slack.base_url).send(make_alert())

    [message] = slack.wait_for(1)
    assert reference == f"C0TEST:{message.ts}"
    assert message.channel == "#webcare"
    assert message.token == TOKEN
    assert message.metadata == {
        "event_type": "listener_alert",
        "event_payload": {"alert_id": 42, "key": "alert-42:webcare"},
    }
    assert message.payload["unfurl_links"] is False
    assert message.payload["unfurl_media"] is False
    assert message.text is not None and message.text.startswith(
        "🔴 CRITICAL · Bibliotheek Eemland / Vathorst: De bieb in Vathorst is alweer dicht?!"
    )

    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "context", "section", "actions"]
    header, post, context, why, actions = blocks
    assert header["text"]["text"] == "🔴 CRITICAL · Bibliotheek Eemland / Vathorst"
    assert post["text"] == {
        "type": "plain_text",
        "text": "De bieb in Vathorst is alweer dicht?!",
        "emoji": False,
    }
    author, facts = context["elements"]
    assert author["type"] == "plain_text"
    assert author["text"] == "Jan Jansen (@jan) · 1,234 followers · 📍 Amersfoort"
    assert facts["text"].startswith("mastodon · <!date^1714564980^")
    assert why["text"]["type"] == "mrkdwn"
    assert "'de bieb' + 'Vathorst' (3.1 km)" in why["text"]["text"]
    assert "closure complaint" in why["text"]["text"]
    button, ack = actions["elements"]
    assert button["text"]["text"] == "Open post"
    assert button["url"] == "https://social.example/@jan/1"
    assert (ack["text"]["text"], ack["action_id"], ack["value"], ack["style"]) == (
        "Acknowledge",
        "acknowledge",
        "42",
        "primary",
    )


def test_successive_alerts_get_increasing_references(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url)

    first, second = notifier.send(make_alert()), notifier.send(make_alert())

    assert first is not None and second is not None and first < second


def test_it_retries_after_429_with_retry_after_from_the_header(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url)
    slack.fail_next(1, status=429, retry_after=7)

    with pytest.raises(TransportError) as caught:
        notifier.send(make_alert())
    assert caught.value.permanent is False
    assert caught.value.retry_after == 7.0
    assert slack.messages == []

    assert notifier.send(make_alert()) is not None  # the next try goes through
    assert len(slack.messages) == 1


@pytest.mark.parametrize(
    ("script", "permanent", "retry_after", "reason"),
    [
        (("fail_next", 429, None), False, 30.0, "ratelimited"),  # no header: default 30s
        (("error_next", "ratelimited"), False, 30.0, "ratelimited"),
        (("error_next", "channel_not_found"), True, None, "channel_not_found"),
        (("error_next", "not_in_channel"), True, None, "not_in_channel"),
        (("error_next", "invalid_auth"), True, None, "invalid_auth"),
        (("error_next", "token_revoked"), True, None, "token_revoked"),
        (("error_next", "invalid_blocks"), True, None, "invalid_blocks"),
        (("error_next", "internal_error"), False, None, "internal_error"),
        (("error_next", "service_unavailable"), False, None, "service_unavailable"),
        (("status_next", 503), False, None, "HTTP 503"),
        (("status_next", 500), False, None, "HTTP 500"),
        (("status_next", 400), True, None, "HTTP 400"),
        (("status_next", 403), True, None, "HTTP 403"),
    ],
)
def test_each_failure_is_classified_transient_or_permanent(
    slack: SlackWireServer,
    script: tuple[Any, ...],
    permanent: bool,
    retry_after: float | None,
    reason: str,
) -> None:
    action, argument, *rest = script
    if action == "fail_next":
        slack.fail_next(1, status=argument, retry_after=rest[0])
    else:
        getattr(slack, action)(1, argument)

    with pytest.raises(TransportError) as caught:
        notifier_for(slack.base_url).send(make_alert())

    assert caught.value.permanent is permanent
    assert caught.value.retry_after == retry_after
    assert reason in caught.value.message
    assert "#webcare" in caught.value.message
    assert slack.messages == []


def test_a_wrong_token_is_permanent(slack: SlackWireServer) -> None:
    notifier = SlackNotifier("xoxb-wrong-token-000000", "#webcare", slack.base_url, 5)

    with pytest.raises(TransportError, match="invalid_auth") as caught:
        notifier.send(make_alert())

    assert caught.value.permanent is True


def test_a_server_that_is_down_is_transient() -> None:
    notifier = notifier_for(f"http://127.0.0.1:{closed_port()}/api/")

    with pytest.raises(TransportError, match="cannot reach") as caught:
        notifier.send(make_alert())

    assert caught.value.permanent is False
    assert caught.value.retry_after is None


def test_a_server_that_answers_too_late_is_transient(slack: SlackWireServer) -> None:
    slack.delay = 1.0

    with pytest.raises(TransportError, match="timed out") as caught:
        notifier_for(slack.base_url, timeout=0.2).send(make_alert())

    assert caught.value.permanent is False


# --- untrusted text ----------------------------------------------------------------------------


def test_hostile_post_text_author_and_location_arrive_inert(slack: SlackWireServer) -> None:
    alert = make_alert(
        text=HOSTILE,
        name=HOSTILE,
        handle="<@U123>",
        location=HOSTILE,
        evidence=[f"matched {HOSTILE}"],
    )

    notifier_for(slack.base_url).send(alert)

    [message] = slack.wait_for(1)
    assert message.text is not None
    assert_inert_mrkdwn(message.text)
    assert "&lt;!channel&gt; @\u200bhere &lt;@U123&gt; &lt;https://evil.example|click&gt;" in (
        message.text
    )
    assert "&amp; co" in message.text
    for obj in texts(message.blocks or []):
        if obj["type"] == "mrkdwn":
            assert_inert_mrkdwn(obj["text"])
        elif HOSTILE in obj["text"]:
            assert obj.get("emoji") is False  # plain_text: never parsed, shown verbatim
    post_block = (message.blocks or [])[1]
    assert post_block["text"] == {"type": "plain_text", "text": HOSTILE, "emoji": False}


def test_a_very_long_post_is_cut_to_fit_slack_limits(slack: SlackWireServer) -> None:
    alert = make_alert(text="lang verhaal " * 1000, evidence=["x" * 5000], name="n" * 3000)

    notifier_for(slack.base_url).send(alert)

    [message] = slack.wait_for(1)
    blocks = message.blocks or []
    assert len(blocks[1]["text"]["text"]) <= 3000
    assert blocks[1]["text"]["text"].endswith("…")
    assert all(len(obj["text"]) <= 3000 for obj in texts(blocks))


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://x.example/" + "a" * 3100])
def test_a_post_url_that_cannot_be_a_button_is_shown_as_text(
    slack: SlackWireServer, url: str
) -> None:
    notifier_for(slack.base_url).send(make_alert(url=url))

    [message] = slack.wait_for(1)
    blocks = message.blocks or []
    assert [b["type"] for b in blocks][-2:] == ["context", "actions"]
    assert [e["action_id"] for e in actions_of(blocks)] == ["acknowledge"]  # no 'Open post'


# --- secrets -----------------------------------------------------------------------------------


def test_the_token_never_appears_in_repr_errors_or_logs(
    slack: SlackWireServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = notifier_for(slack.base_url)
    assert TOKEN not in repr(notifier) and TOKEN not in str(notifier)
    assert "xoxb-…abcd" in repr(notifier)

    errors: list[TransportError] = []
    slack.error_next(1, "invalid_auth")
    slack.fail_next(1, status=429)
    slack.status_next(1, 500)
    for _ in range(3):
        with pytest.raises(TransportError) as caught:
            notifier.send(make_alert())
        errors.append(caught.value)
    with pytest.raises(TransportError) as caught:
        notifier_for(f"http://127.0.0.1:{closed_port()}/api/").send(make_alert())
    errors.append(caught.value)

    for error in errors:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert TOKEN not in caplog.text


# --- build_notifier ----------------------------------------------------------------------------


RECEIVER = Receiver(id="webcare", type="slack", channel="#webcare")


@pytest.mark.parametrize(
    ("main", "env", "expected"),
    [
        (MainFile(), {"SLACK_BOT_TOKEN": TOKEN}, "config.toml has no [slack] section"),
        (
            MainFile(slack=SlackSettings()),
            {},
            "slack receiver 'webcare' inactive: environment variable SLACK_BOT_TOKEN is not set",
        ),
        (
            MainFile(slack=SlackSettings()),
            {"SLACK_BOT_TOKEN": "  "},
            "environment variable SLACK_BOT_TOKEN is empty",
        ),
        (
            MainFile(slack=SlackSettings(token_env="EEMLAND_SLACK")),
            {"SLACK_BOT_TOKEN": TOKEN},
            "environment variable EEMLAND_SLACK is not set",
        ),
    ],
)
def test_build_notifier_says_which_setting_or_variable_is_missing(
    main: MainFile, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(NotifierUnavailable) as caught:
        build_notifier(RECEIVER, main, Path("alerts/templates"), env=env)

    assert expected in str(caught.value)


def test_build_notifier_gives_a_working_slack_notifier(slack: SlackWireServer) -> None:
    main = MainFile(slack=SlackSettings(base_url=slack.base_url, timeout="3s"))

    notifier = build_notifier(
        RECEIVER, main, Path("alerts/templates"), env={"SLACK_BOT_TOKEN": TOKEN}
    )

    assert isinstance(notifier, SlackNotifier)
    assert notifier.send(make_alert()) is not None
    assert slack.messages[0].token == TOKEN


def test_a_handle_that_already_starts_with_at_is_shown_with_one() -> None:
    from listener.notify.slack import build_blocks, fallback_text

    alert = make_alert(handle="@joost@mastodon.nl")
    rendered = fallback_text(alert) + str([b.to_dict() for b in build_blocks(alert)])
    assert "@joost@mastodon.nl" in rendered
    assert "@@" not in rendered


# --- feedback controls -------------------------------------------------------------------------

CHOICES = [BranchChoice("amersfoort", "Eemhuis"), BranchChoice("leusden", "Bibliotheek Leusden")]


def with_choices(alert: AlertMessage, choices: list[BranchChoice] | None = CHOICES) -> AlertMessage:
    return replace(alert, branch_choices=choices)


def judged(verdict: str, by: str = "U0CLICK", via: str = "slack", **more: Any) -> FeedbackRow:
    return FeedbackRow(
        alert_id=42,
        post_id="p1",
        org="eemland",
        search="eemland-brand",
        verdict=verdict,
        by=by,
        via=via,
        created_at=datetime(2024, 5, 1, 13, 0, tzinfo=UTC),
        **more,
    )


def actions_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [actions] = [b for b in blocks if b["type"] == "actions"]
    return list(actions["elements"])


def test_an_alert_carries_not_relevant_and_wrong_branch_controls(slack: SlackWireServer) -> None:
    notifier_for(slack.base_url).send(with_choices(make_alert()))

    [message] = slack.wait_for(1)
    open_post, ack, not_relevant, wrong_branch = actions_of(message.blocks or [])
    assert (open_post["action_id"], ack["action_id"]) == ("open_post", "acknowledge")
    assert (not_relevant["type"], not_relevant["action_id"], not_relevant["value"]) == (
        "button",
        "feedback_not_relevant",
        "42",
    )
    assert not_relevant["text"]["text"] == "Not relevant"
    assert (wrong_branch["type"], wrong_branch["action_id"]) == (
        "static_select",
        "feedback_wrong_branch",
    )
    assert wrong_branch["placeholder"]["text"] == "Wrong branch…"
    assert "initial_option" not in wrong_branch
    assert [(o["text"]["text"], o["value"]) for o in wrong_branch["options"]] == [
        ("No particular branch", "42:"),
        ("Eemhuis", "42:amersfoort"),
        ("Bibliotheek Leusden", "42:leusden"),
    ]


def test_an_alert_without_a_branch_offers_every_branch_and_not_no_branch() -> None:
    alert = with_choices(replace(make_alert(), branch_id=None, branch_name=None))

    *_, wrong_branch = actions_of([b.to_dict() for b in build_blocks(alert)])

    assert [o["value"] for o in wrong_branch["options"]] == ["42:amersfoort", "42:leusden"]


def test_an_organisation_with_one_branch_gets_only_the_not_relevant_button() -> None:
    alert = with_choices(replace(make_alert(), branch_id=None, branch_name=None), [])
    ids = [e["action_id"] for e in actions_of([b.to_dict() for b in build_blocks(alert)])]
    assert ids == ["open_post", "acknowledge", "feedback_not_relevant"]


def test_alerts_that_take_no_feedback_have_no_controls() -> None:
    """Alerts about listener itself, and alerts stored before feedback existed (no field)."""
    stored = json.loads(make_alert().to_json())
    del stored["branch_choices"]
    old = AlertMessage.from_json(json.dumps(stored))
    assert old.branch_choices is None

    ids = [e["action_id"] for e in actions_of([b.to_dict() for b in build_blocks(old)])]
    assert ids == ["open_post", "acknowledge"]


def test_branch_choices_survive_the_outbox_json() -> None:
    alert = with_choices(make_alert())
    assert AlertMessage.from_json(alert.to_json()) == alert


def test_the_controls_sit_beside_no_button_when_the_url_cannot_be_one(
    slack: SlackWireServer,
) -> None:
    notifier_for(slack.base_url).send(with_choices(make_alert(url="javascript:alert(1)")))

    [message] = slack.wait_for(1)
    blocks = message.blocks or []
    assert [b["type"] for b in blocks][-2:] == ["context", "actions"]
    assert [e["action_id"] for e in actions_of(blocks)] == [
        "acknowledge",
        "feedback_not_relevant",
        "feedback_wrong_branch",
    ]


def test_a_hundred_and_fifty_branches_become_the_99_nearest_plus_no_branch(
    slack: SlackWireServer,
) -> None:
    """Slack allows 100 options: the branches nearest the alerted one are the likely mix-ups."""
    branches = [
        Branch(id=f"b{i:03d}", name=f"Branch {i:03d}", lat=52.0 + i * 0.01, lon=5.0)
        for i in range(150)
    ]
    org = Organisation(id="big", name="Big Library", branches=branches)
    home = branches[100]

    choices = branch_choices(org, home)

    assert len(choices) == MAX_BRANCH_CHOICES == 99
    kept = {c.id for c in choices}
    assert home.id not in kept
    assert kept == {f"b{i:03d}" for i in range(50, 150) if i != 100}  # 50 below, 49 above
    assert [c.name for c in choices] == sorted(c.name for c in choices)
    notifier_for(slack.base_url).send(with_choices(make_alert(), choices))
    [message] = slack.wait_for(1)
    select = actions_of(message.blocks or [])[-1]
    assert len(select["options"]) == 100


def test_a_judged_alert_says_who_marked_it_and_its_controls_show_the_choice() -> None:
    alert = with_choices(make_alert())

    blocks = [b.to_dict() for b in build_blocks(alert, judged("not-relevant"))]
    *_, button, select = actions_of(blocks)
    assert (button["text"]["text"], button["action_id"]) == (
        "Relevant after all",
        "feedback_relevant",
    )
    assert "initial_option" not in select
    assert blocks[-1]["elements"][0]["text"] == "Marked not relevant by <@U0CLICK>"

    blocks = [b.to_dict() for b in build_blocks(alert, judged("wrong-branch", branch="leusden"))]
    *_, button, select = actions_of(blocks)
    assert button["action_id"] == "feedback_not_relevant"
    assert select["initial_option"]["value"] == "42:leusden"
    assert blocks[-1]["elements"][0]["text"] == (
        "Marked wrong branch by <@U0CLICK>: it is about Bibliotheek Leusden"
    )

    blocks = [b.to_dict() for b in build_blocks(alert, judged("wrong-branch"))]
    assert actions_of(blocks)[-1]["initial_option"]["value"] == "42:"
    assert blocks[-1]["elements"][0]["text"].endswith("the organisation, no particular branch")

    blocks = [b.to_dict() for b in build_blocks(alert, judged("relevant", by="jan", via="cli"))]
    assert blocks[-1]["elements"][0]["text"] == "Marked relevant by jan"


def test_hostile_branch_names_and_names_stay_inert_in_the_controls(
    slack: SlackWireServer,
) -> None:
    hostile = [BranchChoice("evil", HOSTILE), BranchChoice("leusden", "Leusden")]
    alert = with_choices(make_alert(text=HOSTILE, name=HOSTILE), hostile)

    notifier_for(slack.base_url).send(alert)
    [message] = slack.wait_for(1)
    select = actions_of(message.blocks or [])[-1]
    [evil] = [o for o in select["options"] if o["value"] == "42:evil"]
    assert evil["text"]["type"] == "plain_text"
    assert evil["text"]["emoji"] is False
    assert evil["text"]["text"] == clip(HOSTILE, 75)  # shown as written, cut to Slack's limit

    rendered = build_blocks(alert, judged("wrong-branch", branch="evil", by=HOSTILE, via="cli"))
    texts_ = texts([b.to_dict() for b in rendered])
    for obj in texts_:
        if obj["type"] == "mrkdwn":
            assert_inert_mrkdwn(obj["text"])
    line = rendered[-1].to_dict()["elements"][0]["text"]
    assert line.startswith("Marked wrong branch by &lt;!channel&gt; @\u200bhere &lt;@U123&gt;")
    # a 'Slack user id' that is not one cannot mention anyone either
    line = judged_line(alert, judged("not-relevant", by="U1> <!channel", via="slack"))
    assert_inert_mrkdwn(line)


# --- find_sent: was it posted after all? --------------------------------------------------------


def posted(slack: SlackWireServer) -> int:
    return len(slack.messages)


def deliver_once(notifier: SlackNotifier, alert: AlertMessage) -> str | None:
    """What the outbox does after an attempt whose outcome it does not know."""
    return notifier.find_sent(alert) or notifier.send(alert)


def test_after_a_lost_answer_find_sent_finds_the_message_and_nothing_is_posted_twice(
    slack: SlackWireServer,
) -> None:
    notifier = notifier_for(slack.base_url)
    notifier.send(make_alert(alert_id=41))
    slack.drop_answer_next(1)

    with pytest.raises(TransportError, match="cannot reach") as caught:
        notifier.send(make_alert(alert_id=42))  # Slack posted it; the answer never came
    assert caught.value.permanent is False
    notifier.send(make_alert(alert_id=43))
    first, lost, third = slack.wait_for(3)
    assert [m.metadata["event_payload"]["key"] for m in (first, lost, third) if m.metadata] == [
        "alert-41:webcare",
        "alert-42:webcare",
        "alert-43:webcare",
    ]

    fresh = notifier_for(slack.base_url)  # after a restart: knows no channel id yet
    assert fresh.find_sent(make_alert(alert_id=42)) == f"C0TEST:{lost.ts}"
    assert deliver_once(fresh, make_alert(alert_id=42)) == f"C0TEST:{lost.ts}"
    assert posted(slack) == 3
    methods = [method for method, _, _ in slack.requests]
    assert methods.count("conversations.list") == 1  # the name's id is looked up once
    assert ("chat.postMessage", 0, "answer_dropped") in slack.requests

    # the same alert for another receiver in the same channel is not this one's message
    other = SlackNotifier(TOKEN, "C0TEST", slack.base_url, 5, receiver_id="webcare-2")
    assert other.find_sent(make_alert(alert_id=42)) is None


def test_find_sent_is_none_for_an_alert_never_posted(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url, channel="C0TEST")
    assert notifier.find_sent(make_alert()) is None  # an empty channel
    notifier.send(make_alert(alert_id=7))

    assert notifier.find_sent(make_alert(alert_id=42)) is None
    assert deliver_once(notifier, make_alert(alert_id=42)) is not None
    assert posted(slack) == 2
    assert "conversations.list" not in [m for m, _, _ in slack.requests]  # an id is used as is


def test_a_follow_up_in_a_thread_is_found_among_the_replies(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url)
    parent_ref = notifier.send(make_alert(alert_id=42))
    reply = replace(
        make_alert("En nu weer!", alert_id=43),
        follow_up=FollowUp(42, "reply", "critical", TEXT, parent_ref=parent_ref),
    )
    slack.drop_answer_next(1)
    with pytest.raises(TransportError):
        notifier.send(reply)
    parent, threaded = slack.wait_for(2)
    assert threaded.thread_ts == parent.ts and threaded.broadcast is False

    assert notifier.find_sent(reply) == f"C0TEST:{threaded.ts}"
    assert deliver_once(notifier, reply) == f"C0TEST:{threaded.ts}"
    assert posted(slack) == 2
    # the reply is not in the channel's history, only in the thread
    assert ("conversations.replies", 200, None) in slack.requests


def test_a_channel_name_is_resolved_to_its_id_across_pages_once() -> None:
    others = ["algemeen", "bestuur", "marketing", "random", "social"]
    with SlackWireServer(
        require_token=TOKEN, channel_id="C0WEBCARE9", other_channels=others, page_size=2
    ) as slack:
        notifier = notifier_for(slack.base_url, channel="#webcare")
        SlackNotifier(TOKEN, "#webcare", slack.base_url, 5, receiver_id="webcare").send(
            make_alert()
        )
        [message] = slack.wait_for(1)

        assert notifier.find_sent(make_alert()) == f"C0WEBCARE9:{message.ts}"
        assert notifier.find_sent(make_alert(alert_id=9)) is None
        methods = [method for method, _, _ in slack.requests]
        assert methods.count("conversations.list") == 3  # pages of 2: webcare is the 6th
        assert methods.count("conversations.history") == 2


def test_a_channel_the_bot_cannot_see_is_warned_about_and_not_found(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SlackWireServer(require_token=TOKEN, other_channels=["random"], page_size=1) as slack:
        notifier = notifier_for(slack.base_url, channel="#geheim")
        with caplog.at_level(logging.WARNING, logger="listener.notify.slack"):
            assert notifier.find_sent(make_alert()) is None
        assert "no channel the bot can see is called 'geheim'" in caplog.text
        assert [m for m, _, _ in slack.requests].count("conversations.list") == 2


@pytest.mark.parametrize(
    ("method", "channel", "scope"),
    [
        ("conversations.history", "C0TEST", "channels:history"),
        ("conversations.list", "#webcare", "channels:read"),
    ],
)
def test_without_the_scope_to_look_it_warns_once_and_posts_anyway(
    slack: SlackWireServer,
    caplog: pytest.LogCaptureFixture,
    method: str,
    channel: str,
    scope: str,
) -> None:
    notifier = notifier_for(slack.base_url, channel=channel)
    slack.error_next(3, "missing_scope", method=method)

    with caplog.at_level(logging.DEBUG, logger="listener.notify.slack"):
        assert notifier.find_sent(make_alert()) is None
        assert notifier.find_sent(make_alert()) is None
        assert deliver_once(notifier, make_alert()) is not None

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "missing_scope" in warnings[0].getMessage()
    assert f"needs the scope {scope}" in warnings[0].getMessage()
    assert posted(slack) == 1
    assert TOKEN not in caplog.text


def test_a_transient_failure_to_look_is_raised_the_outcome_stays_unknown(
    slack: SlackWireServer,
) -> None:
    notifier = notifier_for(slack.base_url, channel="C0TEST")
    slack.fail_next(1, status=429, retry_after=4, method="conversations.history")
    slack.status_next(1, 503, method="conversations.history")

    for retry_after in (4.0, None):
        with pytest.raises(TransportError) as caught:
            notifier.find_sent(make_alert())
        assert caught.value.permanent is False
        assert caught.value.retry_after == retry_after
        assert TOKEN not in caught.value.message
    assert notifier.find_sent(make_alert()) is None


def test_slackwire_shows_metadata_only_when_asked_and_pages_history(
    slack: SlackWireServer,
) -> None:
    """The stand-in's conversations.history as find_sent relies on it."""
    client = WebClient(token=TOKEN, base_url=slack.base_url)
    notifier = notifier_for(slack.base_url)
    for alert_id in (1, 2, 3):
        notifier.send(make_alert(alert_id=alert_id))

    plain = client.conversations_history(channel="C0TEST", limit=2)
    assert [m.get("metadata") for m in plain["messages"]] == [None, None]
    assert plain["has_more"] is True
    cursor = plain["response_metadata"]["next_cursor"]
    rest = client.conversations_history(channel="#webcare", cursor=cursor, include_all_metadata=1)
    [oldest] = rest["messages"]
    assert oldest["metadata"]["event_payload"]["alert_id"] == 1
    assert rest["response_metadata"]["next_cursor"] == ""
    newest_first = [m["ts"] for m in plain["messages"]] + [oldest["ts"]]
    assert newest_first == sorted(newest_first, reverse=True)


# --- progress: acknowledged, follow-ups, update_parent -----------------------------------------

ACKED = Progress(acked_by="U0ACK1", acked_via="slack", acked_at="2024-05-01T12:30:00+00:00")


def action_ids(blocks: list[Block]) -> list[str]:
    return [e["action_id"] for b in blocks if b.type == "actions" for e in b.to_dict()["elements"]]


def test_every_alert_has_an_acknowledge_button_until_acknowledged() -> None:
    alert = make_alert()
    incident = replace(
        alert,
        incident=Incident(
            "branch:vathorst",
            "Vathorst",
            3600,
            [IncidentMember(0, "p1", "x", None, "2024-05-01T12:03:00+00:00")],
        ),
    )
    for shown in (alert, incident):
        assert "acknowledge" in action_ids(build_blocks(shown))
        assert "acknowledge" in action_ids(build_blocks(shown, progress=Progress(follow_ups=2)))
        acked = build_blocks(shown, progress=ACKED)
        assert "acknowledge" not in action_ids(acked)
        assert acked[-1].to_dict()["elements"][0] == {
            "type": "mrkdwn",
            "text": "✅ Acknowledged by <@U0ACK1>",
        }
    assert "acknowledge" not in action_ids(build_blocks(replace(alert, alert_id=0)))
    assert "acknowledge" not in action_ids(build_blocks(alert, interactive=False))


@pytest.mark.parametrize(
    ("by", "via", "line"),
    [
        ("U0ACK1", "slack", "✅ Acknowledged by <@U0ACK1>"),
        ("jan", "cli", "✅ Acknowledged by jan"),
        (None, None, "✅ Acknowledged by someone"),
        ("<!channel>", "cli", "✅ Acknowledged by &lt;!channel&gt;"),
        ("U0ACK1", "cli", "✅ Acknowledged by U0ACK1"),  # not a Slack click: no mention
        ("U1> <!channel", "slack", "✅ Acknowledged by U1&gt; &lt;!channel"),
        ("@here", "cli", "✅ Acknowledged by @\u200bhere"),
    ],
)
def test_the_acknowledged_line_mentions_only_a_slack_user_id(
    by: str | None, via: str | None, line: str
) -> None:
    progress = replace(ACKED, acked_by=by, acked_via=via)
    [element] = build_blocks(make_alert(), progress=progress)[-1].to_dict()["elements"]
    assert element == {"type": "mrkdwn", "text": line}
    assert_inert_mrkdwn(line.replace("<@U0ACK1>", ""))


@pytest.mark.parametrize(
    ("level", "progress", "header"),
    [
        ("normal", Progress(), "🟡 NORMAL · Bibliotheek Eemland / Vathorst"),
        (
            "normal",
            Progress(follow_ups=1, highest_level="low"),
            "🟡 NORMAL · Bibliotheek Eemland / Vathorst · 1 follow-up",
        ),
        (
            "normal",
            Progress(follow_ups=3, highest_level="critical"),
            "🟡 NORMAL · Bibliotheek Eemland / Vathorst · 3 follow-ups · now CRITICAL",
        ),
        (
            "high",
            Progress(follow_ups=2, highest_level="high"),
            "🟠 HIGH · Bibliotheek Eemland / Vathorst · 2 follow-ups",
        ),
    ],
)
def test_the_header_counts_follow_ups_and_says_when_it_became_more_urgent(
    level: str, progress: Progress, header: str
) -> None:
    blocks = build_blocks(replace(make_alert(), level=level), progress=progress)
    assert blocks[0].to_dict()["text"]["text"] == header


def test_a_long_header_is_cut_before_the_follow_up_count() -> None:
    alert = replace(make_alert(), branch_name="Vathorst " * 30)
    progress = Progress(follow_ups=12, highest_level="critical")
    text = build_blocks(replace(alert, level="low"), progress=progress)[0].to_dict()["text"]["text"]
    assert len(text) <= 150
    assert text.endswith("… · 12 follow-ups · now CRITICAL")


def test_update_parent_re_renders_the_message_with_its_progress(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url)
    parent = replace(make_alert(), level="normal", branch_choices=CHOICES)
    ref = notifier.send(parent)
    assert ref is not None
    [message] = slack.wait_for(1)
    progress = replace(ACKED, follow_ups=2, highest_level="critical")

    notifier.update_parent(parent, ref, progress, judged("not-relevant"))

    [update] = slack.wait_for_updates(1)
    assert (update.channel, update.ts, update.token) == ("C0TEST", message.ts, TOKEN)
    assert update.text == message.text
    assert update.blocks == [
        b.to_dict() for b in build_blocks(parent, judged("not-relevant"), progress)
    ]
    blocks = update.blocks or []
    assert blocks[0]["text"]["text"].endswith(" · 2 follow-ups · now CRITICAL")
    assert "acknowledge" not in json.dumps(actions_of(blocks))
    assert [b["elements"][0]["text"] for b in blocks[-2:]] == [
        "Marked not relevant by <@U0CLICK>",
        "✅ Acknowledged by <@U0ACK1>",
    ]
    assert update.metadata == message.metadata  # find_sent still finds it


def test_update_parent_errors_are_transport_errors(slack: SlackWireServer) -> None:
    notifier = notifier_for(slack.base_url)
    with pytest.raises(TransportError, match="message_not_found") as caught:
        notifier.update_parent(make_alert(), "C0TEST:1714564980.000001", ACKED)
    assert caught.value.permanent is True
    with pytest.raises(TransportError, match="not a Slack message reference") as caught:
        notifier.update_parent(make_alert(), "<Message-ID@example>", ACKED)
    assert caught.value.permanent is True
    ref = notifier.send(make_alert())
    assert ref is not None
    slack.fail_next(1, status=429, retry_after=3, method="chat.update")
    with pytest.raises(TransportError) as caught:
        notifier.update_parent(make_alert(), ref, ACKED)
    assert (caught.value.permanent, caught.value.retry_after) == (False, 3.0)
    assert slack.updates == []
