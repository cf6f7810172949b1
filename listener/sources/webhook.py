"""The webhook source: canonical posts pushed to POST /ingest on the daemon's HTTP port.

Any other tool can feed listener this way: a relay for a Facebook Page webhook, n8n, Zapier, a
script. The body is one post (a JSON object), a JSON array of posts, or JSONL (one post per line,
sent with `Content-Type: application/x-ndjson`), each post in the canonical form of
`post.schema.json` with its own `source` ("facebook", "instagram", …), which searches filter on.

A request is authenticated by either credential that is configured in the environment:

- `Authorization: Bearer <token>`, the token in `sources.webhook.token_env`
  (LISTENER_WEBHOOK_TOKEN by default);
- `X-Listener-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body with the secret in
  `sources.webhook.hmac_secret_env` (LISTENER_WEBHOOK_SECRET); the secret never travels.

Both are compared in constant time. A signed body can be replayed by whoever sees it; that is
harmless, because the store keeps a post id once.

Every post is checked before any is stored: one bad post rejects the request with a 400 that
names it ("post 3: text: required field missing", counting array items from 0, or "line 3: …"
for JSONL, counting lines from 1), and nothing is stored. The posts of one request are handed to
`ingest` together, which saves them as one batch in one transaction (`Store.save_batch`), so a
failure stores none of them; the caller gets a 503 and can send the same request again.

Replies: 200 `{"accepted": n, "new": m}`, 400 bad body, 401 no valid credential, 405 not POST,
413 body over `max_bytes`, 503 could not store. Nothing here logs the token, the secret or the
body, not even a post's text in an error message.

The webhook is pushed, not polled, so `build` returns no sources; it only checks that a
credential is configured, so `listener check` can say what is missing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from listener.post import Post, PostError
from listener.sources import Source, SourceUnavailable

if TYPE_CHECKING:
    import httpx

    from listener.config.model import Organisation, Search, WebhookSource

__all__ = ["SIGNATURE_HEADER", "IngestEndpoint", "build", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Listener-Signature"
JSONL_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)

Ingest = Callable[[list[Post]], int]
Reply = tuple[int, dict[str, Any]]


def sign(secret: str, body: bytes) -> str:
    """The `X-Listener-Signature` value for `body`: 'sha256=<hex HMAC-SHA256>'."""
    digest = hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def build(
    settings: WebhookSource,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str],
) -> list[Source]:
    """No polled sources; `SourceUnavailable` when neither the token nor the secret is set."""
    _credentials(settings, env)
    return []


class _BadRequest(Exception):
    """The body is not what /ingest takes. The message is the 400's `error`, for the sender; it
    may quote a value from the body, so the log gets `for_log`, which never does."""

    def __init__(self, message: str, for_log: str | None = None) -> None:
        super().__init__(message)
        self.for_log = for_log or message


class IngestEndpoint:
    """The handler of POST /ingest: `handle(method, headers, body) -> (status, json)`.

    `ingest(posts)` saves the posts of one request as one batch and returns how many were new;
    the daemon provides it. `handle` runs on the HTTP server's threads, possibly several at once,
    so `ingest` must be thread-safe.
    """

    def __init__(self, settings: WebhookSource, env: Mapping[str, str], ingest: Ingest) -> None:
        token, secret = _credentials(settings, env)
        self._token = _bytes(token) if token else None
        self._secret = _bytes(secret) if secret else None
        self._ingest = ingest
        self.max_bytes = settings.max_bytes
        ways = []
        if token:
            ways.append("Authorization: Bearer <token>")
        if secret:
            ways.append(f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body>")
        self._unauthorized = f"unauthorized: send {' or '.join(ways)}"

    def __repr__(self) -> str:  # never the credentials themselves
        return (
            f"IngestEndpoint(token={'set' if self._token else 'unset'}, "
            f"secret={'set' if self._secret else 'unset'}, max_bytes={self.max_bytes})"
        )

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Authenticate, check every post, then ingest them all or none; see the module doc."""
        if method.upper() != "POST":
            return 405, {"error": "/ingest takes POST"}
        if len(body) > self.max_bytes:
            log.warning(
                "ingest: refused a body of %d bytes (max_bytes %d)", len(body), self.max_bytes
            )
            return 413, {
                "error": f"body is {len(body)} bytes; the limit is {self.max_bytes} "
                "(sources.webhook.max_bytes)"
            }
        lowered = {name.lower(): value for name, value in headers.items()}
        if not self._authorized(lowered, body):
            log.warning("ingest: refused a request without a valid token or signature")
            return 401, {"error": self._unauthorized}
        try:
            posts = self._parse(lowered.get("content-type", ""), body)
        except _BadRequest as exc:
            log.info("ingest: rejected %d bytes: %s", len(body), exc.for_log)
            return 400, {"error": str(exc)}
        if not posts:
            return 200, {"accepted": 0, "new": 0}
        try:
            new = self._ingest(posts)
        except Exception as exc:  # the message may quote a post (SQL parameters): type only
            log.error("ingest: could not store %d posts: %s", len(posts), type(exc).__name__)
            return 503, {"error": "could not store the posts, try again"}
        log.info("ingest: %d posts accepted, %d new", len(posts), new)
        return 200, {"accepted": len(posts), "new": new}

    # --- authentication ------------------------------------------------------------------------

    def _authorized(self, headers: Mapping[str, str], body: bytes) -> bool:
        ok = False
        if self._token is not None:
            scheme, _, given = headers.get("authorization", "").strip().partition(" ")
            if scheme.lower() == "bearer":
                ok |= hmac.compare_digest(_bytes(given.strip()), self._token)
        if self._secret is not None:
            scheme, _, given = headers.get(SIGNATURE_HEADER.lower(), "").strip().partition("=")
            if scheme.strip().lower() == "sha256":
                expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
                ok |= hmac.compare_digest(_bytes(given.strip().lower()), _bytes(expected))
        return ok

    # --- the body ------------------------------------------------------------------------------

    def _parse(self, content_type: str, body: bytes) -> list[Post]:
        """Every post in the body, or `_BadRequest` naming the first thing that is wrong."""
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _BadRequest(f"body is not UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise _BadRequest("body is empty: send a post, an array of posts or JSONL")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type in JSONL_TYPES:
            return self._parse_lines(text)
        data = _loads(text, "body")
        if isinstance(data, list):
            return [_post(item, f"post {index}") for index, item in enumerate(data)]
        if isinstance(data, dict):
            return [_post(data, "post")]
        raise _BadRequest(
            f"body is a JSON {_kind(data)}: send a post (an object), an array of posts or JSONL"
        )

    def _parse_lines(self, text: str) -> list[Post]:
        posts = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                posts.append(_post(_loads(line, f"line {number}"), f"line {number}"))
        return posts


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg == "Extra data" and where == "body":
            hint = "; for one post per line send Content-Type: application/x-ndjson"
        raise _BadRequest(
            f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        raise _BadRequest(f"{where} is not JSON we can read: {type(exc).__name__}") from None


def _post(data: Any, where: str) -> Post:
    try:
        return Post.from_dict(data)
    except PostError as exc:
        field = str(exc).split(":", 1)[0]  # "created_at: not an ISO 8601 date-time: '…'"
        raise _BadRequest(f"{where}: {exc}", f"{where}: bad {field}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a number too big for a float
        raise _BadRequest(f"{where}: not a valid post ({type(exc).__name__})") from None


def _kind(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, str):
        return "string"
    return "number"


def _credentials(settings: WebhookSource, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The token and the HMAC secret from the environment (None when unset or blank)."""
    token = env.get(settings.token_env, "").strip() or None
    secret = env.get(settings.hmac_secret_env, "").strip() or None
    if token is None and secret is None:
        raise SourceUnavailable(f"webhook: set {settings.token_env} or {settings.hmac_secret_env}")
    return token, secret


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
