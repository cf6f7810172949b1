"""A small threaded Bluesky PDS on 127.0.0.1 for testing the Bluesky source without the internet.

It speaks the XRPC endpoints the source uses, with JSON bodies and XRPC error objects
(`{"error": "ExpiredToken", "message": "..."}`):

- `POST /xrpc/com.atproto.server.createSession` `{identifier, password}` → `accessJwt`,
  `refreshJwt`, `handle`, `did`; a wrong password is 401 AuthenticationRequired.
- `POST /xrpc/com.atproto.server.refreshSession` with `Authorization: Bearer <refreshJwt>` → a
  new pair (the old refresh token stops working); an unknown one is 400 ExpiredToken.
- `GET /xrpc/app.bsky.feed.searchPosts` (bearer required): `posts` (or `by_query[q]`), newest
  `indexedAt` first, filtered by `since` (on indexedAt) and `lang`, in pages of `limit` (default
  25) with an offset `cursor` while more remain.
- `GET /xrpc/app.bsky.actor.getProfiles?actors=...` (bearer required, at most 25 actors, like
  the real one): the known `profiles`, silently leaving out unknown actors.

Tokens are real state: `expire_tokens()` makes every access token issued so far answer 400
ExpiredToken (the refresh tokens still work); `revoke_refresh_tokens()` makes refreshing fail too,
so the client has to log in again. Every request is recorded (method, path, params as lists, the
Authorization header, the JSON body), and the next answers can be scripted whatever their path:
a status with an XRPC error, Retry-After or RateLimit-Reset headers, a raw (malformed) body, a
delay before the normal answer.

    with XrpcServer(posts=[...]) as server:
        server.script(Reply(status=429, headers={"Retry-After": "30"}))
        ...
        assert server.requests[-1].params["since"] == ["2026-09-26T06:50:00.000Z"]
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.localserver import LocalServer

CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
SEARCH_POSTS = "/xrpc/app.bsky.feed.searchPosts"
GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"

ACCOUNT_DID = "did:plc:listenertestaccount"


@dataclass(frozen=True)
class Reply:
    """A scripted answer. `body` is sent as it is (e.g. malformed JSON); without it a 200 is the
    normal answer (after `delay`) and any other status an XRPC error object."""

    status: int = 200
    error: str | None = None
    message: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    params: dict[str, list[str]]
    authorization: str | None
    body: Any


def post_view(
    rkey: str,
    indexed_at: str,
    *,
    text: str = "Vandaag in de bieb",
    did: str = "did:plc:author1",
    handle: str = "lezer.bsky.social",
    display_name: str | None = "Een Lezer",
    langs: list[str] | None = None,
    likes: int = 0,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """A searchPosts postView shaped like the real one (shared/samples)."""
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "createdAt": indexed_at,
        "langs": langs if langs is not None else ["nl"],
        "text": text,
    }
    if reply_to is not None:
        record["reply"] = {
            "root": {"uri": reply_to, "cid": "bafyroot"},
            "parent": {"uri": reply_to, "cid": "bafyparent"},
        }
    author: dict[str, Any] = {"did": did, "handle": handle, "labels": []}
    if display_name is not None:
        author["displayName"] = display_name
    return {
        "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
        "cid": f"bafy{rkey}",
        "author": author,
        "record": record,
        "replyCount": 0,
        "repostCount": 0,
        "likeCount": likes,
        "quoteCount": 0,
        "indexedAt": indexed_at,
        "labels": [],
    }


def profile_view(
    did: str, handle: str, *, followers: int = 10, description: str | None = None
) -> dict[str, Any]:
    """A getProfiles profileViewDetailed."""
    view: dict[str, Any] = {
        "did": did,
        "handle": handle,
        "followersCount": followers,
        "followsCount": 3,
        "postsCount": 42,
    }
    if description is not None:
        view["description"] = description
    return view


class XrpcServer(LocalServer["Recorded", "Reply"]):
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self,
        *,
        handle: str = "bieb.bsky.social",
        password: str = "app-pass-word-1234",
        posts: list[dict[str, Any]] | None = None,
        by_query: dict[str, list[dict[str, Any]]] | None = None,
        profiles: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.handle = handle
        self.password = password
        self.posts = posts or []
        self.by_query = by_query or {}
        self.profiles = profiles or {}
        self._counter = itertools.count(1)
        self._access: dict[str, bool] = {}  # token -> still valid (False: expired)
        self._refresh: set[str] = set()
        self._tokens_lock = threading.Lock()
        super().__init__()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def url(self) -> str:
        """The service URL, for `BlueskySource.service`."""
        host, port = self.address
        return f"http://{host}:{port}"

    def calls(self, path: str) -> list[Recorded]:
        """The recorded requests to `path` (e.g. SEARCH_POSTS), in order."""
        return [request for request in self.requests if request.path == path]

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 400 ExpiredToken from now on."""
        with self._tokens_lock:
            for token in self._access:
                self._access[token] = False

    def revoke_refresh_tokens(self) -> None:
        """Refreshing with any refresh token issued so far fails from now on."""
        with self._tokens_lock:
            self._refresh.clear()

    # -- answers --

    def _answer(self, recorded: Recorded) -> tuple[int, dict[str, str], bytes, float]:
        scripted = self.next_scripted(recorded)
        if scripted is not None and (scripted.body is not None or scripted.status != 200):
            body = scripted.body
            if body is None:
                body = _error_body(
                    scripted.error
                    or ("InternalServerError" if scripted.status >= 500 else "Error"),
                    scripted.message or f"scripted {scripted.status}",
                )
            return scripted.status, scripted.headers, body, scripted.delay
        delay = scripted.delay if scripted is not None else 0.0
        status, data = self._normal(recorded)
        return status, {}, json.dumps(data).encode(), delay

    def _normal(self, recorded: Recorded) -> tuple[int, dict[str, Any]]:
        if recorded.path == CREATE_SESSION:
            return self._create_session(recorded.body)
        if recorded.path == REFRESH_SESSION:
            return self._refresh_session(_bearer(recorded.authorization))
        if recorded.path in (SEARCH_POSTS, GET_PROFILES):
            refused = self._check_access(_bearer(recorded.authorization))
            if refused is not None:
                return refused
            if recorded.path == SEARCH_POSTS:
                return self._search(recorded.params)
            return self._get_profiles(recorded.params)
        return 404, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}

    def _issue(self) -> dict[str, Any]:
        with self._tokens_lock:
            n = next(self._counter)
            access, refresh = f"access-{n}", f"refresh-{n}"
            self._access[access] = True
            self._refresh.add(refresh)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.handle,
            "did": ACCOUNT_DID,
            "active": True,
        }

    def _create_session(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or "identifier" not in body or "password" not in body:
            return 400, {"error": "InvalidRequest", "message": "Input must have identifier"}
        if body["identifier"] != self.handle or body["password"] != self.password:
            return 401, {
                "error": "AuthenticationRequired",
                "message": "Invalid identifier or password",
            }
        return 200, self._issue()

    def _refresh_session(self, token: str | None) -> tuple[int, dict[str, Any]]:
        with self._tokens_lock:
            known = token is not None and token in self._refresh
            if known:
                self._refresh.discard(str(token))
        if not known:
            return 400, {"error": "ExpiredToken", "message": "Token has expired"}
        return 200, self._issue()

    def _check_access(self, token: str | None) -> tuple[int, dict[str, Any]] | None:
        with self._tokens_lock:
            valid = self._access.get(token or "")
        if valid is None:
            return 401, {"error": "AuthenticationRequired", "message": "Authentication Required"}
        if not valid:
            return 400, {"error": "ExpiredToken", "message": "Token has expired"}
        return None

    def _search(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        query = _one(params, "q")
        if not query:
            return 400, {"error": "InvalidRequest", "message": 'Error: Params must have "q"'}
        posts = self.by_query.get(query, self.posts)
        posts = sorted(posts, key=lambda view: str(view.get("indexedAt")), reverse=True)
        if since := _one(params, "since"):
            posts = [view for view in posts if str(view.get("indexedAt")) >= since]
        if lang := _one(params, "lang"):
            posts = [view for view in posts if lang in view.get("record", {}).get("langs", [])]
        limit = int(_one(params, "limit") or 25)
        start = int(_one(params, "cursor") or 0)
        page = posts[start : start + limit]
        answer: dict[str, Any] = {"posts": page, "hitsTotal": len(posts)}
        if start + limit < len(posts):
            answer["cursor"] = str(start + limit)
        return 200, answer

    def _get_profiles(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        actors = params.get("actors", [])
        if not actors or len(actors) > 25:
            message = "Error: actors must not have more than 25 elements"
            return 400, {"error": "InvalidRequest", "message": message}
        return 200, {"profiles": [self.profiles[a] for a in actors if a in self.profiles]}


def _error_body(error: str, message: str) -> bytes:
    return json.dumps({"error": error, "message": message}).encode()


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    return None


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _handler_for(server: XrpcServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            recorded = Recorded(
                method=method,
                path=parts.path,
                params=parse_qs(parts.query, keep_blank_values=True),
                authorization=self.headers.get("Authorization"),
                body=body,
            )
            status, headers, payload, delay = server._answer(recorded)
            if delay and server.stopping.wait(delay):
                return
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (e.g. it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler
