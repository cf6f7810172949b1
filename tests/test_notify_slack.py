"""SlackNotifier against a local Slack Web API stand-in: blocks, feedback controls, error
classification, escaping."""

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

from listener.alert import MAX_BRANCH_CHOICES, AlertMessage, BranchChoice, branch_choices
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
    **author: Any,
) -> AlertMessage:
    return support_alert(text, url=url, evidence=evidence, distance_km=None, **author)


@pytest.fixture
def slack() -> Iterator[SlackWireServer]:
    with SlackWireServer(require_token=TOKEN) as server:
        yield server


def notifier_for(base_url: str, timeout: float = 5.0) -> SlackNotifier:
    return SlackNotifier(token=TOKEN, channel="#webcare", base_url=base_url, timeout=timeout)


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
    assert message.metadata == {"event_type": "listener_alert", "event_payload": {"alert_id": 42}}
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
    [button] = actions["elements"]
    assert button["text"]["text"] == "Open post"
    assert button["url"] == "https://social.example/@jan/1"


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
    types = [b["type"] for b in message.blocks or []]
    assert "actions" not in types
    assert types[-1] == "context"


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
    open_post, not_relevant, wrong_branch = actions_of(message.blocks or [])
    assert open_post["action_id"] == "open_post"
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
    [open_post, button] = actions_of([b.to_dict() for b in build_blocks(alert)])
    assert (open_post["action_id"], button["action_id"]) == ("open_post", "feedback_not_relevant")


def test_alerts_that_take_no_feedback_have_no_controls() -> None:
    """Alerts about listener itself, and alerts stored before feedback existed (no field)."""
    stored = json.loads(make_alert().to_json())
    del stored["branch_choices"]
    old = AlertMessage.from_json(json.dumps(stored))
    assert old.branch_choices is None

    [button] = actions_of([b.to_dict() for b in build_blocks(old)])
    assert button["action_id"] == "open_post"


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
    _, button, select = actions_of(blocks)
    assert (button["text"]["text"], button["action_id"]) == (
        "Relevant after all",
        "feedback_relevant",
    )
    assert "initial_option" not in select
    assert blocks[-1]["elements"][0]["text"] == "Marked not relevant by <@U0CLICK>"

    blocks = [b.to_dict() for b in build_blocks(alert, judged("wrong-branch", branch="leusden"))]
    _, button, select = actions_of(blocks)
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
