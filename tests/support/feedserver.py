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

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.support.localserver import LocalServer


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


class FeedServer(LocalServer["Recorded", "Reply"]):
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
        super().__init__()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def url(self, path: str = "/feed.xml") -> str:
        """The absolute URL of `path` on this server."""
        host, port = self.address
        return f"http://{host}:{port}{path}"

    def _answer(self, recorded: Recorded) -> Reply:
        """What to send for a request: the next scripted reply, a 304, or the payload."""
        scripted = self.next_scripted(recorded)
        if scripted is not None:
            return scripted
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
            if reply.delay and server.stopping.wait(reply.delay):
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
