"""Generic webhook notifier: one signed JSON POST per alert or digest, for any HTTP tool.

The body (`payload(alert)`, schema version `SCHEMA_VERSION`; fields are only ever added within a
version) is UTF-8 JSON:

    {"version": 1, "event": "alert",
     "alert": {"id", "level", "score", "headline", "organisation": {"id", "name"},
               "branch": {"id", "name"} | null, "search", "labels", "reasons", "evidence",
               "distance_km", "follow_up": {"parent_alert_id", "kind"} | null,
               "incident": {"key", "topic", "window_seconds", "summary", "posts": [...]} | null},
     "post": the canonical post (shared/schemas/post.schema.json)}

`follow_up.kind` is reply, duplicate, spike, reach or escalation (a critical alert nobody
acknowledged in time, re-sent to the on-call receiver).

A digest (`send_digest`, `digest_payload(digest)`: the alerts a route held back, as one request)
has the same envelope with `"event": "digest"`:

    {"version": 1, "event": "digest",
     "digest": {"id", "receiver", "route", "reason" ("digest" | "quiet"), "title",
                "opened_at", "due_at" (ISO 8601, UTC), "count"},
     "alerts": [the body `send` POSTs for each alert (version, event "alert", alert, post),
                oldest first]}

Post text is untrusted and travels as JSON strings: nothing is rendered as HTML or markup.
A retry sends the same body again (with a new timestamp and signature) and the same
`Idempotency-Key` header: `idempotency_key(alert_id, receiver)` ("alert-12:hook", a digest's
"digest-3:hook"), so receivers can deduplicate on it (or on `alert.id` / `digest.id`).

Each request is signed like Slack's and GitHub's: `X-Listener-Timestamp` is the Unix time in
seconds, and `X-Listener-Signature: sha256=<hex>` the HMAC-SHA256, keyed with the secret from
the environment variable `secret_env`, of the bytes `<timestamp>.<body>`. A receiver recomputes
it over the raw body, compares with `hmac.compare_digest`, and refuses timestamps more than a
few minutes off (replays).

Errors are classified here once: network trouble, timeouts, HTTP 429 (its `Retry-After` goes back
to the outbox) and 5xx are transient; any other non-2xx answer (4xx, a redirect) is permanent.
The URL (from `url_env`) and the secret are secrets: repr and error messages show them masked
(`https://hooks.example.org/…abcd`), server answers are scrubbed of them, and httpx's own log
lines have them replaced by '***'. `post_json`, `mask_url` and `retry_after` are shared with
`listener.notify.slack_webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from listener.alert import AlertMessage, Digest
from listener.config.model import MainFile, Receiver
from listener.notify import (
    NotifierUnavailable,
    TransportError,
    headline,
    idempotency_key,
    mask_secret,
    scrub,
    secret_from_env,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TIMESTAMP_HEADER = "X-Listener-Timestamp"
SIGNATURE_HEADER = "X-Listener-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "listener/0.1 (+https://github.com/listener-webcare/listener)"
DEFAULT_TIMEOUT = 15.0
DEFAULT_RETRY_AFTER = 30.0
ANSWER_MAX = 200  # characters of a server's error answer kept in the message


# --- secrets out of httpx's log lines -------------------------------------------------------

_SECRETS: set[str] = set()


class _Redact(logging.Filter):
    """Replaces every registered secret in the `httpx` logger's records ('HTTP Request: POST
    <url>' names the whole URL) by '***'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            cleaned = scrub(message, *sorted(_SECRETS, key=len, reverse=True))
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_REDACT = _Redact()
logging.getLogger("httpx").addFilter(_REDACT)


def keep_out_of_logs(*secrets: str) -> None:
    """Register secrets that httpx's log lines must not show."""
    _SECRETS.update(s for s in secrets if s)


# --- HTTP, shared with slack_webhook ---------------------------------------------------------


def http_url(env: Mapping[str, str], name: str, inactive: str) -> str:
    """The http(s) URL in environment variable `name`, or NotifierUnavailable (never showing
    the value: it is a secret)."""
    value = secret_from_env(env, name, inactive)
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise NotifierUnavailable(
            f"{inactive}: environment variable {name} does not hold an http(s) URL"
        )
    return value


def mask_url(url: str) -> str:
    """'https://hooks.slack.com/…abcd': the scheme and host, the rest masked like a token."""
    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{parsed.host}{port}/{mask_secret(url)}"
    except (httpx.InvalidURL, TypeError, ValueError):
        return mask_secret(url)


def url_secrets(url: str) -> tuple[str, ...]:
    """What to scrub from messages for a secret URL: the URL, and its path and query when they
    are long enough to be a secret (not '/')."""
    try:
        raw = httpx.URL(url).raw_path.decode("ascii", "replace")
    except (httpx.InvalidURL, TypeError, ValueError):
        raw = ""
    return (url, raw) if len(raw) >= 8 else (url,)


def make_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """A client as the webhook notifiers use it: a timeout, no redirects followed."""
    return httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT})


def retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return DEFAULT_RETRY_AFTER


