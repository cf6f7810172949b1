"""Email notifier: renders an alert with the user's Jinja2 templates and sends it over SMTP.

Templates (in the alerts templates directory, users tune them): `email_subject.txt.j2`,
`email.txt.j2` (plain text, no escaping) and `email.html.j2` (HTML, autoescaped). Each gets
`alert` (the `AlertMessage`), `post` (`alert.post`) and `local_time` (the post's time in the
configured time zone); undefined names are errors, not blanks. The HTML templates also have the
`linebreaks` filter (escape, then newline → <br>).

Header injection is impossible by construction: the subject has all whitespace (CR/LF included)
collapsed to single spaces, every other header comes from config, and the envelope recipients are
the configured `to` list, never read back from headers.

Errors: SMTP 4xx and network trouble (refused, timeout, disconnect) are transient; SMTP 5xx and
configuration problems (no STARTTLS/AUTH support, untrusted certificate) are permanent. When some
recipients are refused and others accepted, `send` does not raise (a retry would mail the accepted
ones twice): it logs a warning and names the refused ones in the returned reference.
The password is kept out of repr and out of every error message.

A follow-up (`alert.follow_up`) is a reply: its subject starts with 'Re: ', and when the parent
was mailed by this receiver, `In-Reply-To` and `References` carry the parent's Message-ID (which
listener made itself and stored in the outbox; never text from a post), so mail clients thread
it. The templates show incidents (`alert.incident.members`) and follow-ups.

`send_report` mails the weekly report (`listener.report`) the same way, from the templates
`report_subject.txt.j2`, `report.txt.j2` and `report.html.j2`, the chart as an inline PNG.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape
from rich.console import Console

from listener.alert import AlertMessage
from listener.config.model import EmailSettings, MainFile, Receiver
from listener.notify import NotifierUnavailable, TransportError, headline, scrub, secret_from_env

if TYPE_CHECKING:
    from listener.report import Report

log = logging.getLogger(__name__)

SUBJECT_TEMPLATE = "email_subject.txt.j2"
TEXT_TEMPLATE = "email.txt.j2"
HTML_TEMPLATE = "email.html.j2"
SUBJECT_MAX = 200
_MSGID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no < > or spaces
REPORT_TITLE = "listener weekly report"

# The SMTP command each exception comes from, for messages a person can act on.
_STAGES: dict[type[Exception], str] = {
    smtplib.SMTPConnectError: "greeting",
    smtplib.SMTPHeloError: "EHLO",
    smtplib.SMTPAuthenticationError: "AUTH",
    smtplib.SMTPSenderRefused: "MAIL FROM",
    smtplib.SMTPDataError: "DATA",
}


class EmailNotifier:
    """Sends each alert as one multipart (text + HTML) email to a fixed list of recipients."""

    def __init__(
        self,
        settings: EmailSettings,
        password: str | None,
        to: list[str],
        templates_dir: Path,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timezone: str = "Europe/Amsterdam",
    ) -> None:
        self.settings = settings
        self.to = list(to)
        self.templates_dir = Path(templates_dir)
        self.zone = ZoneInfo(timezone)
        self._password = password
        self._ssl_context = ssl_context
        loader = jinja2.FileSystemLoader(self.templates_dir)
        text_env = jinja2.Environment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            autoescape=False,
            keep_trailing_newline=True,
        )
        html_env = jinja2.Environment(
            loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, autoescape=True
        )
        html_env.filters["linebreaks"] = _linebreaks
        # Loading now turns a missing or broken template into an error at start-up.
        self._subject = text_env.get_template(SUBJECT_TEMPLATE)
        self._text = text_env.get_template(TEXT_TEMPLATE)
        self._html = html_env.get_template(HTML_TEMPLATE)

    @classmethod
    def from_receiver(
        cls,
        receiver: Receiver,
        main: MainFile,
        *,
        templates_dir: Path,
        env: Mapping[str, str],
        console: Console | None = None,
    ) -> EmailNotifier:
        settings = main.email
        inactive = f"email receiver {receiver.id!r} inactive"
        if settings is None:
            raise NotifierUnavailable(f"{inactive}: config.toml has no [email] section")
        password = None
        if settings.username:
            needed = f" (needed to log in as {settings.username!r})"
            password = secret_from_env(env, settings.password_env, inactive, needed)
        try:
            return cls(settings, password, receiver.to, templates_dir, timezone=main.timezone)
        except jinja2.TemplateError as exc:
            name = getattr(exc, "name", None) or exc.message or ""
            raise NotifierUnavailable(
                f"{inactive}: template {name} in {templates_dir}: {type(exc).__name__}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        s = self.settings
        password = "***" if self._password else None
        return (
            f"EmailNotifier(host={s.host!r}, port={s.port}, security={s.security!r}, "
            f"username={s.username!r}, password={password!r}, to={self.to!r})"
        )

    # --- rendering -----------------------------------------------------------------------------

    def render(self, alert: AlertMessage) -> EmailMessage:
        """The complete message, headers included; raises jinja2.TemplateError."""
        context = {
            "alert": alert,
            "post": alert.post,
            "local_time": alert.post.created_at.astimezone(self.zone),
        }
        subject = " ".join(self._subject.render(context).split()) or headline(alert)
        parent_id = parent_message_id(alert)
        if alert.follow_up is not None and not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1] + "…"
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(self.zone))
        message["Message-ID"] = make_msgid(domain=_domain(self.settings.sender))
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
        message["X-Listener-Alert-Id"] = str(alert.alert_id)
        if parent_id is not None:
            message["In-Reply-To"] = parent_id
            message["References"] = parent_id
        message.set_content(self._text.render(context))
        message.add_alternative(self._html.render(context), subtype="html")
        return message

    # --- sending -------------------------------------------------------------------------------

    def send(self, alert: AlertMessage) -> str | None:
        try:
            message = self.render(alert)
        except jinja2.TemplateError as exc:
            # Transient on purpose: templates reload when edited, so a fixed template delivers.
            raise TransportError(
                f"email template error ({type(exc).__name__}: {exc}); fix the template in "
                f"{self.templates_dir}",
                permanent=False,
            ) from exc
        msgid = str(message["Message-ID"])
        try:
            refused = self._deliver(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from None
        if not refused:
            return msgid
        summary = "; ".join(
            f"{addr} {_reply(code, text)}" for addr, (code, text) in refused.items()
        )
        summary = scrub(summary, self._password)
        log.warning("email alert %s delivered, but recipients refused: %s", alert.alert_id, summary)
        return f"{msgid} (refused: {summary})"

    # --- the weekly report ----------------------------------------------------------------------

    def render_report(
        self, report: Report, *, org_name: str | None = None, title: str = REPORT_TITLE
    ) -> EmailMessage:
        """The report as one message: text, and HTML with the daily chart as an inline PNG
        (a `cid:` image: mail clients drop inline SVG). Raises jinja2.TemplateError."""
        from listener.report import chart_png, render_report

        cid = make_msgid(domain=_domain(self.settings.sender))
        img = f'<img src="cid:{cid[1:-1]}" width="800" height="260" alt="posts and alerts per day">'
        rendered = render_report(
            report, self.templates_dir, chart=img, org_name=org_name, title=title
        )
        subject = rendered.subject or title
        if len(subject) > SUBJECT_MAX:
            subject = subject[: SUBJECT_MAX - 1] + "…"
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(self.zone))
        message["Message-ID"] = make_msgid(domain=_domain(self.settings.sender))
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        html_part = message.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(
            chart_png(report), "image", "png", cid=cid, filename="posts-and-alerts-per-day.png"
        )
        return message

    def send_report(
        self, report: Report, *, org_name: str | None = None, title: str = REPORT_TITLE
    ) -> str:
        """Mail the report to this receiver's addresses; returns the Message-ID. Raises
        `TransportError` like `send` (a broken template is permanent here: the job is weekly)."""
        try:
            message = self.render_report(report, org_name=org_name, title=title)
        except jinja2.TemplateError as exc:
            raise TransportError(
                f"report template error ({type(exc).__name__}: {exc}); fix the template in "
                f"{self.templates_dir}",
                permanent=True,
            ) from exc
        msgid = str(message["Message-ID"])
        try:
            refused = self._deliver(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from None
        if refused:
            summary = "; ".join(
                f"{addr} {_reply(code, text)}" for addr, (code, text) in refused.items()
            )
            summary = scrub(summary, self._password)
            log.warning("report delivered, but recipients refused: %s", summary)
            return f"{msgid} (refused: {summary})"
        return msgid

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        s = self.settings
        timeout = s.timeout.total_seconds()
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=self._tls())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=self._tls())
            if s.username:
                smtp.login(s.username, self._password or "")
            envelope_to = [parseaddr(addr)[1] or addr for addr in self.to]
            sender = parseaddr(s.sender)[1] or s.sender
            return smtp.send_message(message, from_addr=sender, to_addrs=envelope_to)
        finally:
            _close_quietly(smtp)

    def _tls(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _classify(self, exc: Exception) -> TransportError:
        where = f"smtp {self.settings.host}:{self.settings.port}"
        permanent: bool
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            replies = exc.recipients.items()
            detail = "; ".join(f"{addr} {_reply(code, text)}" for addr, (code, text) in replies)
            message = f"{where}: all recipients refused: {detail}"
            permanent = all(code >= 500 for _, (code, _) in replies)
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            message, permanent = f"{where}: server disconnected: {exc}", False
        elif isinstance(exc, smtplib.SMTPResponseException):
            stage = next((v for k, v in _STAGES.items() if isinstance(exc, k)), "reply")
            message = f"{where}: {stage}: {_reply(exc.smtp_code, exc.smtp_error)}"
            permanent = 500 <= exc.smtp_code < 600 and not isinstance(exc, smtplib.SMTPConnectError)
        elif isinstance(exc, ssl.SSLCertVerificationError):
            message, permanent = f"{where}: TLS certificate not trusted: {exc.verify_message}", True
        elif isinstance(exc, smtplib.SMTPException):  # no STARTTLS/AUTH/SMTPUTF8 support, …
            message, permanent = f"{where}: {type(exc).__name__}: {exc}", True
        else:  # OSError: refused, unreachable, timeout, TLS handshake
            message, permanent = f"{where}: cannot deliver: {type(exc).__name__}: {exc}", False
        return TransportError(scrub(message, self._password), permanent=permanent)


def parent_message_id(alert: AlertMessage) -> str | None:
    """The Message-ID a follow-up answers: the first word of the parent's stored reference
    ('<…@…> (refused: …)' keeps the id first), if it is a well-formed Message-ID."""
    follow = alert.follow_up
    if follow is None or not follow.parent_ref:
        return None
    first = follow.parent_ref.split(" ", 1)[0]
    return first if _MSGID.match(first) else None


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _close_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT and close; a failing QUIT after an accepted message must not look like a failure."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _domain(sender: str) -> str | None:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or None


def _linebreaks(text: str) -> Markup:
    return Markup("<br>\n").join(escape(line) for line in str(text).splitlines())
