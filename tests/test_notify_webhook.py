"""WebhookNotifier against a local HTTP server: the JSON body of an alert and of a digest, the
HMAC signature checked with `hmac` on its own, the Idempotency-Key header, error classification,
secrets kept out of repr, errors and logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from listener.alert import AlertMessage, Digest, FollowUp
from listener.cli import app
from listener.config.model import MainFile, Receiver
from listener.notify import NotifierUnavailable, TransportError, build_notifier
from listener.notify.webhook import WebhookNotifier, retry_after
from tests.support.alerts import make_alert
from tests.support.configs import write_setup
from tests.support.hookserver import Answer, HookServer

SECRET = "whsec-0123456789abcdef-topsecret"
PATH_SECRET = "/hooks/T0K3N-9f8e7d6c5b4a"
NOW = 1_767_000_000.0
HOSTILE = '</pre><script>alert(1)</script> <img src=x onerror=alert(2)> "quoted" \\ \n\t<!channel>'


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with HookServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


def notifier(hooks: HookServer, client: httpx.Client) -> WebhookNotifier:
    return WebhookNotifier(
        hooks.url(PATH_SECRET), SECRET, client=client, clock=lambda: NOW, name="hook"
    )


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does, written from the README, not from listener's code."""
    timestamp = headers["x-listener-timestamp"]
    scheme, _, given = headers["x-listener-signature"].partition("=")
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return scheme == "sha256" and hmac.compare_digest(given, expected)


def test_the_body_is_the_alert_as_versioned_json(hooks: HookServer, client: httpx.Client) -> None:
    alert = make_alert()
    assert notifier(hooks, client).send(alert) is None
    [hook] = hooks.requests
    assert hook.path == PATH_SECRET
    assert hook.headers["content-type"] == "application/json"
    body = json.loads(hook.body)
    assert body["version"] == 1
    assert body["event"] == "alert"
    assert body["alert"] == {
        "id": 42,
        "level": "critical",
        "score": 91.0,
        "headline": "🔴 CRITICAL · Bibliotheek Eemland / Vathorst",
        "organisation": {"id": "eemland", "name": "Bibliotheek Eemland"},
        "branch": {"id": "vathorst", "name": "Vathorst"},
        "search": "eemland-brand",
        "labels": ["closure"],
        "reasons": ["closure complaint"],
        "evidence": ["'de bieb' + 'Vathorst' (3.1 km)"],
        "distance_km": 3.1,
        "follow_up": None,
        "incident": None,
    }
    assert body["post"] == alert.post.to_dict()
    assert body["post"]["created_at"] == "2024-05-01T12:03:00Z"


def test_a_follow_up_and_a_branchless_alert_say_so(hooks: HookServer, client: httpx.Client) -> None:
    from dataclasses import replace

    alert = replace(
        make_alert(),
        branch_id=None,
        branch_name=None,
        follow_up=FollowUp(parent_alert_id=7, kind="reply", parent_text="eerder"),
    )
    notifier(hooks, client).send(alert)
    body = json.loads(hooks.requests[0].body)
    assert body["alert"]["branch"] is None
    assert body["alert"]["follow_up"] == {"parent_alert_id": 7, "kind": "reply"}


def test_the_signature_verifies_with_hmac_over_timestamp_and_body(
    hooks: HookServer, client: httpx.Client
) -> None:
    notifier(hooks, client).send(make_alert())
    [hook] = hooks.requests
    assert hook.headers["x-listener-timestamp"] == str(int(NOW))
    assert hook.headers["x-listener-signature"].startswith("sha256=")
    assert verify(SECRET, hook.headers, hook.body)
    # and it is a real check: another secret, body or timestamp does not verify
    assert not verify("another-secret", hook.headers, hook.body)
    assert not verify(SECRET, hook.headers, hook.body.replace(b"critical", b"low"))
    older = hook.headers | {"x-listener-timestamp": str(int(NOW) - 1)}
    assert not verify(SECRET, older, hook.body)


def test_hostile_post_text_arrives_as_the_same_json_string(
    hooks: HookServer, client: httpx.Client
) -> None:
    notifier(hooks, client).send(make_alert(HOSTILE, name="<b>Jan</b>"))
    [hook] = hooks.requests
    body = json.loads(hook.body)
    assert body["post"]["text"] == HOSTILE  # not escaped into HTML, not altered
    assert body["post"]["author"]["name"] == "<b>Jan</b>"
    assert b"&lt;" not in hook.body and b"<br" not in hook.body
    assert hook.headers["content-type"] == "application/json"