def post_json(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    where: str,
    secrets: tuple[str, ...],
) -> httpx.Response:
    """POST `body`; the 2xx response, or TransportError classified as the module says."""
    try:
        response = client.post(
            url, content=body, headers={"Content-Type": "application/json", **headers}
        )
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        message = scrub(f"{where}: bad URL: {type(exc).__name__}: {exc}", *secrets)
        raise TransportError(message, permanent=True) from None
    except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
        reason = str(exc) or type(exc).__name__
        message = scrub(f"{where}: {type(exc).__name__}: {reason}", *secrets)
        raise TransportError(message, permanent=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    answer = " ".join(response.text.split())
    if len(answer) > ANSWER_MAX:
        answer = answer[: ANSWER_MAX - 1] + "…"
    message = scrub(f"{where}: HTTP {status}" + (f": {answer}" if answer else ""), *secrets)
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        raise TransportError(f"{message}; retry after {wait:g}s", permanent=False, retry_after=wait)
    if status >= 500:
        raise TransportError(message, permanent=False)
    raise TransportError(message, permanent=True)


# --- the JSON body and its signature ---------------------------------------------------------


def payload(alert: AlertMessage) -> dict[str, Any]:
    """The webhook body for `alert` (schema `SCHEMA_VERSION`, described in the module docs)."""
    follow = alert.follow_up
    incident = alert.incident
    return {
        "version": SCHEMA_VERSION,
        "event": "alert",
        "alert": {
            "id": alert.alert_id,
            "level": alert.level,
            "score": alert.score,
            "headline": headline(alert),
            "organisation": {"id": alert.org_id, "name": alert.org_name},
            "branch": (
                {"id": alert.branch_id, "name": alert.branch_name}
                if alert.branch_id is not None
                else None
            ),
            "search": alert.search_id,
            "labels": list(alert.labels),
            "reasons": list(alert.reasons),
            "evidence": list(alert.evidence),
            "distance_km": alert.distance_km,
            "follow_up": (
                {"parent_alert_id": follow.parent_alert_id, "kind": follow.kind}
                if follow is not None
                else None
            ),
            "incident": (
                {
                    "key": incident.key,
                    "topic": incident.topic,
                    "window_seconds": incident.window_seconds,
                    "summary": incident.summary,
                    "posts": [
                        {
                            "alert_id": m.alert_id,
                            "post_id": m.post_id,
                            "text": m.text,
                            "url": m.url,
                            "created_at": m.created_at,
                        }
                        for m in incident.members
                    ],
                }
                if incident is not None
                else None
            ),
        },
        "post": alert.post.to_dict(),
    }


def digest_payload(digest: Digest) -> dict[str, Any]:
    """The webhook body for `digest`: its facts and each alert's `payload`."""
    return {
        "version": SCHEMA_VERSION,
        "event": "digest",
        "digest": {
            "id": digest.digest_id,
            "receiver": digest.receiver,
            "route": digest.route,
            "reason": digest.reason,
            "title": digest.title,
            "opened_at": digest.opened_at,
            "due_at": digest.due_at,
            "count": len(digest.alerts),
        },
        "alerts": [payload(alert) for alert in digest.alerts],
    }


def encode(alert: AlertMessage) -> bytes:
    """The exact bytes sent (and signed)."""
    return _json(payload(alert))


def encode_digest(digest: Digest) -> bytes:
    """The exact bytes sent (and signed) for a digest."""
    return _json(digest_payload(digest))


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """'sha256=<hex>': HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`."""
    message = timestamp.encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each alert as signed JSON to one URL."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "webhook",
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._masked_url = mask_url(url)
        self._masked_secret = mask_secret(secret)
        self._client = client or make_client()
        self._clock = clock
        self._secrets = (*url_secrets(url), secret)
        keep_out_of_logs(*self._secrets)

    @classmethod
    def from_receiver(
        cls,
        receiver: Receiver,
        main: MainFile,
        *,
        templates_dir: Path,
        env: Mapping[str, str],
        console: Console | None = None,
    ) -> WebhookNotifier:
        inactive = f"webhook receiver {receiver.id!r} inactive"
        assert receiver.url_env is not None and receiver.secret_env is not None  # validated
        url = http_url(env, receiver.url_env, inactive)
        secret = secret_from_env(env, receiver.secret_env, inactive)
        return cls(url, secret, name=receiver.id)

    def __repr__(self) -> str:
        return (
            f"WebhookNotifier(name={self.name!r}, url={self._masked_url!r}, "
            f"secret={self._masked_secret!r})"
        )

    def send(self, alert: AlertMessage) -> str | None:
        self._post(encode(alert), idempotency_key(alert.alert_id, self.name))
        return None

    def send_digest(self, digest: Digest) -> str | None:
        self._post(encode_digest(digest), idempotency_key(digest.digest_id, self.name, digest=True))
        return None

    def _post(self, body: bytes, key: str) -> None:
        timestamp = str(int(self._clock()))
        headers = {
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: key,
        }
        post_json(
            self._client,
            self._url,
            body,
            headers,
            where=f"webhook POST to {self._masked_url}",
            secrets=self._secrets,
        )
