"""Email notifier: renders an alert with the user's Jinja2 templates and sends it over SMTP.

Templates (in the alerts templates directory, users tune them; the names are
`listener.config.loader.TEMPLATES`, which `listener check` checks): `email_subject.txt.j2`,
`email.txt.j2` (plain text, no escaping) and `email.html.j2` (HTML, autoescaped). Each gets
`alert` (the `AlertMessage`), `post` (`alert.post`), `local_time` (the post's time in the
configured time zone) and `follow_up_line` (listener's '↳ reply to alert #12', '' when the alert
follows none); undefined names are errors, not blanks. The HTML templates also have the
`linebreaks` filter (escape, then newline → <br>).

`send_digest` mails a `listener.alert.Digest` (the alerts a route held back) as one message,
from `digest_subject.txt.j2`, `digest.txt.j2` and `digest.html.j2`: a table (HTML) or lines
(text) with one row per alert (`items`: `DigestItem`s, their post text clipped to
`DIGEST_TEXT_MAX` characters). The digest's subject template sees only listener's own words and
numbers (`title`, `count`, `levels`, `reason`, `route`, times), never post text.

Message-IDs are deterministic: `message_id(idempotency_key(alert_id, receiver_id), sender)`,
e.g. '<alert-12.webcare-mail.3f2a9c1b@bieb.example>' (a digest: 'digest-3.…'), so a re-send after
a crash or an unknown outcome carries the same Message-ID and mail systems see one message. The
8 hex digits hash the sender's address with the key, so two installations never share one. The
weekly report's Message-ID is random (it has no idempotency key).

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
it. An escalation (follow-up kind "escalation": a critical alert nobody acknowledged in time,
re-sent to the on-call receiver) starts its subject with '[Escalated] not acknowledged:'
instead, and the templates say so on their first line. The templates show incidents
(`alert.incident.members`) and follow-ups.

`send_report` mails the weekly report (`listener.report`) the same way, from the templates
`report_subject.txt.j2`, `report.txt.j2` and `report.html.j2`, the chart as an inline PNG.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape
from rich.console import Console

from listener.alert import AlertMessage, Digest
from listener.config.loader import TEMPLATES
from listener.config.model import EmailSettings, MainFile, Receiver
from listener.notify import (
    NotifierUnavailable,
    TransportError,
    follow_up_line,
    headline,
    idempotency_key,
    scrub,
    secret_from_env,
)

if TYPE_CHECKING:
    from listener.report import Report

log = logging.getLogger(__name__)

(
    SUBJECT_TEMPLATE,
    TEXT_TEMPLATE,
    HTML_TEMPLATE,
    DIGEST_SUBJECT_TEMPLATE,
    DIGEST_TEXT_TEMPLATE,
    DIGEST_HTML_TEMPLATE,
) = TEMPLATES
SUBJECT_MAX = 200
DIGEST_TEXT_MAX = 300  # characters of each post's text in a digest
ESCALATED = "[Escalated] not acknowledged:"  # starts an escalation's subject
_MSGID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no < > or spaces
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # RFC 5322 atext
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
REPORT_TITLE = "listener weekly report"

# The SMTP command each exception comes from, for messages a person can act on.
_STAGES: dict[type[Exception], str] = {
    smtplib.SMTPConnectError: "greeting",
    smtplib.SMTPHeloError: "EHLO",
    smtplib.SMTPAuthenticationError: "AUTH",
    smtplib.SMTPSenderRefused: "MAIL FROM",
    smtplib.SMTPDataError: "DATA",
}


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One alert of a digest as the digest templates show it: one line each, all but `alert`
    already cut to size (the text and author still untrusted: the HTML template escapes them)."""

    alert: AlertMessage
    local_time: datetime  # the post's time in the configured time zone
    where: str  # 'Bibliotheek Eemland / Vathorst'
    author: str  # 'Jan Jansen (@jan)', or ''
    text: str  # the post text on one line, at most DIGEST_TEXT_MAX characters
    url: str | None  # the post's link when it is http(s), else None
    follow_up: str  # follow_up_line(alert), or ''


