"""A local stand-in for Slack's Socket Mode, for slack_sdk's SocketModeClient.

Two servers on 127.0.0.1:

- HTTP (`base_url`, like "http://127.0.0.1:PORT/api/"): `POST /api/apps.connections.open`
  needs `Authorization: Bearer <app_token>` (anything else: HTTP 200 `{"ok": false, "error":
  "invalid_auth"}`) and answers `{"ok": true, "url": "ws://127.0.0.1:WSPORT/link/?ticket=tN"}`
  (a new ticket each time; `.opens` counts the calls). Any other `/api/<method>` is forwarded
  as it came (body, Content-Type, Authorization) to `forward_to` (e.g. a `SlackWireServer`'s
  base_url) and its answer relayed, so one `[slack] base_url` serves both; without
  `forward_to` it is HTTP 404 `unknown_method`.
- a websocket server (the `websockets` package's sync server) at that URL: on connect it sends
  `{"type": "hello", "num_connections": 1, "debug_info": {...}, "connection_info": {...}}`,
  like Slack; ping/pong is the websockets library's own (it answers the client's pings).

    with SlackSocketServer(app_token="xapp-…", forward_to=slack.base_url) as socket_mode:
        ...                                        # a client connects to socket_mode.base_url
        socket_mode.wait_connected()               # waits for a live connection (timeout=5.0)
        envelope_id = socket_mode.push("events_api", {"event": {...}})
        socket_mode.wait_for_acks(1)               # [{"envelope_id": ...}, ...] as the client sent
        socket_mode.disconnect()                   # drops the connection (a close frame, 1001)
        socket_mode.wait_connected(connections=2)  # the client came back

- `push(type, payload, *, accepts_response_payload=False, retry_attempt=0)` sends one envelope
  `{"envelope_id", "type", "payload", "accepts_response_payload", "retry_attempt",
  "retry_reason"}` to the live connection (waiting up to 5 s for one) and returns its id;
  `send_raw(text)` sends any text frame (for malformed envelopes).
- `.acks`: every JSON message the client sent back that has an `envelope_id`, in order;
  `wait_for_acks(count, timeout=5.0)` blocks until there are `count` and returns them, or raises
  AssertionError saying how many came. `.received`: every text frame from the client.
- `.connections`: websocket connections accepted so far; `.opens`: apps.connections.open calls
  that were answered ok.
- `disconnect()`: closes the live connection from the server's side, as Slack does when it
  rotates connections; the client is expected to call apps.connections.open again and reconnect.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class SlackSocketServer:
    """Socket Mode stand-in; see the module docstring for the API."""

    def __init__(self, *, app_token: str, forward_to: str | None = None) -> None:
        self.app_token = app_token
        self.forward_to = forward_to
        self._lock = threading.Condition()
        self._live: ServerConnection | None = None
        self._acks: list[dict[str, Any]] = []
        self._received: list[str] = []
        self._connections = 0
        self._opens = 0
        self._tickets = itertools.count(1)
        self._http: ThreadingHTTPServer | None = None
        self._ws: Server | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SlackSocketServer:
        self._ws = serve(
            self._session,
            "127.0.0.1",
            0,
            compression=None,
            close_timeout=1,
            ping_interval=None,  # the client pings; we only answer
        )
        http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        http.daemon_threads = True
        self._http = http
        for name, target in (
            ("slacksocket-ws", self._ws.serve_forever),
            ("slacksocket-http", lambda: http.serve_forever(0.05)),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._ws is not None:
            self._ws.shutdown()
            self._ws = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> SlackSocketServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "SlackSocketServer is not running"
        return f"http://127.0.0.1:{self._http.server_address[1]}/api/"

    @property
    def ws_port(self) -> int:
        assert self._ws is not None, "SlackSocketServer is not running"
        return int(self._ws.socket.getsockname()[1])

    # --- observing -----------------------------------------------------------------------------

    @property
    def acks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._acks)

    @property
    def received(self) -> list[str]:
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def opens(self) -> int:
        with self._lock:
            return self._opens

    def wait_for_acks(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._acks) >= count, timeout):
                raise AssertionError(
                    f"expected {count} Socket Mode acks within {timeout}s, got {len(self._acks)}"
                )
            return list(self._acks)

    def wait_connected(self, timeout: float = 5.0, *, connections: int = 1) -> None:
        """Wait for a live connection, and at least `connections` accepted so far."""
        with self._lock:
            if not self._lock.wait_for(
                lambda: self._live is not None and self._connections >= connections, timeout
            ):
                raise AssertionError(
                    f"expected connection #{connections} within {timeout}s; "
                    f"{self._connections} so far, live: {self._live is not None}"
                )

    # --- driving -------------------------------------------------------------------------------

    def push(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
    ) -> str:
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": "",
        }
        self.send_raw(json.dumps(envelope))
        return envelope_id

    def send_raw(self, text: str) -> None:
        self.wait_connected()
        with self._lock:
            live = self._live
        assert live is not None
        live.send(text)

    def disconnect(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.close(code=1001, reason="refresh requested")

    # --- the servers ---------------------------------------------------------------------------

    def _open(self, token: str | None) -> tuple[int, dict[str, Any]]:
        if token != self.app_token:
            return 200, {"ok": False, "error": "invalid_auth"}
        with self._lock:
            self._opens += 1
        ticket = next(self._tickets)
        url = f"ws://127.0.0.1:{self.ws_port}/link/?ticket=t{ticket}"
        return 200, {"ok": True, "url": url}

    def _session(self, connection: ServerConnection) -> None:
        if connection.request is None or not connection.request.path.startswith("/link/"):
            connection.close(code=1008, reason="not a Socket Mode URL")
            return
        with self._lock:
            self._connections += 1
            self._live = connection
            self._lock.notify_all()
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "applink-test", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0TEST"},
        }
        try:
            connection.send(json.dumps(hello))
            for message in connection:
                text = message if isinstance(message, str) else message.decode("utf-8")
                self._record(text)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if self._live is connection:
                    self._live = None
                self._lock.notify_all()

    def _record(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        with self._lock:
            self._received.append(text)
            if isinstance(data, dict) and "envelope_id" in data:
                self._acks.append(data)
            self._lock.notify_all()

    def _forward(
        self, method: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        if self.forward_to is None:
            return 404, json.dumps({"ok": False, "error": "unknown_method"}).encode(), {}
        request = urllib.request.Request(
            self.forward_to + method, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), _relayed(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), _relayed(exc.headers)


def _relayed(headers: Any) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower() in ("content-type", "retry-after")
    }


def _handler_for(server: SlackSocketServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            method = self.path.split("?")[0].removeprefix("/api/")
            auth = self.headers.get("Authorization") or ""
            if method == "apps.connections.open":
                token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
                status, answer = server._open(token)
                body, headers = json.dumps(answer).encode(), {"Content-Type": "application/json"}
            else:
                passed = {"Content-Type": self.headers.get("Content-Type", "")}
                if auth:
                    passed["Authorization"] = auth
                status, body, headers = server._forward(method, raw, passed)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