def test_a_429_is_transient_and_passes_on_retry_after(
    hooks: HookServer, client: httpx.Client
) -> None:
    hooks.script(Answer(429, b"slow down", {"Retry-After": "7"}))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send(make_alert())
    assert caught.value.permanent is False
    assert caught.value.retry_after == 7.0
    assert "HTTP 429" in caught.value.message


def test_retry_after_may_be_an_http_date_or_missing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now) == 90.0
    assert retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after(None, now) == 30.0
    assert retry_after("soon", now) == 30.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_transient(hooks: HookServer, client: httpx.Client, status: int) -> None:
    hooks.script(Answer(status, b"upstream trouble"))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send(make_alert())
    assert caught.value.permanent is False
    assert caught.value.retry_after is None
    assert f"HTTP {status}: upstream trouble" in caught.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
def test_a_4xx_or_a_redirect_is_permanent(
    hooks: HookServer, client: httpx.Client, status: int
) -> None:
    hooks.script(Answer(status, b"bad signature", {"Location": "http://elsewhere.example/"}))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send(make_alert())
    assert caught.value.permanent is True
    assert f"HTTP {status}" in caught.value.message


def test_a_refused_connection_and_a_timeout_are_transient(hooks: HookServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = int(sock.getsockname()[1])
    with httpx.Client(timeout=0.3) as quick:
        refused = WebhookNotifier(f"http://127.0.0.1:{closed}{PATH_SECRET}", SECRET, client=quick)
        with pytest.raises(TransportError) as caught:
            refused.send(make_alert())
        assert caught.value.permanent is False
        hooks.script(Answer(delay=3.0))
        slow = WebhookNotifier(hooks.url(PATH_SECRET), SECRET, client=quick)
        with pytest.raises(TransportError) as timed_out:
            slow.send(make_alert())
        assert timed_out.value.permanent is False
        assert "Timeout" in timed_out.value.message


def test_secrets_stay_out_of_repr_errors_and_logs(
    hooks: HookServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the CLI tests quiet it
    sender = notifier(hooks, client)
    assert SECRET not in repr(sender) and PATH_SECRET not in repr(sender)
    assert str(sender) == repr(sender)
    assert repr(sender).endswith(
        "url='http://127.0.0.1:" + str(hooks.address[1]) + "/…5b4a', secret='…cret')"
    )
    sender.send(make_alert())
    echo = f"no hook at {hooks.url(PATH_SECRET)} for {PATH_SECRET} with {SECRET}".encode()
    hooks.script(Answer(404, echo))
    with pytest.raises(TransportError) as caught:
        sender.send(make_alert())
    for text in (caught.value.message, repr(caught.value), caplog.text):
        assert SECRET not in text
        assert PATH_SECRET not in text
    assert "***" in caught.value.message
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log the request


def test_build_notifier_takes_url_and_secret_from_the_environment(tmp_path: Path) -> None:
    receiver = Receiver(id="hook", type="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET")
    with pytest.raises(NotifierUnavailable, match="HOOK_URL is not set"):
        build_notifier(receiver, MainFile(), tmp_path, env={"HOOK_SECRET": SECRET})
    with pytest.raises(NotifierUnavailable, match="HOOK_SECRET is empty"):
        build_notifier(
            receiver,
            MainFile(),
            tmp_path,
            env={"HOOK_URL": "https://x.example/h", "HOOK_SECRET": ""},
        )
    with pytest.raises(NotifierUnavailable, match="HOOK_URL does not hold an http") as caught:
        build_notifier(
            receiver, MainFile(), tmp_path, env={"HOOK_URL": "ftp://tok3n@x", "HOOK_SECRET": SECRET}
        )
    assert "tok3n" not in str(caught.value)
    built = build_notifier(
        receiver,
        MainFile(),
        tmp_path,
        env={"HOOK_URL": "https://hooks.example.org/in/abcdefgh12345678", "HOOK_SECRET": SECRET},
    )
    assert isinstance(built, WebhookNotifier)
    assert "abcdefgh1234" not in repr(built)


def test_a_webhook_receiver_needs_its_url_and_secret_variables() -> None:
    with pytest.raises(ValidationError, match="needs secret_env"):
        Receiver(id="hook", type="webhook", url_env="HOOK_URL")
    with pytest.raises(ValidationError, match="needs url_env"):
        Receiver(id="hook", type="webhook", secret_env="HOOK_SECRET")
    with pytest.raises(ValidationError, match="secret_env is only for webhook"):
        Receiver(id="hook", type="console", secret_env="HOOK_SECRET")


def test_check_reports_an_inactive_webhook_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_TEST_HOOK_URL", raising=False)
    monkeypatch.setenv("LISTENER_TEST_HOOK_SECRET", SECRET)
    extra = (
        '[[receivers]]\nid = "hook"\ntype = "webhook"\n'
        'url_env = "LISTENER_TEST_HOOK_URL"\nsecret_env = "LISTENER_TEST_HOOK_SECRET"\n'
    )
    config = write_setup(tmp_path, extra_receivers=extra, route_receivers='"hook"')
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (
        "hook: webhook (inactive: environment variable LISTENER_TEST_HOOK_URL is not set)"
        in result.output
    )
    monkeypatch.setenv("LISTENER_TEST_HOOK_URL", "https://hooks.example.org/in/x")
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert "    hook: webhook\n" in result.output


def test_the_readmes_verification_recipe_accepts_a_real_request(
    hooks: HookServer, client: httpx.Client
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("To verify, use the raw body") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the documented recipe, as a receiver would copy it
    WebhookNotifier(hooks.url(PATH_SECRET), SECRET, client=client).send(make_alert())
    [hook] = hooks.requests
    headers = {
        "X-Listener-Timestamp": hook.headers["x-listener-timestamp"],
        "X-Listener-Signature": hook.headers["x-listener-signature"],
    }
    assert namespace["verify"](SECRET.encode(), headers, hook.body)
    assert not namespace["verify"](b"wrong", headers, hook.body)
    stale = headers | {"X-Listener-Timestamp": str(int(NOW) - 3600)}
    assert not namespace["verify"](SECRET.encode(), stale, hook.body)


# --- idempotency, escalations, digests ---------------------------------------------------------


def test_every_attempt_at_an_alert_carries_the_same_idempotency_key(
    hooks: HookServer, client: httpx.Client
) -> None:
    hooks.script(Answer(503, b"busy"))
    sender = notifier(hooks, client)
    with pytest.raises(TransportError):
        sender.send(make_alert())
    sender.send(make_alert())
    sender.send(make_alert(alert_id=43))

    keys = [hook.headers["idempotency-key"] for hook in hooks.requests]
    assert keys == ["alert-42:hook", "alert-42:hook", "alert-43:hook"]


def test_an_escalation_says_so_in_follow_up(hooks: HookServer, client: httpx.Client) -> None:
    from dataclasses import replace

    follow = FollowUp(parent_alert_id=12, kind="escalation", parent_level="critical")
    notifier(hooks, client).send(replace(make_alert(), follow_up=follow))
    body = json.loads(hooks.requests[0].body)
    assert body["alert"]["follow_up"] == {"parent_alert_id": 12, "kind": "escalation"}


def make_digest(*alerts: AlertMessage) -> Digest:
    return Digest(
        digest_id=3,
        receiver="hook",
        route="routes.toml#1",
        reason="quiet",
        opened_at="2024-05-01T21:05:00+00:00",
        due_at="2024-05-02T05:00:00+00:00",
        alerts=list(alerts),
    )


def test_a_digest_is_one_signed_post_with_each_alerts_body(
    hooks: HookServer, client: httpx.Client
) -> None:
    from dataclasses import replace

    first = make_alert()
    second = replace(make_alert("tweede", alert_id=43), level="high")

    assert notifier(hooks, client).send_digest(make_digest(first, second)) is None

    [hook] = hooks.requests
    assert hook.path == PATH_SECRET
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["idempotency-key"] == "digest-3:hook"
    assert verify(SECRET, hook.headers, hook.body)
    body = json.loads(hook.body)
    assert body["version"] == 1
    assert body["event"] == "digest"
    assert body["digest"] == {
        "id": 3,
        "receiver": "hook",
        "route": "routes.toml#1",
        "reason": "quiet",
        "title": "Held during quiet hours: 2 alerts (1 critical, 1 high)",
        "opened_at": "2024-05-01T21:05:00+00:00",
        "due_at": "2024-05-02T05:00:00+00:00",
        "count": 2,
    }
    assert [a["alert"]["id"] for a in body["alerts"]] == [42, 43]
    assert [a["alert"]["level"] for a in body["alerts"]] == ["critical", "high"]
    assert body["alerts"][1]["post"] == second.post.to_dict()
    # each alert is exactly the body `send` would have POSTed for it
    notifier(hooks, client).send(first)
    assert body["alerts"][0] == json.loads(hooks.requests[1].body)


@pytest.mark.parametrize(("status", "permanent"), [(429, False), (503, False), (400, True)])
def test_a_digest_failure_is_classified_like_an_alert(
    hooks: HookServer, client: httpx.Client, status: int, permanent: bool
) -> None:
    hooks.script(Answer(status, b"nope", {"Retry-After": "5"}))
    with pytest.raises(TransportError) as caught:
        notifier(hooks, client).send_digest(make_digest(make_alert()))
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in caught.value.message
    assert PATH_SECRET not in caught.value.message
