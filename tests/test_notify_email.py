"""EmailNotifier against a local aiosmtpd sink: templates, header injection, SMTP classification,
deterministic Message-IDs, follow-ups and escalations, and digests.

Most tests use security="none". The TLS tests (STARTTLS with login, implicit TLS, an untrusted
certificate) make a throwaway self-signed certificate with the `openssl` command and fail
when it is missing (Debian and the python images ship it).
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener.alert import AlertMessage, Digest, FollowUp
from listener.config import ConfigError, load_config
from listener.config.model import EmailSettings, MainFile, Receiver
from listener.notify import NotifierUnavailable, TransportError, build_notifier, follow_up_line
from listener.notify.email import EmailNotifier
from tests.support.alerts import TEXT
from tests.support.alerts import make_alert as support_alert
from tests.support.configs import write_setup
from tests.support.smtp import SmtpSink

TEMPLATES = Path(__file__).resolve().parents[1] / "alerts" / "templates"
PASSWORD = "hunter2-correct-horse-battery"
TO = ["webcare@bieb.test"]
INJECTION = "oeps\r\nBcc: victim@example.org\r\nX-Evil: 1"


def make_alert(
    text: str = TEXT + "\nWat is hier aan de hand?",
    evidence: list[str] | None = None,
    **author: Any,
) -> AlertMessage:
    return support_alert(text, evidence=evidence, **author)


def settings(port: int, **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "Listener <listener@bieb.test>",
        "timeout": "5s",
    }
    return EmailSettings(**(values | overrides))


def notifier_for(port: int, to: list[str] = TO, **overrides: Any) -> EmailNotifier:
    password = overrides.pop("password", None)
    ssl_context = overrides.pop("ssl_context", None)
    receiver_id = overrides.pop("receiver_id", "team")
    return EmailNotifier(
        settings(port, **overrides),
        password,
        to,
        TEMPLATES,
        receiver_id=receiver_id,
        ssl_context=ssl_context,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


# --- delivery ----------------------------------------------------------------------------------


def test_a_normal_alert_arrives_with_text_and_html_parts(smtp: SmtpSink) -> None:
    reference = notifier_for(smtp.port).send(make_alert())

    [mail] = smtp.wait_for(1)
    message = mail.message
    assert mail.mail_from == "listener@bieb.test"
    assert mail.rcpt_tos == TO
    assert reference == message["Message-ID"]
    assert message["From"] == "Listener <listener@bieb.test>"
    assert message["To"] == "webcare@bieb.test"
    assert message["Subject"].startswith("[CRITICAL] Bibliotheek Eemland / Vathorst: De bieb")
    assert message["Date"] and message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        for fact in [
            "CRITICAL" if body is text else "critical",
            "Bibliotheek Eemland / Vathorst",
            "De bieb in Vathorst is alweer dicht?!",
            "Jan Jansen",
            "@jan",
            "1,234",
            "Amersfoort",
            "mastodon",
            "01-05-2024 14:03 CEST",
            "https://social.example/@jan/1",
            "&#39;de bieb&#39; + &#39;Vathorst&#39;" if body is html else "'de bieb' + 'Vathorst'",
            "closure complaint",
            "3.1 km",
        ]:
            assert fact in body, (fact, body)
    assert "Wat is hier aan de hand?<br>" not in html  # the line break comes before it
    assert "dicht?!<br>" in html


def test_html_escapes_markup_from_the_post_and_author(smtp: SmtpSink) -> None:
    script = "<script>alert(1)</script>"
    alert = make_alert(text=script, name=script, location=script, evidence=[script])

    notifier_for(smtp.port).send(alert)

    [mail] = smtp.wait_for(1)
    html = mail.message.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


def test_a_crlf_in_post_text_or_author_adds_no_header_and_no_recipient(smtp: SmtpSink) -> None:
    alert = make_alert(text=INJECTION, name=INJECTION, location=INJECTION)

    notifier_for(smtp.port).send(alert)

    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == TO
    assert "Bcc" not in mail.message and "X-Evil" not in mail.message
    assert not [line for line in header_lines(mail.raw) if line.lower().startswith(b"bcc")]
    assert "\n" not in mail.message["Subject"] and "\r" not in mail.message["Subject"]
    assert "oeps Bcc: victim@example.org X-Evil: 1" in mail.message["Subject"]


def test_the_subject_is_one_line_of_at_most_200_characters(smtp: SmtpSink) -> None:
    notifier = notifier_for(smtp.port)
    notifier._subject = notifier._text.environment.from_string("{{ post.text }}")

    notifier.send(make_alert(text="woord\u2028\t\x0bwoord\r\n" * 100))

    [mail] = smtp.wait_for(1)
    subject = mail.message["Subject"]
    assert len(subject) == 200 and subject.endswith("…")
    assert subject.startswith("woord woord woord")


def test_one_refused_recipient_does_not_stop_the_others(
    smtp: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.refuse_rcpt("gone@bieb.test", "550 5.1.1 unknown user")
    notifier = notifier_for(smtp.port, to=["webcare@bieb.test", "gone@bieb.test"])

    reference = notifier.send(make_alert())  # no raise: a retry would mail webcare@ twice

    [mail] = smtp.wait_for(1)
    assert mail.rcpt_tos == ["webcare@bieb.test"]
    assert mail.message["To"] == "webcare@bieb.test, gone@bieb.test"
    assert (
        reference
        == f"{mail.message['Message-ID']} (refused: gone@bieb.test 550 5.1.1 unknown user)"
    )
    assert "gone@bieb.test" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "permanent", "reason"),
    [
        (("reply_next", "451 4.3.0 try later"), False, "DATA: 451 4.3.0 try later"),
        (("reply_next", "452 4.3.1 out of storage"), False, "DATA: 452 4.3.1 out of storage"),
        (("reply_next", "550 5.7.1 no"), True, "DATA: 550 5.7.1 no"),
        (("reply_next", "554 5.6.0 bad content"), True, "DATA: 554 5.6.0 bad content"),
        (("refuse_rcpt", "550 5.1.1 unknown"), True, "all recipients refused"),
        (("refuse_rcpt", "450 4.2.1 mailbox busy"), False, "450 4.2.1 mailbox busy"),
        (("hang_up_next", None), False, "disconnected"),
    ],
)
def test_each_smtp_failure_is_classified_transient_or_permanent(
    smtp: SmtpSink, script: tuple[str, str | None], permanent: bool, reason: str
) -> None:
    action, reply = script
    if action == "reply_next":
        smtp.reply_next(1, reply or "")
    elif action == "refuse_rcpt":
        smtp.refuse_rcpt(TO[0], reply or "")
    else:
        smtp.hang_up_next(1)

    with pytest.raises(TransportError) as caught:
        notifier_for(smtp.port).send(make_alert())

    assert caught.value.permanent is permanent
    assert reason in caught.value.message
    assert f"127.0.0.1:{smtp.port}" in caught.value.message
    assert smtp.messages == []


def test_it_delivers_after_a_451(smtp: SmtpSink) -> None:
    notifier = notifier_for(smtp.port)
    smtp.reply_next(1, "451 4.3.0 try later")

    with pytest.raises(TransportError):
        notifier.send(make_alert())
    notifier.send(make_alert())

    assert len(smtp.wait_for(1)) == 1


def test_a_server_that_is_down_is_transient() -> None:
    with pytest.raises(TransportError, match="refused") as caught:
        notifier_for(closed_port()).send(make_alert())

    assert caught.value.permanent is False


def test_a_broken_template_is_transient_and_says_so(smtp: SmtpSink, tmp_path: Path) -> None:
    for template in TEMPLATES.iterdir():
        shutil.copy(template, tmp_path / template.name)
    (tmp_path / "email.txt.j2").write_text("{{ alert.no_such_field }}\n")
    notifier = EmailNotifier(settings(smtp.port), None, TO, tmp_path)

    with pytest.raises(TransportError, match="template") as caught:
        notifier.send(make_alert())

    assert caught.value.permanent is False


# --- secrets -----------------------------------------------------------------------------------


def test_the_password_never_appears_in_repr_or_errors(smtp: SmtpSink) -> None:
    notifier = notifier_for(smtp.port, username="webcare", password=PASSWORD)
    assert PASSWORD not in repr(notifier) and PASSWORD not in str(notifier)
    assert "password='***'" in repr(notifier)

    with pytest.raises(TransportError) as caught:  # the sink offers no AUTH without TLS
        notifier.send(make_alert())

    assert caught.value.permanent is True
    assert "AUTH" in caught.value.message
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)


# --- TLS (needs the openssl command) -----------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a throwaway certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def starttls_notifier(sink: SmtpSink, certificate: tuple[Path, Path]) -> EmailNotifier:
    """A notifier that logs in as 'webcare' with PASSWORD over STARTTLS, trusting the test cert."""
    return notifier_for(
        sink.port,
        security="starttls",
        username="webcare",
        password=PASSWORD,
        ssl_context=client_context(certificate),
    )


def test_starttls_with_login_delivers(certificate: tuple[Path, Path]) -> None:
    with SmtpSink(
        tls_context=server_context(certificate), credentials={"webcare": PASSWORD}
    ) as sink:
        starttls_notifier(sink, certificate).send(make_alert())

        [mail] = sink.wait_for(1)
        assert mail.login == "webcare"


def test_a_wrong_password_is_permanent_and_not_repeated(certificate: tuple[Path, Path]) -> None:
    with SmtpSink(
        tls_context=server_context(certificate), credentials={"webcare": "other"}
    ) as sink:
        notifier = starttls_notifier(sink, certificate)

        with pytest.raises(TransportError, match="AUTH: 535") as caught:
            notifier.send(make_alert())

    assert caught.value.permanent is True
    assert PASSWORD not in str(caught.value)


def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    with SmtpSink(ssl_context=server_context(certificate)) as sink:
        notifier = notifier_for(sink.port, security="ssl", ssl_context=client_context(certificate))

        notifier.send(make_alert())

        assert len(sink.wait_for(1)) == 1


def test_an_untrusted_certificate_is_permanent(certificate: tuple[Path, Path]) -> None:
    with SmtpSink(tls_context=server_context(certificate)) as sink:
        notifier = notifier_for(sink.port, security="starttls")  # system CAs only

        with pytest.raises(TransportError, match="certificate") as caught:
            notifier.send(make_alert())

    assert caught.value.permanent is True


# --- build_notifier ----------------------------------------------------------------------------


RECEIVER = Receiver(id="team", type="email", to=TO)
WITH_LOGIN = MainFile(email=settings(25, username="webcare"))


@pytest.mark.parametrize(
    ("main", "env", "expected"),
    [
        (MainFile(), {}, "email receiver 'team' inactive: config.toml has no [email] section"),
        (WITH_LOGIN, {}, "environment variable SMTP_PASSWORD is not set"),
        (WITH_LOGIN, {"SMTP_PASSWORD": ""}, "environment variable SMTP_PASSWORD is empty"),
        (
            MainFile(email=settings(25, username="webcare", password_env="EEMLAND_SMTP")),
            {"SMTP_PASSWORD": PASSWORD},
            "environment variable EEMLAND_SMTP is not set",
        ),
    ],
)
def test_build_notifier_says_which_setting_or_variable_is_missing(
    main: MainFile, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(NotifierUnavailable) as caught:
        build_notifier(RECEIVER, main, TEMPLATES, env=env)

    assert expected in str(caught.value)


def test_build_notifier_names_a_missing_template(tmp_path: Path) -> None:
    with pytest.raises(NotifierUnavailable, match=r"email_subject\.txt\.j2"):
        build_notifier(RECEIVER, MainFile(email=settings(25)), tmp_path, env={})


def test_build_notifier_gives_a_working_email_notifier(smtp: SmtpSink) -> None:
    main = MainFile(email=settings(smtp.port, username="webcare"))

    notifier = build_notifier(RECEIVER, main, TEMPLATES, env={"SMTP_PASSWORD": PASSWORD})

    assert isinstance(notifier, EmailNotifier)
    assert notifier.to == TO
    assert PASSWORD not in repr(notifier)


def test_a_handle_that_already_starts_with_at_is_shown_with_one() -> None:
    message = notifier_for(closed_port()).render(make_alert(handle="@joost@mastodon.nl"))
    for kind in ("plain", "html"):
        body = message.get_body((kind,)).get_content()
        assert "@joost@mastodon.nl" in body
        assert "@@" not in body


def test_an_email_says_how_to_give_feedback_except_on_alerts_about_listener() -> None:
    notifier = notifier_for(closed_port())
    message = notifier.render(make_alert())
    for kind in ("plain", "html"):
        body = message.get_body((kind,)).get_content()
        assert "listener feedback 42 not-relevant" in body
        assert "listener feedback 42 wrong-branch --branch ID" in body
    health = replace(make_alert(), org_id="listener", org_name="listener")
    for kind in ("plain", "html"):
        assert "listener feedback" not in notifier.render(health).get_body((kind,)).get_content()


# --- Message-IDs, follow-ups, escalations ------------------------------------------------------


MSGID = re.compile(r"^<alert-42\.team\.[0-9a-f]{8}@bieb\.test>$")


def test_a_resent_alert_carries_the_same_message_id(smtp: SmtpSink) -> None:
    first = notifier_for(smtp.port).send(make_alert())
    again = notifier_for(smtp.port).send(make_alert())  # a new process, after a crash

    mails = smtp.wait_for(2)
    ids = [m.message["Message-ID"] for m in mails]
    assert ids[0] == ids[1] == first == again
    assert MSGID.match(ids[0]), ids[0]
    assert mails[0].message["X-Listener-Alert-Id"] == "42"


def test_the_message_id_differs_per_alert_receiver_and_sender() -> None:
    def msgid(alert_id: int = 42, receiver_id: str = "team", **overrides: Any) -> str:
        notifier = notifier_for(closed_port(), receiver_id=receiver_id, **overrides)
        return str(notifier.render(replace(make_alert(), alert_id=alert_id))["Message-ID"])

    base = msgid()
    assert MSGID.match(base), base
    assert msgid(alert_id=43).startswith("<alert-43.team.")
    assert msgid(receiver_id="on-call").startswith("<alert-42.on-call.")
    other_sender = msgid(sender="Listener <alerts@bieb.test>")
    assert other_sender.startswith("<alert-42.team.") and other_sender != base
    assert msgid(sender="listener@example.org").endswith("@example.org>")


def test_a_follow_up_replies_to_the_parents_message_id(smtp: SmtpSink) -> None:
    notifier = notifier_for(smtp.port)
    parent_ref = notifier.send(make_alert())
    follow = FollowUp(parent_alert_id=42, kind="reply", parent_text="eerder", parent_ref=parent_ref)
    child = replace(make_alert(), alert_id=43, follow_up=follow)

    child_ref = notifier.send(child)

    _, mail = smtp.wait_for(2)
    assert mail.message["In-Reply-To"] == parent_ref
    assert mail.message["References"] == parent_ref
    assert child_ref == mail.message["Message-ID"] != parent_ref
    assert mail.message["Subject"].startswith("Re: [CRITICAL]")
    text = mail.message.get_body(("plain",)).get_content()
    assert '↳ reply to alert #42: "eerder"' in text


def escalation(parent_ref: str | None = None) -> AlertMessage:
    follow = FollowUp(
        parent_alert_id=12, kind="escalation", parent_level="critical", parent_ref=parent_ref
    )
    return replace(make_alert(), follow_up=follow)


def test_an_escalation_says_so_in_the_subject_and_on_the_first_line(smtp: SmtpSink) -> None:
    notifier_for(smtp.port, receiver_id="on-call").send(escalation())

    [mail] = smtp.wait_for(1)
    message = mail.message
    assert message["Subject"].startswith(
        "[Escalated] not acknowledged: [CRITICAL] Bibliotheek Eemland / Vathorst: De bieb"
    )
    assert message["Message-ID"].startswith("<alert-42.on-call.")
    assert "In-Reply-To" not in message  # the parent never reached the on-call receiver
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    first = "ESCALATED: not acknowledged in time: escalation of alert #12"
    assert text.splitlines()[0] == first
    assert first in html
    assert html.index(first) < html.index("De bieb in Vathorst")
    assert "<title>ESCALATED · CRITICAL" in html


@pytest.mark.parametrize("kind", ["reply", "duplicate", "spike", "reach", "escalation"])
def test_every_follow_up_kind_says_what_it_follows(kind: str) -> None:
    alert = replace(make_alert(), follow_up=FollowUp(parent_alert_id=12, kind=kind))
    message = notifier_for(closed_port()).render(alert)
    line = follow_up_line(alert)
    assert line.endswith("#12")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    words = line.removeprefix("↳ ")
    assert words in text and words in html
    assert "escalation" not in text.lower() or kind == "escalation"


# --- digests -----------------------------------------------------------------------------------


LONG = "Lang verhaal over de bieb. " * 30  # 810 characters


def make_digest(reason: str = "digest", digest_id: int = 3) -> Digest:
    first = make_alert()
    second = replace(
        support_alert(LONG + "\nEINDE", alert_id=43, url="ftp://files.example/x", name="Piet"),
        level="high",
        reasons=["reach", "angry tone"],
        branch_id=None,
        branch_name=None,
    )
    post = replace(second.post, created_at=datetime(2024, 5, 1, 20, 15, tzinfo=UTC))
    third = replace(
        make_alert(), alert_id=44, level="low", reasons=[], post=replace(post, url=None)
    )
    return Digest(
        digest_id=digest_id,
        receiver="team",
        route="routes.toml#1",
        reason=reason,
        opened_at="2024-05-01T12:05:00+00:00",
        due_at="2024-05-01T21:00:00+00:00",
        alerts=[first, replace(second, post=post), third],
    )


def test_a_digest_is_one_mail_with_a_row_per_alert(smtp: SmtpSink) -> None:
    digest = make_digest()

    reference = notifier_for(smtp.port).send_digest(digest)

    [mail] = smtp.wait_for(1)
    message = mail.message
    assert mail.rcpt_tos == TO
    assert message["Subject"] == "Digest: 3 alerts (1 critical, 1 high)" == digest.title
    assert reference == message["Message-ID"]
    assert re.match(r"^<digest-3\.team\.[0-9a-f]{8}@bieb\.test>$", reference), reference
    assert message["X-Listener-Digest-Id"] == "3"
    assert message["Auto-Submitted"] == "auto-generated"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()

    rows = re.findall(r'<tr style="vertical-align:top;">(.*?)</tr>', html, re.S)
    assert len(rows) == 3
    for fact in ["01-05-2024 14:03 CEST", "critical", "Bibliotheek Eemland / Vathorst",
                 "Jan Jansen (@jan)", "De bieb in Vathorst is alweer dicht?!",
                 '<a href="https://social.example/@jan/1">open</a>',
                 "closure complaint"]:  # fmt: skip
        assert fact in rows[0], fact
    for fact in ["01-05-2024 22:15 CEST", "high", "Piet (@jan)", "reach<br>angry tone"]:
        assert fact in rows[1], fact
    assert ">Bibliotheek Eemland<" in rows[1]  # no branch: the organisation
    assert "<a " not in rows[1] and "ftp://" not in rows[1]  # only http(s) links
    assert "<a " not in rows[2]
    assert "EINDE" not in html and "EINDE" not in text  # clipped
    clipped = re.search(r"(Lang verhaal.*?…)", rows[1])
    assert clipped is not None and len(clipped.group(1)) == 300

    for fact in ["Digest: 3 alerts (1 critical, 1 high)",
                 "1. 01-05-2024 14:03 CEST · CRITICAL · Bibliotheek Eemland / Vathorst",
                 "Author:  Jan Jansen (@jan)",
                 "Post:    De bieb in Vathorst is alweer dicht?!",
                 "Link:    https://social.example/@jan/1",
                 "Urgency: closure complaint",
                 "2. 01-05-2024 22:15 CEST · HIGH · Bibliotheek Eemland",
                 "Urgency: reach; angry tone",
                 "3. 01-05-2024 22:15 CEST · LOW",
                 "listener digest #3 · route routes.toml#1"]:  # fmt: skip
        assert fact in text, fact
    post_lines = [line for line in text.splitlines() if line.startswith("   Post:")]
    assert len(post_lines) == 3 and len(post_lines[1]) == len("   Post:    ") + 300
    assert "ftp://" not in text


def test_a_resent_digest_carries_the_same_message_id(smtp: SmtpSink) -> None:
    first = notifier_for(smtp.port).send_digest(make_digest())
    again = notifier_for(smtp.port).send_digest(make_digest())
    other = notifier_for(smtp.port).send_digest(make_digest(digest_id=4))
    assert first == again != other
    assert str(other).startswith("<digest-4.team.")
    assert [m.message["Message-ID"] for m in smtp.wait_for(3)] == [first, again, other]


def test_a_quiet_hours_digest_says_so() -> None:
    message = notifier_for(closed_port()).render_digest(make_digest(reason="quiet"))
    assert message["Subject"] == "Held during quiet hours: 3 alerts (1 critical, 1 high)"
    text = message.get_body(("plain",)).get_content()
    assert "Held during quiet hours, 01-05-2024 14:05 – 01-05-2024 23:00 CEST." in text


def copy_templates(folder: Path) -> Path:
    for template in TEMPLATES.iterdir():
        shutil.copy(template, folder / template.name)
    return folder


def test_the_digest_subject_never_sees_post_text(smtp: SmtpSink, tmp_path: Path) -> None:
    copy_templates(tmp_path)
    (tmp_path / "digest_subject.txt.j2").write_text("{{ digest.alerts[0].post.text }}\n")
    notifier = EmailNotifier(settings(smtp.port), None, TO, tmp_path, receiver_id="team")

    with pytest.raises(TransportError, match="template") as caught:
        notifier.send_digest(make_digest())

    assert caught.value.permanent is False  # fixed template, next attempt delivers
    assert smtp.messages == []


def test_a_digest_subject_is_one_line(smtp: SmtpSink, tmp_path: Path) -> None:
    copy_templates(tmp_path)
    (tmp_path / "digest_subject.txt.j2").write_text(
        "{{ title }}\r\nBcc: evil@example.org\n{{ route }}\u2028{{ count }}\n"
    )
    EmailNotifier(settings(smtp.port), None, TO, tmp_path).send_digest(make_digest())

    [mail] = smtp.wait_for(1)
    # (.strip(): Python's parser keeps the space of a header folded right after 'Subject:')
    assert mail.message["Subject"].strip() == (
        "Digest: 3 alerts (1 critical, 1 high) Bcc: evil@example.org routes.toml#1 3"
    )
    assert "Bcc" not in mail.message and mail.rcpt_tos == TO


@pytest.mark.parametrize(
    ("reply", "permanent"), [("451 4.3.0 try later", False), ("554 5.6.0 bad content", True)]
)
def test_a_digest_smtp_failure_is_classified_like_an_alert(
    smtp: SmtpSink, reply: str, permanent: bool
) -> None:
    smtp.reply_next(1, reply)

    with pytest.raises(TransportError) as caught:
        notifier_for(smtp.port).send_digest(make_digest())

    assert caught.value.permanent is permanent
    assert f"DATA: {reply}" in caught.value.message


def test_a_digest_to_a_server_that_is_down_is_transient() -> None:
    with pytest.raises(TransportError, match="refused") as caught:
        notifier_for(closed_port()).send_digest(make_digest())
    assert caught.value.permanent is False


@pytest.mark.parametrize("name", ["digest_subject.txt.j2", "digest.txt.j2", "digest.html.j2"])
def test_a_missing_digest_template_is_named_by_check_and_build_notifier(
    tmp_path: Path, name: str
) -> None:
    receiver = '[[receivers]]\nid = "team"\ntype = "email"\nto = ["webcare@bieb.test"]\n'
    main = '[email]\nhost = "127.0.0.1"\nsender = "listener@bieb.test"\n'
    config = write_setup(tmp_path, extra_main=main, extra_receivers=receiver)
    load_config(config)  # complete: no problem
    templates = tmp_path / "alerts" / "templates"
    (templates / name).unlink()

    with pytest.raises(ConfigError) as caught:
        load_config(config)

    [problem] = caught.value.problems
    assert problem.file == templates / name
    assert "template missing (an email receiver needs it)" in str(problem)
    with pytest.raises(NotifierUnavailable, match=re.escape(name)):
        build_notifier(RECEIVER, MainFile(email=settings(25)), templates, env={})


def test_build_notifier_gives_the_receiver_id_to_the_message_ids() -> None:
    notifier = build_notifier(RECEIVER, MainFile(email=settings(25)), TEMPLATES, env={})
    assert isinstance(notifier, EmailNotifier)
    assert notifier.receiver_id == "team"
    assert "receiver_id='team'" in repr(notifier)
    message = notifier.render_digest(make_digest())
    assert message["Message-ID"].startswith("<digest-3.team.")


def test_the_weekly_report_keeps_a_random_message_id() -> None:
    from listener.report import Report

    until = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    report = Report(since=until - timedelta(days=7), until=until, org=None)
    notifier = notifier_for(closed_port())
    first, second = (notifier.render_report(report)["Message-ID"] for _ in range(2))
    assert first != second
    assert first.endswith("@bieb.test>") and not first.startswith("<alert-")
