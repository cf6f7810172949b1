"""A local stand-in that speaks Slack's Web API wire format, so tests never touch the internet.

    from tests.support.slackwire import SlackWireServer

    with SlackWireServer(require_token="xoxb-test") as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        slack.fail_next(1, status=429, retry_after=1)    # next post: HTTP 429 + Retry-After: 1
        slack.error_next(1, "channel_not_found")         # then: HTTP 200 {"ok": false, ...}
        slack.status_next(1, 503)                        # then: HTTP 503
        slack.drop_answer_next(1)                        # then: posted, but no HTTP answer
        ...
        [message] = slack.wait_for(1, timeout=5)         # accepted messages, oldest first
        message.channel, message.text, message.blocks, message.metadata, message.token

API
- `SlackWireServer(*, require_token=None, delay=0.0, channel_id="C0TEST", channel_name="webcare",
  other_channels=(), page_size=None)`: a threaded `http.server` on 127.0.0.1 with a free port,
  started by `start()` or `with`, stopped by `stop()`. It has one channel that takes every
  message (`channel_id`, named `channel_name`); `other_channels` are names listed before it by
  conversations.list (ids "C0OTHER1", "C0OTHER2", …) that hold no messages.
- `.base_url`: "http://127.0.0.1:PORT/api/" (pass it to `WebClient(base_url=...)`).
- `POST /api/chat.postMessage`: JSON bodies (what slack-sdk sends, token in
  `Authorization: Bearer`) and form-encoded bodies (token in `Authorization` or a `token` field;
  `blocks` and `metadata` given as JSON strings are decoded). Replies
  `{"ok": true, "channel": channel_id, "ts": "<increasing>", "message": {...}}`; a request
  without `channel` gets `channel_not_found`, one without `text` and `blocks` gets `no_text`.
  A `thread_ts` (a reply in a thread) is recorded as the message's `thread_ts`, and
  `reply_broadcast` as its `broadcast`; a thread_ts naming no accepted message gets
  `thread_not_found`.
- `POST /api/chat.update`: `channel` (the id it answered with, or the name it was posted to) and
  `ts` of an accepted message, `text` and/or `blocks`; replies `{"ok": true, "channel", "ts",
  "text"}` and records a `SlackWireMessage` in `.updates`; an unknown ts gets
  `message_not_found`, no channel `channel_not_found`.
- `POST /api/chat.postEphemeral`: `channel`, `user`, `text` and/or `blocks`; replies
  `{"ok": true, "message_ts"}` and records a `SlackWireMessage` (with `user`) in `.ephemerals`.
- `GET` (what slack-sdk sends, parameters in the query string) or `POST /api/conversations.history`:
  `channel` (the id, or a name a message was posted to; else `channel_not_found`): top-level
  messages (thread replies only when broadcast), newest first, each `{"type": "message", "ts",
  "text", "thread_ts"?}` (a parent with replies has thread_ts = its ts) and `"metadata"` only
  when `include_all_metadata` is true/"true"/"1". `limit` (default 100) and `cursor` page it:
  `has_more` and `response_metadata.next_cursor` ("" on the last page); a cursor it did not give
  gets `invalid_cursor`.
- `conversations.replies`: `channel` and `ts` of a message (else `thread_not_found`): the thread's
  parent and its replies, oldest first, metadata likewise; `limit` (default 1000) and `cursor`.
- `conversations.list`: `{"channels": [{"id", "name", "is_private": false, ...}]}`, the other
  channels then the main one; none when `types` is given without "public_channel". Pages of
  `limit` (default 100), or `page_size` when that is smaller, with `cursor`/`next_cursor`.
- `POST /api/auth.test`: `{"ok": true, "user_id": "U0TEST", "team_id": "T0TEST", ...}`.
  Other methods: HTTP 404 `{"ok": false, "error": "unknown_method"}`.
- `drop_answer_next(n)`: the next n chat.postMessage calls that would succeed are accepted and
  recorded, but the connection is closed without any HTTP answer (Slack posted the message, the
  answer got lost); `.requests` shows them with status 0 and "answer_dropped".
- Scripted answers, consumed in order by the next requests of one method, chat.postMessage
  unless `method=` says otherwise (any method above but auth.test, e.g.
  `error_next(1, "missing_scope", method="conversations.history")`):
  `fail_next(n, status=429, retry_after=1)` (that status, a `Retry-After` header unless
  retry_after is None, body `{"ok": false, "error": "ratelimited"}` for 429),
  `error_next(n, "channel_not_found")` (HTTP 200, ok:false), `status_next(n, 503)` (that status,
  no Retry-After). A `missing_scope` error names the scope needed (`"needed"`).
  `reset()` drops scripted answers, dropped answers to come and recorded messages and updates.
- `delay`: seconds to sleep before answering each request (settable at any time).
- `require_token`: when set, any other token (or none) gets HTTP 200 `invalid_auth`.
- `.messages`: a copy of the accepted messages (`SlackWireMessage`: channel, text, blocks,
  metadata, token, ts, thread_ts, broadcast, payload), thread-safe. `.requests`: every
  request seen, as (method, HTTP status, error or None). `wait_for(count, timeout=5.0)` blocks
  until at least `count` messages were accepted and returns them, or raises AssertionError
  saying how many came.
  `.updates`, `.ephemerals`, `wait_for_updates(count)` and `wait_for_ephemerals(count)` do the
  same for chat.update and chat.postEphemeral.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class SlackWireMessage:
    channel: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    token: str | None
    ts: str
    payload: dict[str, Any] = field(repr=False)
    user: str | None = None  # chat.postEphemeral: who sees it
    thread_ts: str | None = None  # chat.postMessage in a thread: the parent message's ts
    broadcast: bool = False  # reply_broadcast: also shown in the channel


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
        channel_name: str = "webcare",
        other_channels: Sequence[str] = (),
        page_size: int | None = None,
    ) -> None:
        self.require_token = require_token
        self.delay = delay
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.other_channels = list(other_channels)
        self.page_size = page_size
        self._drops = 0
        self._lock = threading.Condition()
        self._messages: list[SlackWireMessage] = []
        self._updates: list[SlackWireMessage] = []
        self._ephemerals: list[SlackWireMessage] = []
        self._requests: list[tuple[str, int, str | None]] = []
        self._scripts: dict[str, deque[_Scripted]] = {}
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

    def fail_next(
        self,
        n: int,
        status: int = 429,
        retry_after: float | None = 1,
        *,
        method: str = "chat.postMessage",
    ) -> None:
        error = "ratelimited" if status == 429 else _status_error(status)
        self._push(method, n, _Scripted(status, error, retry_after))

    def error_next(self, n: int, error: str, *, method: str = "chat.postMessage") -> None:
        self._push(method, n, _Scripted(200, error))

    def status_next(self, n: int, status: int, *, method: str = "chat.postMessage") -> None:
        self._push(method, n, _Scripted(status, _status_error(status)))

    def drop_answer_next(self, n: int) -> None:
        with self._lock:
            self._drops += n

    def reset(self) -> None:
        with self._lock:
            self._drops = 0
            self._scripts.clear()
            self._messages.clear()
            self._updates.clear()
            self._ephemerals.clear()
            self._requests.clear()

    def _push(self, method: str, n: int, answer: _Scripted) -> None:
        with self._lock:
            self._scripts.setdefault(method, deque()).extend([answer] * n)

    # --- observing -----------------------------------------------------------------------------

    @property
    def messages(self) -> list[SlackWireMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[tuple[str, int, str | None]]:
        with self._lock:
            return list(self._requests)

    @property
    def updates(self) -> list[SlackWireMessage]:
        with self._lock:
            return list(self._updates)

    @property
    def ephemerals(self) -> list[SlackWireMessage]:
        with self._lock:
            return list(self._ephemerals)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SlackWireMessage]:
        return self._wait(self._messages, "messages", count, timeout)

    def wait_for_updates(self, count: int, timeout: float = 5.0) -> list[SlackWireMessage]:
        return self._wait(self._updates, "updates", count, timeout)

    def wait_for_ephemerals(self, count: int, timeout: float = 5.0) -> list[SlackWireMessage]:
        return self._wait(self._ephemerals, "ephemeral messages", count, timeout)

    def _wait(
        self, items: list[SlackWireMessage], what: str, count: int, timeout: float
    ) -> list[SlackWireMessage]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(items) >= count, timeout):
                raise AssertionError(
                    f"expected {count} Slack {what} within {timeout}s, got {len(items)}"
                )
            return list(items)

    # --- the API -------------------------------------------------------------------------------

    def _answer(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, body, headers) for one request; records it. Status 0: answer nothing."""
        status, body, headers = self._decide(method, token, payload)
        with self._lock:
            if method == "chat.postMessage" and body.get("ok") and self._drops > 0:
                self._drops -= 1
                status, body, headers = 0, {"ok": False, "error": "answer_dropped"}, {}
            self._requests.append((method, status, None if body.get("ok") else body.get("error")))
        return status, body, headers

    def _decide(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method not in _METHODS:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        if self.require_token is not None and token != self.require_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "auth.test":
            return 200, _auth_test(self.base_url), {}
        with self._lock:
            script = self._scripts.get(method)
            scripted = script.popleft() if script else None
        if scripted is not None:
            headers = {}
            if scripted.retry_after is not None:
                headers["Retry-After"] = f"{scripted.retry_after:g}"
            body: dict[str, Any] = {"ok": False, "error": scripted.error}
            if scripted.error == "missing_scope":
                body["needed"] = _SCOPES.get(method, "chat:write")
                body["provided"] = "chat:write"
            return scripted.status, body, headers
        if method == "conversations.list":
            return 200, self._list(payload), {}
        if method == "conversations.history":
            return 200, self._history(payload), {}
        if method == "conversations.replies":
            return 200, self._replies(payload), {}
        if not payload.get("channel"):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not payload.get("text") and not payload.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        if method == "chat.update":
            return self._update(token, payload)
        if method == "chat.postEphemeral":
            return 200, self._ephemeral(token, payload), {}
        return 200, self._accept(token, payload), {}

    def _update(
        self, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel, ts = str(payload["channel"]), payload.get("ts")
        with self._lock:
            known = any(
                m.ts == ts and channel in (m.channel, self.channel_id) for m in self._messages
            )
            if not known:
                return 200, {"ok": False, "error": "message_not_found"}, {}
            self._updates.append(_message(channel, token, str(ts), payload))
            self._lock.notify_all()
        body = {"ok": True, "channel": self.channel_id, "ts": ts, "text": payload.get("text", "")}
        return 200, body, {}

    def _history(self, payload: dict[str, Any]) -> dict[str, Any]:
        channel = str(payload.get("channel") or "")
        metadata = _truthy(payload.get("include_all_metadata"))
        with self._lock:
            if not self._knows(channel):
                return {"ok": False, "error": "channel_not_found"}
            top = [m for m in self._messages if m.thread_ts is None or m.broadcast]
            items = [self._listed(m, metadata) for m in reversed(top)]
        return _page(items, "messages", payload, 100)

    def _replies(self, payload: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(payload.get("channel") or ""), payload.get("ts")
        metadata = _truthy(payload.get("include_all_metadata"))
        with self._lock:
            if not self._knows(channel):
                return {"ok": False, "error": "channel_not_found"}
            named = [m for m in self._messages if m.ts == ts]
            if not named:
                return {"ok": False, "error": "thread_not_found"}
            root = named[0].thread_ts or named[0].ts
            thread = [m for m in self._messages if root in (m.ts, m.thread_ts)]
            items = [self._listed(m, metadata) for m in thread]
        return _page(items, "messages", payload, 1000)

    def _list(self, payload: dict[str, Any]) -> dict[str, Any]:
        types = payload.get("types")
        names = [*self.other_channels, self.channel_name]
        ids = [f"C0OTHER{i}" for i in range(1, len(self.other_channels) + 1)] + [self.channel_id]
        channels = [
            {"id": id_, "name": name, "is_channel": True, "is_private": False, "is_archived": False}
            for id_, name in zip(ids, names, strict=True)
        ]
        if types and "public_channel" not in str(types).split(","):
            channels = []
        return _page(channels, "channels", payload, 100, self.page_size)

    def _knows(self, channel: str) -> bool:
        """The channel's id, or a name some message was posted to (call with the lock held)."""
        return channel == self.channel_id or any(m.channel == channel for m in self._messages)

    def _listed(self, message: SlackWireMessage, metadata: bool) -> dict[str, Any]:
        """A message as conversations.history and .replies show it (call with the lock held)."""
        item: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text or ""}
        if message.thread_ts is not None:
            item["thread_ts"] = message.thread_ts
        elif any(m.thread_ts == message.ts for m in self._messages):
            item["thread_ts"] = message.ts
        if metadata and message.metadata is not None:
            item["metadata"] = message.metadata
        return item

    def _ephemeral(self, token: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            ts = f"{self._epoch}.{self._counter:06d}"
            message = _message(str(payload["channel"]), token, ts, payload)
            self._ephemerals.append(message)
            self._lock.notify_all()
        return {"ok": True, "message_ts": ts}

    def _accept(self, token: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        thread_ts = payload.get("thread_ts")
        with self._lock:
            if thread_ts is not None and not any(m.ts == thread_ts for m in self._messages):
                return {"ok": False, "error": "thread_not_found"}
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
                thread_ts=None if thread_ts is None else str(thread_ts),
                broadcast=payload.get("reply_broadcast") in (True, "true", "1"),
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
        if message.thread_ts is not None:
            echoed["thread_ts"] = message.thread_ts
        return {"ok": True, "channel": self.channel_id, "ts": ts, "message": echoed}


def _message(channel: str, token: str | None, ts: str, payload: dict[str, Any]) -> SlackWireMessage:
    return SlackWireMessage(
        channel=channel,
        text=payload.get("text"),
        blocks=payload.get("blocks"),
        metadata=payload.get("metadata"),
        token=token,
        ts=ts,
        payload=payload,
        user=payload.get("user"),
    )


_METHODS = (
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "auth.test",
    "conversations.history",
    "conversations.replies",
    "conversations.list",
)
_SCOPES = {
    "conversations.history": "channels:history,groups:history",
    "conversations.replies": "channels:history,groups:history",
    "conversations.list": "channels:read,groups:read",
}


def _truthy(value: Any) -> bool:
    return value in (True, 1, "true", "1")


def _page(
    items: list[dict[str, Any]],
    key: str,
    payload: dict[str, Any],
    default_limit: int,
    page_size: int | None = None,
) -> dict[str, Any]:
    """One page of `items` from `cursor` ("next:<offset>"), `limit` (or `page_size`) long."""
    try:
        size = int(payload.get("limit") or default_limit)
    except (TypeError, ValueError):
        return {"ok": False, "error": "invalid_limit"}
    if page_size is not None:
        size = min(size, page_size)
    cursor = str(payload.get("cursor") or "")
    start = 0
    if cursor:
        offset = cursor.removeprefix("next:")
        if not cursor.startswith("next:") or not offset.isdigit():
            return {"ok": False, "error": "invalid_cursor"}
        start = int(offset)
    end = start + max(1, size)
    more = end < len(items)
    return {
        "ok": True,
        key: items[start:end],
        "has_more": more,
        "response_metadata": {"next_cursor": f"next:{end}" if more else ""},
    }


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
        def do_GET(self) -> None:
            query = urlsplit(self.path).query
            payload: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
            self._respond(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            self._respond(_parse_body(self.headers.get("Content-Type", ""), raw))

        def _respond(self, payload: dict[str, Any]) -> None:
            if server.delay:
                time.sleep(server.delay)
            token = _bearer(self.headers.get("Authorization")) or payload.pop("token", None)
            method = self.path.split("?")[0].removeprefix("/api/")
            status, body, headers = server._answer(method, token, payload)
            if status == 0:  # drop_answer_next: Slack did it, the answer never arrives
                self.close_connection = True
                return
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
