"""The common part of the tests' local HTTP servers: a threaded server on 127.0.0.1 with a free
port, run in the background as a context manager, with scripted replies and recorded requests.

A subclass gives `handler()` (the request handler class) and decides its answers; it calls
`next_scripted(recorded)` to record a request and take the next scripted reply, if any.
"""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Generic, Self, TypeVar

R = TypeVar("R")  # a scripted reply
Q = TypeVar("Q")  # a recorded request


class LocalServer(Generic[Q, R]):
    def __init__(self) -> None:
        self.requests: list[Q] = []
        self._script: deque[R] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # set on exit: wakes handlers in a scripted delay
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def script(self, *replies: R) -> None:
        """Answer the next requests with these replies, in order, before the normal answers."""
        with self._lock:
            self._script.extend(replies)

    def next_scripted(self, recorded: Q) -> R | None:
        """Record a request; the next scripted reply, or None."""
        with self._lock:
            self.requests.append(recorded)
            return self._script.popleft() if self._script else None

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError("the server is not running; use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
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
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