class EmailNotifier:
    """Sends each alert as one multipart (text + HTML) email to a fixed list of recipients."""

    def __init__(
        self,
        settings: EmailSettings,
        password: str | None,
        to: list[str],
        templates_dir: Path,
        *,
        receiver_id: str = "email",
        ssl_context: ssl.SSLContext | None = None,
        timezone: str = "Europe/Amsterdam",
    ) -> None:
        self.settings = settings
        self.to = list(to)
        self.receiver_id = receiver_id
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
        self._digest_subject = text_env.get_template(DIGEST_SUBJECT_TEMPLATE)
        self._digest_text = text_env.get_template(DIGEST_TEXT_TEMPLATE)
        self._digest_html = html_env.get_template(DIGEST_HTML_TEMPLATE)

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
            return cls(
                settings,
                password,
                receiver.to,
                templates_dir,
                receiver_id=receiver.id,
                timezone=main.timezone,
            )
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
            f"username={s.username!r}, password={password!r}, to={self.to!r}, "
            f"receiver_id={self.receiver_id!r})"
        )

    # --- rendering -----------------------------------------------------------------------------

    def render(self, alert: AlertMessage) -> EmailMessage:
        """The complete message, headers included; raises jinja2.TemplateError."""
        context = {
            "alert": alert,
            "post": alert.post,
            "local_time": alert.post.created_at.astimezone(self.zone),
            "follow_up_line": follow_up_line(alert),
        }
        subject = one_line(self._subject.render(context)) or headline(alert)
        parent_id = parent_message_id(alert)
        follow = alert.follow_up
        if follow is not None and follow.kind == "escalation":
            if not subject.startswith(ESCALATED):
                subject = f"{ESCALATED} {subject}"
        elif follow is not None and not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        key = idempotency_key(alert.alert_id, self.receiver_id)
        message = self._message(subject, message_id(key, self.settings.sender))
        message["X-Listener-Alert-Id"] = str(alert.alert_id)
        if parent_id is not None:
            message["In-Reply-To"] = parent_id
            message["References"] = parent_id
        message.set_content(self._text.render(context))
        message.add_alternative(self._html.render(context), subtype="html")
        return message

    def render_digest(self, digest: Digest) -> EmailMessage:
        """The digest as one message, headers included; raises jinja2.TemplateError."""
        opened_at = _local(digest.opened_at, self.zone)
        due_at = _local(digest.due_at, self.zone)
        levels: dict[str, int] = {}
        for alert in digest.alerts:
            levels[alert.level] = levels.get(alert.level, 0) + 1
        # Only listener's own words and numbers: a subject never shows post text.
        subject_context = {
            "title": digest.title,
            "count": len(digest.alerts),
            "levels": levels,
            "reason": digest.reason,
            "route": digest.route,
            "opened_at": opened_at,
            "due_at": due_at,
        }
        subject = one_line(self._digest_subject.render(subject_context)) or digest.title
        context = subject_context | {
            "digest": digest,
            "items": [self._digest_item(alert) for alert in digest.alerts],
            "timezone": self.zone.key,
        }
        key = idempotency_key(digest.digest_id, self.receiver_id, digest=True)
        message = self._message(subject, message_id(key, self.settings.sender))
        message["X-Listener-Digest-Id"] = str(digest.digest_id)
        message.set_content(self._digest_text.render(context))
        message.add_alternative(self._digest_html.render(context), subtype="html")
        return message

    def _digest_item(self, alert: AlertMessage) -> DigestItem:
        post = alert.post
        author = ""
        if post.author is not None:
            name, handle = post.author.name or "", (post.author.handle or "").lstrip("@")
            if name and handle:
                author = f"{name} (@{handle})"
            else:
                author = name or (f"@{handle}" if handle else "")
        url = post.url if post.url and post.url.startswith(("https://", "http://")) else None
        return DigestItem(
            alert=alert,
            local_time=post.created_at.astimezone(self.zone),
            where=one_line(alert.where),
            author=one_line(author),
            text=clip(one_line(post.text), DIGEST_TEXT_MAX) or "(no text)",
            url=url,
            follow_up=follow_up_line(alert),
        )

    def _message(self, subject: str, msgid: str) -> EmailMessage:
        """A message with the headers every alert and digest has; `subject` is one line."""
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = clip(subject, SUBJECT_MAX)
        message["Date"] = format_datetime(datetime.now(self.zone))
        message["Message-ID"] = msgid
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
        return message

    # --- sending -------------------------------------------------------------------------------

    def send(self, alert: AlertMessage) -> str | None:
        try:
            message = self.render(alert)
        except jinja2.TemplateError as exc:
            raise self._template_error(exc) from exc
        return self._send(message, f"email alert {alert.alert_id}")

    def send_digest(self, digest: Digest) -> str | None:
        """Mail the digest as one message; returns its Message-ID. Errors as `send`."""
        try:
            message = self.render_digest(digest)
        except jinja2.TemplateError as exc:
            raise self._template_error(exc) from exc
        return self._send(message, f"email digest {digest.digest_id}")

    def _template_error(self, exc: jinja2.TemplateError) -> TransportError:
        # Transient on purpose: templates reload when edited, so a fixed template delivers.
        return TransportError(
            f"email template error ({type(exc).__name__}: {exc}); fix the template in "
            f"{self.templates_dir}",
            permanent=False,
        )

    def _send(self, message: EmailMessage, what: str) -> str:
        """Deliver; the Message-ID, with the refused recipients when some were refused (logged,
        not raised: a retry would mail the accepted ones twice)."""
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
        log.warning("%s delivered, but recipients refused: %s", what, summary)
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
        subject = one_line(rendered.subject) or title
        # A random Message-ID: the weekly report has no idempotency key.
        message = self._message(subject, make_msgid(domain=_domain(self.settings.sender)))
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
        return self._send(message, "report")

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


def message_id(key: str, sender: str) -> str:
    """The Message-ID of the message with idempotency key `key` ('alert-12:webcare-mail'):
    '<alert-12.webcare-mail.3f2a9c1b@bieb.example>', the same every time it is rendered. The
    hex digits are a hash of the sender's address and the key; the domain is the sender's."""
    address = (parseaddr(sender)[1] or sender).strip().lower()
    tag = hashlib.sha256(f"{address}\n{key}".encode()).hexdigest()[:8]
    local = ".".join(part for part in _NOT_ATEXT.split(key) if part)
    domain = _domain(sender) or ""
    if not _DOMAIN.match(domain):
        domain = "listener.invalid"
    return f"<{local}.{tag}@{domain}>" if local else f"<{tag}@{domain}>"


def one_line(text: str) -> str:
    """`text` with all whitespace (CR, LF, tabs, U+2028, …) collapsed to single spaces."""
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _local(iso: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) in `zone`."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(zone)


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
