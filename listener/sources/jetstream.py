"""Jetstream: every new Bluesky post, over a websocket, bridged to the daemon's polling.

Jetstream (SOURCES.md section 1b) streams the whole network's commits as JSON; we ask for
`wantedCollections=app.bsky.feed.post` and grep the text ourselves. The daemon polls, so
`JetstreamSource` keeps one background thread that holds the websocket open and puts the posts it
reads on a bounded queue; each `fetch` drains that queue.

- The thread starts on the first `fetch(cursor)`. It resumes `rewind` before the stored cursor
  (`?cursor=<time_us>`; no cursor parameter when there is none, which means "live").
- Only `kind == "commit"`, `operation == "create"` on `app.bsky.feed.post` become posts; deletes,
  updates, identity and account events and other collections are ignored (not counted as skipped).
  A message that is not JSON, not an object, has no integer `time_us`, or a post create without a
  usable record is *malformed*: logged, counted, and reported in the next batch's `skipped`.
- A post's id is `bluesky:at://<did>/app.bsky.feed.post/<rkey>`, the id the Bluesky search source
  gives the same post, so the store de-duplicates across both. Its source is "jetstream"; the
  author's handle is the DID (Jetstream carries no handle) and followers are unknown.
  `reply_to` is the parent post's id in the same form (`bluesky:<parent uri>`).
- **A full queue never blocks the socket: the oldest queued post is dropped** (webcare wants the
  freshest posts, and a consumer that keeps falling behind then lags by at most `queue_size`
  posts instead of for ever). Drops are counted in `dropped` and logged by the next `fetch`.
- Delivery is at least once, so `fetch` de-duplicates on (did, rkey, cid) against a bounded
  memory of recent keys (a reconnect rewinds a few seconds and replays those posts).
- The batch cursor is JSON `{"time_us": <newest time_us in the batch>}`. If the next `fetch` is
  not handed that cursor back (the daemon could not save the batch), the batch is delivered
  again, so a failed save loses nothing.
- When the socket closes or fails, the thread reconnects to the *next* instance after an
  exponential back-off with jitter (reset once a connection delivers messages), resuming from the
  newest `time_us` seen minus `rewind`. A connection silent for `idle_timeout` is taken as stalled.
- A `fetch` while reconnects keep failing logs a warning; if no instance was reachable at all
  since the previous fetch and nothing is queued, it raises a transient `SourceError`, so the
  daemon's health check sees the outage.
- `close()` stops the thread (a daemon thread, so it never holds the process up either).

Counters for `listener sources`: `received` (websocket messages), `posts` (posts queued),
`dropped`, `malformed`, `duplicates`, `reconnects`, plus `connected`, `instance` and `last_error`;
`stats()` returns the counters as a dict.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.exceptions import InvalidURI
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from listener.post import Author, Post, PostError, parse_datetime
from listener.sources import Batch, SourceError

if TYPE_CHECKING:
    import httpx

    from listener.config.model import JetstreamSource as JetstreamSettings
    from listener.config.model import Organisation, Search

log = logging.getLogger(__name__)

POST_COLLECTION = "app.bsky.feed.post"
USER_AGENT = "listener/0.1 (webcare social listening)"

Key = tuple[str, str, str | None]  # (did, rkey, cid): one event, however often it is delivered


class Malformed(ValueError):
    """A message we cannot use; the reason is logged."""


@dataclass(frozen=True, slots=True)
class PostEvent:
    """One post create read from the socket, as queued for `fetch`."""

    time_us: int
    key: Key
    post: Post


def instance_url(instance: str) -> str:
    """`wss://host/subscribe` for a configured instance; a bare host gets scheme and path.
    Raises ValueError for anything that is not a ws:// or wss:// URL."""
    text = instance.strip()
    if "://" not in text:
        text = f"wss://{text}"
    parts = urlsplit(text)
    if not parts.path or parts.path == "/":
        parts = parts._replace(path="/subscribe")
    url = urlunsplit(parts)
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"jetstream: bad instance URL {instance!r}: {exc}") from exc
    return url


