"""A local SMTP server (aiosmtpd) that collects mail and answers what a test tells it to.

    from tests.support.smtp import SmtpSink

    with SmtpSink() as smtp:                           # 127.0.0.1, a free port: smtp.port
        smtp.reply_next(1, "451 4.3.0 try later")      # next DATA answered 451
        smtp.reply_next(1, "550 5.7.1 no")             # the one after: 550
        smtp.refuse_rcpt("x@example.org", "550 5.1.1 unknown")   # every RCPT TO for x@…
        smtp.hang_up_next(1)                           # next DATA: drop the connection, no reply
        ...
        [mail] = smtp.wait_for(1, timeout=5)
        mail.mail_from, mail.rcpt_tos, mail.message["Subject"], mail.message.get_body(("html",))

API
- `SmtpSink(*, tls_context=None, ssl_context=None, credentials=None, port=0)`: `port` 0 takes a
  free one; a given port lets a test bring "the same server" back after it was down.
  `tls_context` offers
  STARTTLS and requires it before MAIL; `ssl_context` makes it implicit TLS (SMTP_SSL);
  `credentials` ({user: password}) offers AUTH PLAIN/LOGIN (only after TLS) and requires it.
- `.port`, `.host` ("127.0.0.1"); `start()`/`stop()` or `with`.
- `.messages`: copies of the accepted mails (`ReceivedMail`: mail_from, rcpt_tos, message as an
  `email.message.EmailMessage` (policy default), raw bytes, login or None), thread-safe.
- `reply_next(n, "451 4.3.0 try later")`: the reply to the next n DATA commands (mail not kept).
- `refuse_rcpt(address, "550 5.1.1 unknown")`: the reply to RCPT TO for that address, until
  `reset()`. `hang_up_next(n)`: close the connection instead of answering the next n DATA.
- `wait_for(count, timeout=5.0)`: block until at least `count` mails were accepted and return
  them, or raise AssertionError saying how many came.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    login: str | None


class _FreePortController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's start-up probe connects."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """aiosmtpd on 127.0.0.1 with a free port; see the module docstring for the full API."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        credentials: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.host = HOST
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._data_replies: deque[str | None] = deque()  # None: hang up
        self._rcpt_replies: dict[str, str] = {}
        self._credentials = credentials
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=self._authenticate, auth_required=True)
        self._controller = _FreePortController(
            _Handler(self),
            hostname=HOST,
            port=port,
            ssl_context=ssl_context,
            server_hostname="smtpsink.test",
            **options,
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    # --- scripting -----------------------------------------------------------------------------

    def reply_next(self, n: int, reply: str) -> None:
        with self._lock:
            self._data_replies.extend([reply] * n)

    def hang_up_next(self, n: int = 1) -> None:
        with self._lock:
            self._data_replies.extend([None] * n)

    def refuse_rcpt(self, address: str, reply: str = "550 5.1.1 unknown user") -> None:
        with self._lock:
            self._rcpt_replies[address.lower()] = reply

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._data_replies.clear()
            self._rcpt_replies.clear()

    # --- observing -----------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"expected {count} mails within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)

    # --- called from the server thread ---------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self._credentials is not None:
            login = data.login.decode("utf-8", "replace")
            password = data.password.decode("utf-8", "replace")
            if self._credentials.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            return self._rcpt_replies.get(address.lower())

    def _data_reply(self) -> tuple[bool, str | None]:
        """(scripted?, reply); a scripted None means hang up."""
        with self._lock:
            if self._data_replies:
                return True, self._data_replies.popleft()
            return False, None

    def _record(self, session: Session, envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            raw=raw,
            login=login,
        )
        with self._lock:
            self._messages.append(mail)
            self._lock.notify_all()


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.sink._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scripted, reply = self.sink._data_reply()
        if scripted and reply is None:
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing"  # never reaches the client: the connection is gone
        if reply is not None:
            return reply
        self.sink._record(session, envelope)
        return "250 OK"
