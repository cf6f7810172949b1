"""The daemon's HTTP port: a small threaded JSON server for POST /ingest, POST /slack/actions,
GET /healthz and GET /metrics, built on the standard library's `http.server`.

A route is `(method, path) -> handler`; the method may be "*" for any method (the handler then
answers 405 itself). A handler is `handler(method, headers, body) -> (status, json_body)`:
`headers` is a case-insensitive mapping, `body` the raw request body, and the returned dict is
sent as `application/json`; a handler that must answer in another format (GET /metrics: the
Prometheus text format) returns a `RawBody` instead. The server does the HTTP around it:

- 404 for a path no route has, 405 (with `Allow`) for a known path and a method no route has;
- request bodies need `Content-Length` and may not be longer than `max_body` (413 before a byte
  of the body is read); chunked bodies get 411; a connection that sent a bad request is closed;
- a 401 always carries `WWW-Authenticate: Bearer`, as HTTP requires;
- a handler that raises gets the caller a 500 and the log a traceback without the exception's
  message (which may quote the request);
- every response is JSON (but a handler's `RawBody`), errors from `http.server` itself
  included, and the connection is closed after each response (HTTP/1.0), so `stop()` leaves no
  idle keep-alive connections;
- access is logged at debug level: client, method, path without the query string, status and
  sizes; never headers or bodies, which may hold tokens or posts.

`start()` listens and serves in a background thread (port 0 picks a free port; `address` says
which); `stop()` stops accepting at once and waits at most `grace` seconds for requests in flight.
Handlers run on the server's threads, several at once, so they must be thread-safe.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["DEFAULT_MAX_BODY", "Handler", "Headers", "HttpServer", "RawBody", "Routes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawBody:
    """A reply body that is not JSON: the bytes as they are, with their content type."""

    data: bytes
    content_type: str


Handler = Callable[[str, Mapping[str, str], bytes], tuple[int, dict[str, Any] | RawBody]]
Routes = Mapping[tuple[str, str], Handler]

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # the server's cap; a handler may enforce a smaller one
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Headers(Mapping[str, str]):
    """Request headers by case-insensitive name; the first value when a header is repeated."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:  # names only: values may be credentials
        return f"Headers({sorted(self._items)})"


class HttpServer:
    """A threaded JSON HTTP server for a fixed set of routes; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Routes,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        timeout: float = 30.0,
        grace: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.routes: dict[tuple[str, str], Handler] = {
            (method.upper(), path): handler for (method, path), handler in routes.items()
        }
        self.max_body = max_body
        self.timeout = timeout  # seconds a client may take to send its request
        self.grace = grace
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on; the real port when it was started with 0."""
        if self._httpd is None:
            raise RuntimeError("the HTTP server is not running: call start() first")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Listen and serve in a background thread; OSError if the address cannot be bound."""
        if self._httpd is not None:
            raise RuntimeError("the HTTP server is already running")
        try:
            httpd = _Server((self.host, self.port), _RequestHandler, self)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
        )
        self._thread.start()
        log.info("HTTP server listening on %s (%s)", self.url, ", ".join(self._route_names()))

    def stop(self) -> None:
        """Stop accepting requests, wait up to `grace` seconds for those in flight, and close."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        deadline = time.monotonic() + self.grace
        with self._idle:
            while self._in_flight and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            if self._in_flight:
                log.warning("HTTP server stopped with %d request(s) in flight", self._in_flight)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _route_names(self) -> list[str]:
        return [f"{method} {path}" for method, path in sorted(self.routes)]

    def _enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def resolve(self, method: str, path: str) -> tuple[Handler | None, list[str]]:
        """The handler for a request, or None and the methods the path has (empty: no such path)."""
        handler = self.routes.get((method, path)) or self.routes.get(("*", path))
        if handler is None and method == "HEAD":
            handler = self.routes.get(("GET", path))
        if handler is not None:
            return handler, []
        return None, sorted(m for m, p in self.routes if p == path)


class _Rejected(Exception):
    """A request body the server will not read; the message is the reply's `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: HttpServer
    ) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("HTTP connection from %s failed", client_address[0], exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection
    server_version = "listener"
    sys_version = ""
    error_content_type = "application/json; charset=utf-8"

    def setup(self) -> None:
        self.request.settimeout(self.server.app.timeout)  # a slow client cannot hold a thread
        super().setup()

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        app = self.server.app
        app._enter()
        started = time.monotonic()
        status, size_in = 0, 0
        try:
            status, size_in = self._serve(app)
        finally:
            app._leave()
            log.debug(
                "%s %s %s -> %d (%d bytes in, %.0f ms)",
                self.client_address[0],
                self.command,
                self._path(),
                status,
                size_in,
                (time.monotonic() - started) * 1000,
            )

    def _serve(self, app: HttpServer) -> tuple[int, int]:
        method, path = self.command.upper(), self._path()
        handler, allowed = app.resolve(method, path)
        if handler is None:
            if allowed:
                return self._reply(405, {"error": f"{path} takes {', '.join(allowed)}"}, allowed), 0
            return self._reply(404, {"error": f"no such path: {path}"}), 0
        try:
            body = self._read_body(app.max_body)
        except _Rejected as rejected:
            self.close_connection = True
            status = self._reply(rejected.status, {"error": str(rejected)})
            self._drain()
            return status, 0
        try:
            status, payload = handler(method, Headers(list(self.headers.items())), body)
        except Exception as exc:
            log.error(
                "%s %s: the handler failed with %s (message left out, it may quote the "
                "request):\n%s",
                method,
                path,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            return self._reply(500, {"error": "internal error"}), len(body)
        return self._reply(status, payload), len(body)

    def _read_body(self, limit: int) -> bytes:
        """The request body, read by its Content-Length; `_Rejected` when it cannot be."""
        if "Transfer-Encoding" in self.headers:
            raise _Rejected(411, "send the body with a Content-Length header, not chunked")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            if self.command.upper() in _BODY_METHODS:
                raise _Rejected(411, "a Content-Length header is required")
            return b""
        text = lengths[0].strip()
        if len(set(lengths)) > 1 or not (text.isascii() and text.isdigit()):
            raise _Rejected(400, "bad Content-Length header")
        length = int(text)
        if length > limit:
            raise _Rejected(413, f"body too large: the limit is {limit} bytes")
        try:
            body = self.rfile.read(length)
        except OSError:  # the client went quiet (timeout) or away
            body = b""
        if len(body) != length:
            raise _Rejected(400, "the body is shorter than its Content-Length")
        return body

    def _drain(self, limit: int = 1 << 20, seconds: float = 1.0) -> None:
        """Read and drop what the client is still sending of a body the server refused, for a
        moment, so that closing the connection does not reset it before the client reads the
        reply (a "lingering close")."""
        deadline = time.monotonic() + seconds
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            while limit > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(min(limit, 65536))
                if not chunk:
                    break
                limit -= len(chunk)
        except OSError:
            pass

    def _reply(
        self, status: int, payload: dict[str, Any] | RawBody, allow: list[str] | None = None
    ) -> int:
        content_type = "application/json; charset=utf-8"
        if isinstance(payload, RawBody):
            data, content_type = payload.data, payload.content_type
        else:
            try:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            except (TypeError, ValueError):
                log.error(
                    "%s %s: the handler returned a body that is not JSON",
                    self.command,
                    self._path(),
                )
                status, data = 500, b'{"error": "internal error"}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="listener"')
            if status == 405 and allow:
                self.send_header("Allow", ", ".join(allow))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and status >= 200 and status not in (204, 304):
                self.wfile.write(data)
        except OSError:
            self.close_connection = True
            log.debug("%s %s: the client went away before the reply", self.command, self._path())
        return status

    def _path(self) -> str:
        return urlsplit(getattr(self, "path", "") or "").path or "/"

    # --- http.server's own errors and logging ----------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors `http.server` raises itself (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = message or "error"
        log.debug("HTTP %d from %s", code, self.client_address[0])  # text may quote the request
        if getattr(self, "command", None) is None:
            self.command = ""
        self._reply(code, {"error": text})

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _dispatch logs every request, without its query string

    def log_message(self, format: str, *args: Any) -> None:
        # Only the format ("Request timed out: %r"): the arguments may quote the request.
        log.debug("HTTP from %s: %s", self.client_address[0], format)