def subscribe_url(instance: str, cursor: int | None) -> str:
    """The instance URL with `wantedCollections=app.bsky.feed.post` and, if given, `cursor`."""
    parts = urlsplit(instance_url(instance))
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in ("wantedCollections", "cursor")
    ]
    query.append(("wantedCollections", POST_COLLECTION))
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def parse_message(raw: str | bytes) -> tuple[int, PostEvent | None]:
    """(time_us, item) for one Jetstream message; item is None for an event we ignore.
    Raises `Malformed` for a message we cannot read."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed("a binary message that is not UTF-8 (compressed?)") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise Malformed(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Malformed("not a JSON object")
    time_us = data.get("time_us")
    if isinstance(time_us, bool) or not isinstance(time_us, int) or time_us <= 0:
        raise Malformed("time_us: missing or not a positive integer")
    if data.get("kind") != "commit":
        return time_us, None  # identity and account events
    commit = data.get("commit")
    if not isinstance(commit, dict):
        raise Malformed("commit: missing or not an object")
    if commit.get("collection") != POST_COLLECTION or commit.get("operation") != "create":
        return time_us, None  # deletes carry no record; updates and other collections
    return time_us, _item(data, commit, time_us)


def _item(data: dict[str, Any], commit: dict[str, Any], time_us: int) -> PostEvent:
    did, rkey, cid = data.get("did"), commit.get("rkey"), commit.get("cid")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise Malformed("did: missing or not a DID")
    if not isinstance(rkey, str) or not rkey or "/" in rkey:
        raise Malformed("commit.rkey: missing or not a record key")
    if cid is not None and not isinstance(cid, str):
        raise Malformed("commit.cid: not a string")
    record = commit.get("record")
    if not isinstance(record, dict):
        raise Malformed("commit.record: missing or not an object")
    text = record.get("text")
    if not isinstance(text, str):
        raise Malformed("record.text: missing or not a string")
    try:
        created_at = parse_datetime(record.get("createdAt"), "createdAt")
    except PostError:
        # A post with a missing or odd createdAt is still a post: use when Jetstream saw it.
        created_at = datetime.fromtimestamp(time_us / 1_000_000, tz=UTC)
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    reply_to = None
    reply = record.get("reply")
    if isinstance(reply, dict) and isinstance(reply.get("parent"), dict):
        parent_uri = reply["parent"].get("uri")
        if isinstance(parent_uri, str) and parent_uri.startswith("at://"):
            reply_to = f"bluesky:{parent_uri}"
    post = Post(
        id=f"bluesky:at://{did}/{POST_COLLECTION}/{rkey}",
        source="jetstream",
        text=text,
        created_at=created_at,
        url=f"https://bsky.app/profile/{did}/post/{rkey}",
        lang=lang,
        author=Author(handle=did),
        reply_to=reply_to,
    )
    return PostEvent(time_us=time_us, key=(did, rkey, cid), post=post)


def parse_cursor(cursor: str | None) -> int | None:
    """The `time_us` in a stored cursor; None for none or an unreadable one (logged)."""
    if cursor is None:
        return None
    try:
        time_us = json.loads(cursor)["time_us"]
        if isinstance(time_us, bool) or not isinstance(time_us, int) or time_us <= 0:
            raise ValueError(cursor)
    except (ValueError, KeyError, TypeError):
        log.warning("jetstream: ignoring unreadable cursor %r, starting live", cursor)
        return None
    return time_us


class JetstreamSource:
    """Bluesky's whole post stream from Jetstream instances, queued for the daemon's polls."""

    name = "jetstream"

    def __init__(
        self,
        instances: Sequence[str],
        *,
        key: str = "jetstream",
        interval: timedelta = timedelta(seconds=5),
        rewind: timedelta = timedelta(seconds=5),
        queue_size: int = 10_000,
        batch: int = 500,
        recent: int = 20_000,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        idle_timeout: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if not instances:
            raise ValueError("jetstream: no instances configured")
        if queue_size < 1 or batch < 1 or recent < 1:
            raise ValueError("jetstream: queue_size, batch and recent must be at least 1")
        self.instances = [instance_url(instance) for instance in instances]
        self.key = key
        self.interval = interval
        self.rewind_us = int(rewind / timedelta(microseconds=1))
        self.queue_size = queue_size
        self.batch = batch
        self.recent_size = recent
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.idle_timeout = idle_timeout
        self._rng = rng or random.Random()

        # Counters (read by `listener sources`; written by the socket thread, except duplicates).
        self.received = 0
        self.posts = 0
        self.dropped = 0
        self.malformed = 0
        self.duplicates = 0
        self.reconnects = 0
        self.connected = False
        self.instance: str | None = None
        self.last_error: str | None = None

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified on every state change
        self._queue: deque[PostEvent] = deque(maxlen=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: ClientConnection | None = None
        self._closed = False
        self._fetch_lock = threading.Lock()
        self._seen_us: int | None = None  # newest time_us read from the socket
        self._opened = 0  # connections opened, ever
        self._failures = 0  # connection failures, ever
        # What the previous fetch saw, to report only what changed since.
        self._last_opened = 0
        self._last_failures = 0
        self._last_dropped = 0
        self._last_malformed = 0
        self._recent: OrderedDict[Key, None] = OrderedDict()
        # The last non-empty batch until its cursor comes back: (cursor, posts, newest time_us).
        self._unconfirmed: tuple[str, list[Post], int] | None = None

    # --- the daemon's side ------------------------------------------------------------------

    def fetch(self, cursor: str | None) -> Batch:
        """Drain up to `batch` queued posts; start the socket thread on the first call."""
        with self._fetch_lock:
            return self._fetch(cursor)

    def _fetch(self, cursor: str | None) -> Batch:
        first = self._thread is None
        if not self._closed and (first or not self._thread_alive()):
            if not first:
                log.error("jetstream: the socket thread died, starting it again")
            self._start(parse_cursor(cursor))

        redelivered: list[Post] = []
        newest: int | None = None
        if self._unconfirmed is not None:
            sent_cursor, sent_posts, sent_newest = self._unconfirmed
            self._unconfirmed = None
            if cursor != sent_cursor:
                log.info(
                    "jetstream: the last batch (%d posts) was not saved, delivering it again",
                    len(sent_posts),
                )
                redelivered, newest = sent_posts, sent_newest

        with self._lock:
            take = max(0, self.batch - len(redelivered))
            items = [self._queue.popleft() for _ in range(min(take, len(self._queue)))]
            more = bool(self._queue)
            opened, failures = self._opened, self._failures
            dropped, malformed = self.dropped, self.malformed
            connected, last_error = self.connected, self.last_error

        posts = list(redelivered)
        for item in items:
            newest = item.time_us if newest is None else max(newest, item.time_us)
            if item.key in self._recent:
                self._recent.move_to_end(item.key)
                self.duplicates += 1
                continue
            self._recent[item.key] = None
            if len(self._recent) > self.recent_size:
                self._recent.popitem(last=False)
            posts.append(item.post)

        if dropped > self._last_dropped:
            log.warning(
                "jetstream: queue full, dropped the %d oldest posts since the last fetch "
                "(%d in all); raise queue_size or shorten the interval",
                dropped - self._last_dropped,
                dropped,
            )
        self._last_dropped = dropped
        reached = connected or opened > self._last_opened
        failed = failures - self._last_failures
        if not first and not self._closed and not reached and not items and not posts:
            # Nothing consumed: the skipped count and the failures stay for the next fetch.
            raise SourceError(
                f"jetstream: no instance reachable since the last fetch "
                f"({failed} failed attempts; last error: {last_error})",
                transient=True,
            )
        skipped = malformed - self._last_malformed
        self._last_malformed = malformed
        if not first:  # the first fetch only started the thread: judge its connects next time
            self._last_opened, self._last_failures = opened, failures
        if failed and not first:
            log.warning(
                "jetstream: %d disconnects or failed connects since the last fetch%s; "
                "last error: %s",
                failed,
                "" if reached else ", no instance reachable",
                last_error,
            )

        new_cursor = None
        if newest is not None:
            new_cursor = json.dumps({"time_us": newest})
            if posts:
                self._unconfirmed = (new_cursor, posts, newest)
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped, more=more)

    def close(self) -> None:
        """Stop the socket thread and close the connection; queued posts stay fetchable."""
        self._closed = True
        self._stop.set()
        with self._lock:
            ws = self._ws
            self._changed.notify_all()
        if ws is not None:
            ws.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.close_timeout + 1.0)
            if thread.is_alive():
                log.warning("jetstream: the socket thread did not stop in time")

    def stats(self) -> dict[str, int]:
        """The counters, for `listener sources`."""
        return {
            "received": self.received,
            "posts": self.posts,
            "queued": len(self._queue),
            "dropped": self.dropped,
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "reconnects": self.reconnects,
        }

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (it is checked whenever the socket thread changes
        something) or `timeout` seconds pass; whether it holds. For tests and tools."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    @property
    def running(self) -> bool:
        """Whether the socket thread is alive."""
        return self._thread_alive()

    # --- the socket thread ------------------------------------------------------------------

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start(self, start_us: int | None) -> None:
        self._thread = threading.Thread(
            target=self._run,
            args=(start_us,),
            name=f"jetstream:{self.key}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, start_us: int | None) -> None:
        index = 0
        failures_in_a_row = 0
        while not self._stop.is_set():
            instance = self.instances[index]
            resume = self._seen_us if self._seen_us is not None else start_us
            cursor = None if resume is None else max(1, resume - self.rewind_us)
            healthy = self._session(instance, cursor)
            if self._stop.is_set():
                break
            failures_in_a_row = 0 if healthy else failures_in_a_row + 1
            with self._lock:
                self.reconnects += 1
                self._changed.notify_all()
            index = (index + 1) % len(self.instances)
            delay = min(self.backoff_max, self.backoff_base * 2 ** max(0, failures_in_a_row - 1))
            delay *= self._rng.uniform(0.5, 1.0)  # jitter: clients that failed together retry apart
            log.info("jetstream: reconnecting to %s in %.2fs", self.instances[index], delay)
            self._stop.wait(delay)
        log.info("jetstream: socket thread stopped")

    def _session(self, instance: str, cursor: int | None) -> bool:
        """One connection, read until it ends or fails; whether it delivered any message."""
        delivered = False
        try:
            ws = connect(
                subscribe_url(instance, cursor),
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
                user_agent_header=USER_AGENT,
            )
            with ws:
                with self._lock:
                    if self._stop.is_set():
                        return False
                    self._ws = ws
                    self.connected = True
                    self.instance = instance
                    self._opened += 1
                    self._changed.notify_all()
                log.info("jetstream: connected to %s (cursor %s)", instance, cursor)
                while not self._stop.is_set():
                    try:
                        raw = ws.recv(timeout=self.idle_timeout)
                    except TimeoutError:
                        raise TimeoutError(f"no message for {self.idle_timeout:g}s") from None
                    delivered = True
                    self._handle(raw, instance)
        except Exception as exc:  # any failure means: try the next instance
            self._failed(instance, exc)
        finally:
            with self._lock:
                self._ws = None
                self.connected = False
                self._changed.notify_all()
        return delivered

    def _failed(self, instance: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._failures += 1
            self.last_error = f"{instance}: {error}"
            self._changed.notify_all()
        if self._stop.is_set():
            return
        log.warning("jetstream: %s: %s", instance, error)

    def _handle(self, raw: str | bytes, instance: str) -> None:
        try:
            time_us, item = parse_message(raw)
        except Malformed as exc:
            with self._lock:
                self.received += 1
                self.malformed += 1
                count = self.malformed
                self._changed.notify_all()
            # The first ones, then every thousandth: a firehose can repeat one fault very often.
            level = logging.WARNING if count <= 10 or count % 1000 == 0 else logging.DEBUG
            log.log(level, "jetstream: %s: malformed message #%d: %s", instance, count, exc)
            return
        with self._lock:
            self.received += 1
            if self._seen_us is None or time_us > self._seen_us:
                self._seen_us = time_us
            if item is not None:
                self.posts += 1
                if len(self._queue) == self.queue_size:
                    self.dropped += 1  # the deque drops its oldest item on append
                self._queue.append(item)
            self._changed.notify_all()


def build(
    settings: JetstreamSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[JetstreamSource]:
    """The one Jetstream source `[sources.jetstream]` describes; it needs no credentials."""
    return [
        JetstreamSource(
            settings.instances,
            interval=settings.interval,
            rewind=settings.rewind,
            queue_size=settings.queue_size,
        )
    ]


__all__ = ["JetstreamSource", "build", "parse_message", "subscribe_url"]
