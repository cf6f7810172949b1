"""A local stand-in that speaks Slack's Web API wire format, so tests never touch the internet.

    from tests.support.slackwire import SlackWireServer

    with SlackWireServer(require_token="xoxb-test") as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        slack.fail_next(1, status=429, retry_after=1)    # next post: HTTP 429 + Retry-After: 1
        slack.error_next(1, "channel_not_found")         # then: HTTP 200 {"ok": false, ...}
        slack.status_next(1, 503)                        # then: HTTP 503
        ...
        [message] = slack.wait_for(1, timeout=5)         # accepted messages, oldest first
        message.channel, message.text, message.blocks, message.metadata, message.token

API
- `SlackWireServer(*, require_token=None, delay=0.0, channel_id="C0TEST")`: a threaded
  `http.server` on 127.0.0.1 with a free port, started by `start()` or `with`, stopped by `stop()`.
- `.base_url`: "http://127.0.0.1:PORT/api/" (pass it to `WebClient(base_url=...)`).
- `POST /api/chat.postMessage`: JSON bodies (what slack-sdk sends, token in
  `Authorization: Bearer`) and form-encoded bodies (token in `Authorization` or a `token` field;
  `blocks` and `metadata` given as JSON strings are decoded). Replies
  `{"ok": true, "channel": channel_id, "ts": "<increasing>", "message": {...}}`; a request
  without `channel` gets `channel_not_found`, one without `text` and `blocks` gets `no_text`.
- `POST /api/auth.test`: `{"ok": true, "user_id": "U0TEST", "team_id": "T0TEST", ...}`.
  Other methods: HTTP 404 `{"ok": false, "error": "unknown_method"}`.
- Scripted answers, consumed in order by the next chat.postMessage requests only (auth.test is
  never scripted): `fail_next(n, status=429, retry_after=1)` (that status, a `Retry-After` header
  unless retry_after is None, body `{"ok": false, "error": "ratelimited"}` for 429),
  `error_next(n, "channel_not_found")` (HTTP 200, ok:false), `status_next(n, 503)` (that status,
  no Retry-After). `reset()` drops scripted answers and recorded messages.
- `delay`: seconds to sleep before answering each request (settable at any time).
- `require_token`: when set, any other token (or none) gets HTTP 200 `invalid_auth`.
- `.messages`: a copy of the accepted messages (`SlackWireMessage`: channel, text, blocks,
  metadata, token, ts, payload), thread-safe. `.requests`: every request seen, as
  (method, HTTP status, error or None). `wait_for(count, timeout=5.0)` blocks until at least
  `count` messages were accepted and returns them, or raises AssertionError saying how many came.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class SlackWireMessage:
    channel: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    token: str | None
    ts: str
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class _Scripted:
    status: int
    error: str
    retry_after: float | None = None


class SlackWireServer:
    """Slack Web API stand-in on 127.0.0.1; see the module docstring for the full API."""

    def __init__(
        self,
        *,
        require_token: str | None = None,
        delay: float = 0.0,
        channel_id: str = "C0TEST",
    ) -> None:
        self.require_token = require_token
        self.delay = delay
        self.channel_id = channel_id
        self._lock = threading.Condition()
        self._messages: list[SlackWireMessage] = []
        self._requests: list[tuple[str, int, str | None]] = []
        self._script: deque[_Scripted] = deque()
        self._counter = 0
        self._epoch = int(time.time())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SlackWireServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="slackwire", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SlackWireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "SlackWireServer is not running"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- scripting -----------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 429, retry_after: float | None = 1) -> None:
        error = "ratelimited" if status == 429 else _status_error(status)
        self._push(n, _Scripted(status, error, retry_after))

    def error_next(self, n: int, error: str) -> None:
        self._push(n, _Scripted(200, error))

    def status_next(self, n: int, status: int) -> None:
        self._push(n, _Scripted(status, _status_error(status)))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._messages.clear()
            self._requests.clear()

    def _push(self, n: int, answer: _Scripted) -> None:
        with self._lock:
            self._script.extend([answer] * n)

    # --- observing -----------------------------------------------------------------------------

    @property
    def messages(self) -> list[SlackWireMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[tuple[str, int, str | None]]:
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SlackWireMessage]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"expected {count} Slack messages within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)

    # --- the API -------------------------------------------------------------------------------

    def _answer(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, body, headers) for one request; records it."""
        status, body, headers = self._decide(method, token, payload)
        with self._lock:
            self._requests.append((method, status, None if body.get("ok") else body.get("error")))
        return status, body, headers

    def _decide(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method not in ("chat.postMessage", "auth.test"):
            return 404, {"ok": False, "error": "unknown_method"}, {}
        if self.require_token is not None and token != self.require_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "auth.test":
            return 200, _auth_test(self.base_url), {}
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            headers = {}
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            return scripted.status, {"ok": False, "error": scripted.error}, headers
        if not payload.get("channel"):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not payload.get("text") and not payload.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        return 200, self._accept(token, payload), {}

    def _accept(self, token: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            ts = f"{self._epoch}.{self._counter:06d}"
            message = SlackWireMessage(
                channel=str(payload["channel"]),
                text=payload.get("text"),
                blocks=payload.get("blocks"),
                metadata=payload.get("metadata"),
                token=token,
                ts=ts,
                payload=payload,
            )
            self._messages.append(message)
            self._lock.notify_all()
        echoed = {
            "type": "message",
            "subtype": "bot_message",
            "text": message.text or "",
            "ts": ts,
            "bot_id": "B0TEST",
        }
        if message.blocks is not None:
            echoed["blocks"] = message.blocks
        if message.metadata is not None:
            echoed["metadata"] = message.metadata
        return {"ok": True, "channel": self.channel_id, "ts": ts, "message": echoed}


def _status_error(status: int) -> str:
    return {
        500: "internal_error",
        502: "bad_gateway",
        503: "service_unavailable",
        504: "request_timeout",
    }.get(status, f"http_{status}")


def _auth_test(base_url: str) -> dict[str, Any]:
    return {
        "ok": True,
        "url": base_url.replace("/api/", "/"),
        "team": "Test Team",
        "user": "listener",
        "team_id": "T0TEST",
        "user_id": "U0TEST",
        "bot_id": "B0TEST",
    }


def _handler_for(server: SlackWireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if server.delay:
                time.sleep(server.delay)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            payload = _parse_body(self.headers.get("Content-Type", ""), raw)
            token = _bearer(self.headers.get("Authorization")) or payload.pop("token", None)
            method = self.path.split("?")[0].removeprefix("/api/")
            status, body, headers = server._answer(method, token, payload)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing to tell it

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(raw.decode("utf-8"))
        return data if isinstance(data, dict) else {}
    form = {key: values[-1] for key, values in parse_qs(raw.decode("utf-8")).items()}
    payload: dict[str, Any] = dict(form)
    for key in ("blocks", "metadata", "attachments"):
        if isinstance(payload.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                payload[key] = json.loads(payload[key])
    return payload


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
