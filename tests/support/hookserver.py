"""A local HTTP server that takes webhook POSTs (a Slack incoming webhook, a generic JSON
webhook) and records them with their raw body, so tests can check bytes and signatures.

    with HookServer() as hooks:
        hooks.script(Answer(429, headers={"Retry-After": "7"}))   # the next POST gets a 429
        notifier = WebhookNotifier(hooks.url("/hooks/abc"), SECRET)
        ...
        [request] = hooks.requests    # Hook(path, headers (lower-case names), body bytes)

Unscripted POSTs get HTTP 200 with the body `ok` (text/plain), as Slack answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.localserver import LocalServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes


class HookServer(LocalServer[Hook, Answer]):
    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def url(self, path: str = "/") -> str:
        host, port = self.address
        return f"http://{host}:{port}{path}"


def _handler_for(server: HookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = server.next_scripted(Hook(self.path, headers, body)) or Answer()
            if answer.delay and server.stopping.wait(answer.delay):
                return
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if "content-type" not in {name.lower() for name in answer.headers}:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client gave up (it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
