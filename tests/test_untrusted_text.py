"""One hostile alert through every notifier, alone and as a digest: whatever a post, its author
or listener's evidence says (Slack mentions and links, mrkdwn, HTML, Markdown, rich markup, CR/LF
header injection) reaches people as the literal text, never as markup, headers or mentions.

Every notifier is real and talks to a local stand-in (aiosmtpd, the hook server, the Slack Web
API wire server); the console records into a string.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console
from slack_sdk import WebClient

from listener.alert import AlertMessage, Digest
from listener.config.model import EmailSettings
from listener.notify.console import ConsoleNotifier
from listener.notify.email import EmailNotifier
from listener.notify.slack import SlackNotifier
from listener.notify.slack_webhook import SlackWebhookNotifier
from listener.notify.webhook import WebhookNotifier
from tests.support.alerts import make_alert
from tests.support.configs import ROOT
from tests.support.hookserver import HookServer
from tests.support.slackwire import SlackWireServer
from tests.support.smtp import SmtpSink

CRLF_BCC = "\r\nBcc: evil@example.org\r\n"
#: Each piece of the post, as it must reach people (joined by spaces, with a CR/LF header
#: injection in the middle).
POST_PIECES = [
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<https://evil.example|click>",
    "*bold* _it_ ~s~ `code`",
    "<script>alert(1)</script>",
    "<b>html</b>",
    "[link](https://x)",
    "[bold red]rich[/]",
]
POST = " ".join(POST_PIECES[:7]) + CRLF_BCC + " ".join(POST_PIECES[7:])
NAME = "<b>Jan</b> [bold]x[/] <!here>\r\nBcc: name@example.org"
HANDLE = "jan<@U999>\r\nX-Evil: 1"
LOCATION = "<script>alert(2)</script> <!channel> *Amersfoort*\r\nBcc: loc@example.org"
EVIDENCE = ["<!channel> 'de bieb' *match*", "<https://evil.example/e|evidence>"]
REASONS = ["<@U123> [red]urgent[/]", "<b>reason</b>\r\nBcc: reason@example.org"]

SECRET = "whsec-0123456789abcdef-topsecret"
TOKEN = "xoxb-1111-2222-secretsecretsecret-abcd"
TO = ["webcare@bieb.test"]


def hostile_alert() -> AlertMessage:
    return make_alert(
        POST, evidence=EVIDENCE, reasons=REASONS, name=NAME, handle=HANDLE, location=LOCATION
    )


def hostile_digest() -> Digest:
    return Digest(
        digest_id=9,
        receiver="team",
        route="routes.toml#1",
        reason="digest",
        opened_at="2024-05-01T12:05:00Z",
        due_at="2024-05-01T13:00:00Z",
        alerts=[hostile_alert()],
    )


def deliver(notifier: Any, mode: str) -> None:
    """Send the hostile alert on its own, or a digest of it."""
    if mode == "alert":
        notifier.send(hostile_alert())
        return
    assert hasattr(notifier, "send_digest"), f"{type(notifier).__name__} has no send_digest"
    notifier.send_digest(hostile_digest())


def lines_of(text: str) -> list[str]:
    """The pieces of an untrusted string between its CR/LFs."""
    return [piece.strip() for piece in re.split(r"[\r\n]+", text) if piece.strip()]


MODES = ["alert", "digest"]


def test_the_post_is_short_enough_to_survive_a_digest_unclipped() -> None:
    assert len(" ".join(POST.split())) < 300


# --- console -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_console_prints_untrusted_text_literally(mode: str) -> None:
    console = Console(
        file=io.StringIO(), record=True, width=2000, color_system=None, legacy_windows=False
    )

    deliver(ConsoleNotifier(console), mode)

    out = console.export_text(styles=False)
    shown = lines_of(POST) + lines_of(NAME) + lines_of(HANDLE) + lines_of(REASONS[0])
    shown += lines_of(REASONS[1])
    if mode == "alert":  # the digest line leaves out the location and evidence
        shown += lines_of(LOCATION) + EVIDENCE
    for piece in shown:
        assert piece in out, piece
    for piece in POST_PIECES:  # no markup consumed: every piece is there as written
        assert piece in out, piece
    assert "Bcc: evil@example.org" in out


# --- e-mail ------------------------------------------------------------------------------------


ALLOWED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-listener-alert-id",
    "x-listener-digest-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def header_names(block: bytes) -> list[str]:
    """The names of the header fields in a raw header block (continuation lines skipped)."""
    return [
        line.split(b":", 1)[0].decode("ascii", "replace").lower()
        for line in block.split(b"\r\n")
        if line and not line.startswith((b" ", b"\t"))
    ]


@pytest.mark.parametrize("mode", MODES)
def test_email_gets_no_injected_header_and_escaped_html(smtp: SmtpSink, mode: str) -> None:
    settings = EmailSettings(
        host="127.0.0.1", port=smtp.port, security="none", sender="listener@bieb.test"
    )
    notifier = EmailNotifier(settings, None, TO, ROOT / "alerts" / "templates", receiver_id="team")

    deliver(notifier, mode)

    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == TO
    head = mail.raw.partition(b"\r\n\r\n")[0]
    names = header_names(head)
    for name in ("subject", "from", "to"):
        assert names.count(name) == 1, (name, names)
    assert set(names) <= ALLOWED_HEADERS, names
    # every MIME part's headers too (a header injected into a body part would show here)
    for part in mail.message.walk():
        assert {k.lower() for k in part} <= ALLOWED_HEADERS, list(part)
    assert not re.search(rb"(?im)^(bcc|x-evil):", head)  # (in a body, such a line is text)
    message = mail.message
    assert "Bcc" not in message and "X-Evil" not in message
    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject
    if mode == "digest":
        assert subject == "Digest: 1 alert (1 critical)"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for raw in ["<script>", "<b>html</b>", "<b>Jan</b>", "<b>reason</b>", "<!channel>", "<@U"]:
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;html&lt;/b&gt;" in html
    assert "&lt;b&gt;Jan&lt;/b&gt;" in html
    assert "&lt;b&gt;reason&lt;/b&gt;" in html
    assert 'href="https://evil.example' not in html and 'href="https://x' not in html
    assert "<script>alert(1)</script>" in text  # the text part shows it as written
    assert "[bold red]rich[/]" in text and "[link](https://x)" in text


# --- generic webhook ---------------------------------------------------------------------------


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    with HookServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize("mode", MODES)
def test_webhook_json_carries_the_exact_strings(
    hooks: HookServer, client: httpx.Client, mode: str
) -> None:
    deliver(WebhookNotifier(hooks.url("/in"), SECRET, client=client, name="hook"), mode)

    [hook] = hooks.requests
    timestamp = hook.headers["x-listener-timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + hook.body, hashlib.sha256)
    assert hook.headers["x-listener-signature"] == "sha256=" + expected.hexdigest()
    body = json.loads(hook.body)
    sent = body if mode == "alert" else body["alerts"][0]
    assert sent["post"]["text"] == POST
    assert sent["post"]["author"]["name"] == NAME
    assert sent["post"]["author"]["handle"] == HANDLE
    assert sent["post"]["author"]["location"] == LOCATION
    assert sent["alert"]["evidence"] == EVIDENCE
    assert sent["alert"]["reasons"] == REASONS
    assert b"&lt;" not in hook.body and b"&amp;" not in hook.body


# --- Slack (bot and incoming webhook) -----------------------------------------------------------

#: listener's own date token in the context line: `<!date^1714564980^{date_short_pretty} {time}|…>`
#: is the one `<!` Slack may see, made from the post's timestamp (a number), never from its text.
_DATE_TOKEN = re.compile(r"<!date\^\d+\^[^|<>]*\|[0-9: UTC-]*>")


def text_objects(node: Any) -> list[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) in a Block Kit structure."""
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("plain_text", "mrkdwn") and "text" in node else []
        return found + [t for value in node.values() for t in text_objects(value)]
    if isinstance(node, list):
        return [t for value in node for t in text_objects(value)]
    return []


def assert_inert(fallback: str | None, blocks: list[dict[str, Any]] | None) -> None:
    """No mention, broadcast or link can form in mrkdwn; the post text is only in plain_text."""
    assert blocks, "no blocks"
    objects = text_objects(blocks)
    mrkdwn = [o["text"] for o in objects if o["type"] == "mrkdwn"]
    plain = [o["text"] for o in objects if o["type"] == "plain_text"]
    for text in [fallback or "", *mrkdwn]:
        stripped = _DATE_TOKEN.sub("", text)
        for danger in ("<!", "<@", "<http"):
            assert danger not in stripped, (danger, text)
        for piece in POST_PIECES + EVIDENCE + lines_of(NAME) + lines_of(REASONS[1]):
            if "<" in piece:
                assert piece not in text, (piece, text)
    post_lines = lines_of(POST)
    for line in post_lines:
        assert any(line in p for p in plain), (line, plain)
        assert not any(line in m for m in mrkdwn), (line, mrkdwn)


@pytest.mark.parametrize("mode", MODES)
def test_slack_keeps_untrusted_text_inert(mode: str) -> None:
    with SlackWireServer(require_token=TOKEN) as slack:
        notifier = SlackNotifier(
            token=TOKEN, channel="#webcare", base_url=slack.base_url, timeout=5
        )
        assert isinstance(notifier._client, WebClient)  # the real slack_sdk client

        deliver(notifier, mode)

        [message] = slack.wait_for(1)
    assert_inert(message.text, message.blocks)


@pytest.mark.parametrize("mode", MODES)
def test_slack_webhook_keeps_untrusted_text_inert(
    hooks: HookServer, client: httpx.Client, mode: str
) -> None:
    deliver(SlackWebhookNotifier(hooks.url("/services/T0/B0/xyz"), client=client), mode)

    [hook] = hooks.requests
    body = json.loads(hook.body)
    assert_inert(body.get("text"), body.get("blocks"))
