"""The common part of the local servers that speak a JSON web API (Reddit, X, YouTube): GET and
POST handling, JSON replies, scripted replies and recorded requests on top of `LocalServer`.

A subclass implements `respond(recorded)`, the normal answer to a request; `script(...)` puts
other answers (a 429 with headers, a 500, a body that is not JSON, a delay) in front of it.

    class MyApi(JsonApiServer):
        def respond(self, recorded: Recorded) -> Reply:
            return Reply(body={"ok": True})

    with MyApi() as server:
        server.script(Reply(status=429, headers={"Retry-After": "30"}))
        ...
        assert server.requests[0].params["q"] == "de bieb"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.localserver import LocalServer


@dataclass(frozen=True)
class Reply:
    """An answer: `body` is bytes as they are, or anything else as JSON."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received. Header names are lower-case; `form` is a POST's
    urlencoded body."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


class JsonApiServer(LocalServer["Recorded", "Reply"]):
    """Context manager running the server in a background thread; see the module docstring."""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def url(self, path: str = "") -> str:
        """The absolute URL of `path` on this server."""
        host, port = self.address
        return f"http://{host}:{port}{path}"

    def respond(self, recorded: Recorded) -> Reply:
        """The normal answer to a request (no scripted reply waiting)."""
        raise NotImplementedError

    def answer(self, recorded: Recorded) -> Reply:
        scripted = self.next_scripted(recorded)
        return scripted if scripted is not None else self.respond(recorded)


def _handler_for(server: JsonApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            recorded = Recorded(
                method=method,
                path=parts.path,
                params=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={name.lower(): value for name, value in self.headers.items()},
                form=dict(parse_qsl(raw, keep_blank_values=True)),
            )
            reply = server.answer(recorded)
            if reply.delay and server.stopping.wait(reply.delay):
                return
            if isinstance(reply.body, bytes):
                body = reply.body
            else:
                body = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if "content-type" not in {name.lower() for name in reply.headers}:
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (e.g. it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler
