"""A small threaded HTTP server on 127.0.0.1 for testing code that fetches feeds.

It serves one payload at every path, with an optional ETag / Last-Modified (answering a matching
conditional GET with 304), and can be scripted to answer the next requests with other statuses,
headers, bodies or delays. Every request is recorded (path, query, headers).

    with FeedServer(body, etag='"v1"') as server:
        server.script(Reply(status=503, headers={"Retry-After": "120"}))
        fetch(server.url("/rss/search"))
        assert server.requests[0].query["q"] == ["..."]
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `body=None` serves the server's payload."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received. Header names are lower-case."""

    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FeedServer:
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self,
        body: bytes = b"",
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = etag
        self.last_modified = last_modified
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, before the default behaviour."""
        with self._lock:
            self._script.extend(replies)

    def url(self, path: str = "/feed.xml") -> str:
        """The absolute URL of `path` on this server."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> FeedServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()  # wakes handlers sleeping on a scripted delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _answer(self, recorded: Recorded) -> Reply:
        """What to send for a request: the next scripted reply, a 304, or the payload."""
        with self._lock:
            self.requests.append(recorded)
            if self._script:
                return self._script.popleft()
        headers = {"Content-Type": self.content_type}
        if self.etag is not None:
            headers["ETag"] = self.etag
        if self.last_modified is not None:
            headers["Last-Modified"] = self.last_modified
        not_modified = (
            self.etag is not None and recorded.headers.get("if-none-match") == self.etag
        ) or (
            self.last_modified is not None
            and recorded.headers.get("if-modified-since") == self.last_modified
        )
        if not_modified:
            return Reply(status=304, body=b"", headers=headers)
        return Reply(status=200, body=self.body, headers=headers)


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            recorded = Recorded(
                method="GET",
                path=parts.path,
                raw_query=parts.query,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
            )
            reply = server._answer(recorded)
            if reply.delay and server._stopping.wait(reply.delay):
                return
            body = server.body if reply.body is None else reply.body
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if "content-type" not in {name.lower() for name in reply.headers}:
                    self.send_header("Content-Type", server.content_type)
                if reply.status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if reply.status != 304:
                    self.wfile.write(body)
            except OSError:
                pass  # the client gave up (e.g. it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler
