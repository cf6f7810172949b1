"""SlackWebhookNotifier against a local HTTP server that answers like a Slack incoming webhook:
the Block Kit body without feedback controls, inert post text, error classification, and the
webhook URL (the secret) kept out of repr, errors and logs; digests as the bot's digest blocks."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from listener.alert import BranchChoice, Digest
from listener.cli import app
from listener.config.model import MainFile, Receiver, SlackSettings
from listener.notify import NotifierUnavailable, TransportError, build_notifier
from listener.notify.slack import build_blocks, digest_blocks, fallback_text
from listener.notify.slack_webhook import SlackWebhookNotifier
from tests.support.alerts import make_alert
from tests.support.configs import write_setup
from tests.support.hookserver import Answer, HookServer

HOOK_PATH = "/services/T0000TEST/B0000TEST/XyZsecretWebhookToken123"
HOSTILE = "<!channel> @here <@U123> <https://evil.example|click> *bold* @everyone & co"


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with HookServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


def notifier(hooks: HookServer, client: httpx.Client) -> SlackWebhookNotifier:
    return SlackWebhookNotifier(hooks.url(HOOK_PATH), client=client, name="webcare-hook")


def with_feedback() -> Any:
    """An alert that takes feedback: the bot notifier would show controls for it."""
    return replace(make_alert(), branch_choices=[BranchChoice("leusden", "Bibliotheek Leusden")])


def texts(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("plain_text", "mrkdwn") and "text" in node else []
        return found + [t for value in node.values() for t in texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in texts(value)]
    return []


def test_the_message_is_the_bots_blocks_without_feedback_controls(
    hooks: HookServer, client: httpx.Client
) -> None:
    alert = with_feedback()
    assert notifier(hooks, client).send(alert) is None
    [hook] = hooks.requests
    assert hook.path == HOOK_PATH
    assert hook.headers["content-type"] == "application/json"
    body = json.loads(hook.body)
    assert body["text"] == fallback_text(alert)
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    bot_blocks = [b.to_dict() for b in build_blocks(alert)]
    assert any(  # the bot's message has the controls ...
        e.get("action_id", "").startswith("feedback_")
        for b in bot_blocks
        for e in b.get("elements", [])
    )
    blocks = body["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context", "section", "actions"]
    [button] = blocks[-1]["elements"]  # ... the webhook's only the link to the post
    assert button["type"] == "button" and button["url"] == "https://social.example/@jan/1"
    assert "feedback_" not in hook.body.decode()
    assert blocks[:-1] == bot_blocks[:-1]


def test_hostile_post_text_stays_plain_text_and_escaped(
    hooks: HookServer, client: httpx.Client
) -> None:
    notifier(hooks, client).send(make_alert(HOSTILE, location="<!here>", evidence=[HOSTILE]))
    body = json.loads(hooks.requests[0].body)
    post = body["blocks"][1]["text"]
    assert post == {"type": "plain_text", "text": HOSTILE, "emoji": False}
    mrkdwn = [t["text"] for t in texts(body["blocks"]) if t["type"] == "mrkdwn"] + [body["text"]]
    for text in mrkdwn:
        stripped = re.sub(r"<!date\^\d+\^[^|<>]*\|[^<>]*>", "", text)
        assert "<" not in stripped and ">" not in stripped, text
        assert not re.search(r"@(here|channel|everyone)", stripped), text


def test_a_429_is_transient_with_its_retry_after(hooks: HookServer, client: httpx.Client) -> None:
    hooks.script(Answer(429, b"rate_limited", {"Retry-After": "12"}))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send(make_alert())
    assert caught.value.permanent is False
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize(
    ("status", "answer", "permanent"),
    [
        (500, b"rollup_error", False),
        (503, b"", False),
        (400, b"invalid_payload", True),
        (403, b"action_prohibited", True),
        (404, b"no_service", True),
        (410, b"channel_is_archived", True),
    ],
)
def test_slacks_answers_are_classified(
    hooks: HookServer, client: httpx.Client, status: int, answer: bytes, permanent: bool
) -> None:
    hooks.script(Answer(status, answer))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send(make_alert())
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in caught.value.message
    assert answer.decode() in caught.value.message


def test_the_webhook_url_stays_out_of_repr_errors_and_logs(
    hooks: HookServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the CLI tests quiet it
    sender = notifier(hooks, client)
    assert HOOK_PATH not in repr(sender) and "XyZsecret" not in repr(sender)
    assert repr(sender).endswith("/…n123')")
    sender.send(make_alert())
    hooks.script(Answer(404, f"no_service for {HOOK_PATH}".encode()))
    with pytest.raises(TransportError) as caught:
        sender.send(make_alert())
    for text in (caught.value.message, repr(caught.value), caplog.text):
        assert HOOK_PATH not in text
        assert "XyZsecretWebhookToken" not in text
    assert "no_service for ***" in caught.value.message
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log the request


def test_build_notifier_takes_the_url_from_the_environment(
    hooks: HookServer, tmp_path: Path
) -> None:
    receiver = Receiver(id="webcare-hook", type="slack_webhook", url_env="WEBCARE_HOOK")
    with pytest.raises(NotifierUnavailable, match="WEBCARE_HOOK is not set"):
        build_notifier(receiver, MainFile(), tmp_path, env={})
    main = MainFile(slack=SlackSettings(timeout="2s"))
    built = build_notifier(receiver, main, tmp_path, env={"WEBCARE_HOOK": hooks.url(HOOK_PATH)})
    assert isinstance(built, SlackWebhookNotifier)
    built.send(make_alert())
    assert [h.path for h in hooks.requests] == [HOOK_PATH]
    with pytest.raises(ValidationError, match="needs url_env"):
        Receiver(id="webcare-hook", type="slack_webhook")
    with pytest.raises(ValidationError, match="channel is only for slack receivers"):
        Receiver(id="webcare-hook", type="slack_webhook", url_env="X", channel="#webcare")


def test_check_reports_an_inactive_slack_webhook_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_TEST_SLACK_HOOK", raising=False)
    extra = (
        '[[receivers]]\nid = "hook"\ntype = "slack_webhook"\nurl_env = "LISTENER_TEST_SLACK_HOOK"\n'
    )
    config = write_setup(tmp_path, extra_receivers=extra, route_receivers='"hook"')
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "hook: slack_webhook (inactive: environment variable LISTENER_TEST_SLACK_HOOK" in (
        " ".join(result.output.split())
    )


def test_a_digest_is_posted_as_the_bots_digest_blocks(
    hooks: HookServer, client: httpx.Client
) -> None:
    alerts = [
        replace(make_alert(HOSTILE, alert_id=1), level="high"),
        replace(make_alert(alert_id=2, url="https://social.example/@jan/2"), level="normal"),
    ]
    digest = Digest(7, "webcare-hook", "routes.toml#1", "quiet", "2024-05-01T22:00:00+00:00",
                    "2024-05-02T07:00:00+00:00", alerts)  # fmt: skip

    assert notifier(hooks, client).send_digest(digest) is None

    [hook] = hooks.requests
    assert hook.path == HOOK_PATH
    body = json.loads(hook.body)
    assert body["text"] == "Held during quiet hours: 2 alerts (1 high)"
    assert body["blocks"] == [block.to_dict() for block in digest_blocks(digest)]
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    header, held, first, second = body["blocks"]
    assert header["text"]["text"] == "🗞 Held during quiet hours: 2 alerts (1 high)"
    assert held["elements"][0]["text"].startswith("Held from <!date^1714600800^")
    assert first["text"]["type"] == "plain_text" and HOSTILE in first["text"]["text"]
    assert second["accessory"]["url"] == "https://social.example/@jan/2"
    for text in [t["text"] for t in texts(body["blocks"]) if t["type"] == "mrkdwn"]:
        assert "<!channel>" not in text and "@here" not in text


def test_a_digest_that_slack_refuses_is_a_transport_error(
    hooks: HookServer, client: httpx.Client
) -> None:
    hooks.script(Answer(429, b"rate_limited", {"Retry-After": "5"}))
    digest = Digest(7, "webcare-hook", "r", "digest", "2024-05-01T08:00:00+00:00",
                    "2024-05-01T12:00:00+00:00", [make_alert()])  # fmt: skip
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send_digest(digest)
    assert (caught.value.permanent, caught.value.retry_after) == (False, 5.0)
    assert "digest #7" in caught.value.message and HOOK_PATH not in caught.value.message


def test_the_webhook_message_has_no_acknowledge_button(
    hooks: HookServer, client: httpx.Client
) -> None:
    notifier(hooks, client).send(make_alert())
    assert "acknowledge" not in hooks.requests[0].body.decode().lower()
    assert "acknowledge" in str([b.to_dict() for b in build_blocks(make_alert())])
