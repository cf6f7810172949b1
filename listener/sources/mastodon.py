"""Mastodon: hashtag timelines per instance, and statuses search with a user token.

Each `[[sources.mastodon.instances]]` entry gives:

- one `MastodonHashtagSource` per hashtag in its `hashtags` (key
  "mastodon:<host>:tag:<tag>"). Only the configured hashtags are read: listener does not turn
  organisation names into tags, so add an organisation's own tags (e.g. "biebeemland") to
  `hashtags` yourself. Tags are compared without '#' and case (Mastodon's tags ignore case).
- when the instance has `token_env` and the environment holds a token there: one
  `MastodonSearchSource` per saved search that includes "mastodon" in its `sources` (or lists
  none), key "mastodon:<host>:search:<search id>". Full-text search needs a user token with
  `read:search` and an instance with Elasticsearch; it only finds posts whose authors opted in
  to search (`indexable`), so hashtags stay the reliable route (SOURCES.md section 2). Without
  a token `build` skips the search sources and raises nothing: hashtags are public.

Hashtag timeline (`GET /api/v1/timelines/tag/:hashtag`): the first fetch (no cursor) takes one
page of the newest statuses; later fetches page forward with `min_id=<newest id seen>` and
`limit=40` until a page comes back empty. Mastodon answers a `min_id` request with the `limit`
statuses just above `min_id`, newest first (`paginate_by_min_id(...).reverse` in its
Paginable concern), so every page is sorted by id here before use: posts come out oldest to
newest and the next `min_id` is the page's highest id. The cursor is JSON `{"min_id": "<id>"}`.
At most `max_pages` pages are read per fetch; when that cap is hit the batch says `more`.

Statuses search (`GET /api/v2/search?type=statuses`): Mastodon's query language has no OR
(plain words and "phrases" are all required), so each of the search's phrases (brand: the
organisation's name, aliases and the search's terms; local: its terms, the towns are left to
listener's matcher) is its own query. With a cursor every query is read with `min_id` and
`offset` paging until a short page, so the order of the results does not matter; the cursor is
the highest status id seen, like the hashtag timeline's.

Before its first fetch a source asks the instance `GET /api/v2/instance` once (shared by all
sources of one instance, per process). Mastodon 4.5 reports
`configuration.timelines_access.hashtag_feeds = {"local": ..., "remote": ...}`, each one of
"public", "authenticated" or "disabled". Assumed, defensively: a missing field (older servers,
or a 404 for `/api/v2/instance` on servers older than 4.0) means "public"; a plain string in
place of the object applies to both; if either of local/remote is "authenticated" and no token is
configured, hashtag sources fail permanently and say to set `token_env`; if both are
"disabled", they fail permanently too.

Status to post: id "mastodon:<status uri>" (the ActivityPub id, the same on every instance);
text is the content warning and the HTML content as plain text; a boost (reblog) becomes the
boosted status itself (its uri, text, author, url and counts), so it is recognisable as that
post and the store keeps one copy of it however often it is boosted; within one batch the
repeat is dropped. The author's location is the value of a profile field whose name looks like
a location ("📍", "Lives in", "Woont in", "Location", "Locatie", "Woonplaats", …). `reply_to` stays
None: Mastodon gives only the parent's local id, not its uri.

Errors become `SourceError` in `MastodonInstance.get`: 429 (with `retry_after` from Retry-After or
X-RateLimit-Reset), 5xx, timeouts, network errors and bodies that are not JSON are transient;
401, 403 and other 4xx are permanent, except a 404 for a hashtag, which is an empty batch. When
a later page of a forward read fails transiently, the pages read so far are returned (and the
cursor moves to the last of them); the next fetch goes on from there.
"""

from __future__ import annotations

import json
import logging
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

import httpx

from listener.post import Author, Engagement, Post, PostError, parse_datetime
from listener.sources import Batch, SourceError, brand_names, search_terms, uses
from listener.sources.rss import html_to_text, parse_retry_after

if TYPE_CHECKING:
    from listener.config.model import MastodonSource as MastodonSettings
    from listener.config.model import Organisation, Search

log = logging.getLogger(__name__)

NAME = "mastodon"
PAGE_LIMIT = 40  # the most Mastodon gives per page, for timelines and for search
USER_AGENT = "listener/0.1 (+https://github.com/listener-webcare/listener)"

# Profile field names that hold a place, compared after `_field_label` (letters only, casefolded).
LOCATION_LABELS = frozenset(
    {
        "location",
        "locatie",
        "lives in",
        "living in",
        "based in",
        "woont in",
        "woonplaats",
        "standplaats",
        "plaats",
        "city",
        "stad",
    }
)
LOCATION_PIN = "📍"  # a field named with the pin is a location whatever its words


class MalformedStatus(ValueError):
    """A status that cannot become a post; the message says why."""


class ApiReply(NamedTuple):
    """A good answer: its JSON (None for a 404) and X-RateLimit-Remaining, when given."""

    data: Any
    rate_remaining: int | None


class MastodonInstance:
    """One configured instance: its API base URL, optional token, and what it said about access.

    Shared by every source of that instance; `info()` asks `GET /api/v2/instance` once per
    process (again only after a transient failure). The token never appears in `repr`.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client,
        token: str | None = None,
        token_env: str | None = None,
        timeout: timedelta = timedelta(seconds=20),
        user_agent: str = USER_AGENT,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.base_url = base_url(url)
        parts = urlsplit(self.base_url)
        self.host = parts.netloc.lower()
        self.domain = (parts.hostname or self.host).lower()  # replaced by the instance's own
        self.client = client
        self.token = token or None
        self.token_env = token_env
        self.timeout = timeout
        self.user_agent = user_agent
        self.now = now
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        token = "set" if self.token else "none"
        return f"MastodonInstance({self.base_url!r}, token={token})"

    def info(self, key: str) -> dict[str, Any]:
        """What `GET /api/v2/instance` said (empty when it said nothing usable); asked once."""
        with self._lock:
            if self._info is None:
                self._info = self._fetch_info(key)
                domain = self._info.get("domain")
                if isinstance(domain, str) and domain.strip():
                    self.domain = domain.strip().lower()
            return self._info

    def hashtag_access(self, key: str) -> tuple[str, str]:
        """`timelines_access.hashtag_feeds` as (local, remote); "public" when not given."""
        configuration = self.info(key).get("configuration")
        access = configuration.get("timelines_access") if isinstance(configuration, dict) else None
        feeds = access.get("hashtag_feeds") if isinstance(access, dict) else None
        if isinstance(feeds, str):
            return _level(feeds), _level(feeds)
        if isinstance(feeds, dict):
            return _level(feeds.get("local")), _level(feeds.get("remote"))
        return "public", "public"

    def check_hashtag_access(self, key: str) -> None:
        """Raise a permanent `SourceError` when this instance will not show us hashtag feeds."""
        local, remote = self.hashtag_access(key)
        if local == remote == "disabled":
            raise SourceError(
                f"{self.host}: hashtag timelines are disabled on this instance "
                "(timelines_access = disabled): read the hashtags on another instance",
                transient=False,
            )
        if "authenticated" in (local, remote) and not self.token:
            raise SourceError(
                f"{self.host}: hashtag timelines need a login on this instance "
                "(timelines_access = authenticated): set token_env",
                transient=False,
            )

    def get(self, key: str, path: str, params: Mapping[str, str | int] | None = None) -> ApiReply:
        """GET a JSON API path; every failure becomes `SourceError` (see the module docstring).
        A 404 gives `data=None`: the caller decides what that means."""
        response = self._send(key, path, params)
        remaining = _int_header(response, "x-ratelimit-remaining")
        if response.status_code == 404:
            return ApiReply(None, remaining)
        self._raise_for_status(key, path, response)
        try:
            return ApiReply(response.json(), remaining)
        except ValueError as exc:
            raise SourceError(f"{key}: {self.host}{path} did not answer JSON: {exc}") from exc

    def _fetch_info(self, key: str) -> dict[str, Any]:
        try:
            data = self.get(key, "/api/v2/instance").data
        except SourceError as exc:
            if exc.transient and "did not answer JSON" in str(exc):
                log.warning("%s: cannot read the instance information; assuming public feeds", key)
                return {}
            raise
        if data is None:
            log.info("%s: %s has no /api/v2/instance (older than 4.0)", key, self.host)
            return {}
        if not isinstance(data, dict):
            log.warning("%s: the instance information is not an object; assuming public feeds", key)
            return {}
        return data

    def _send(self, key: str, path: str, params: Mapping[str, str | int] | None) -> httpx.Response:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url + path
        try:
            return self.client.get(
                url,
                params=dict(params or {}),
                headers=headers,
                timeout=self.timeout.total_seconds(),
                follow_redirects=True,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceError(f"{key}: bad instance URL {url}: {exc}", transient=False) from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"{key}: {self.host}{path}: {reason}") from exc

    def _raise_for_status(self, key: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = _error_detail(response)
        message = f"{key}: {self.host}{path} answered HTTP {status}"
        if detail:
            message += f" ({detail})"
        if status == 429:
            raise SourceError(message, transient=True, retry_after=self._retry_after(response))
        if status >= 500 or status == 408:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.now())
            raise SourceError(message, transient=True, retry_after=retry_after)
        needs_login = status == 401 or "authenticated user" in detail.lower()
        if not self.token and needs_login:
            message += ": this instance needs a login for this: set token_env"
        elif self.token and status == 401:
            message += f": the token in {self.token_env} was refused: check it"
        elif self.token and status == 403:
            message += (
                f": the token in {self.token_env} may not do this: it needs the read:statuses "
                "and read:search scopes"
            )
        raise SourceError(message, transient=False)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait after a 429: Retry-After, else until X-RateLimit-Reset."""
        now = self.now()
        seconds = parse_retry_after(response.headers.get("retry-after"), now)
        if seconds is not None:
            return seconds
        reset = (response.headers.get("x-ratelimit-reset") or "").strip()
        if not reset:
            return None
        if reset.isdigit():  # not Mastodon's form (an ISO 8601 time), but seen elsewhere
            value = float(reset)
            return max(0.0, value - now.timestamp()) if value > 1e9 else value
        try:
            moment = parse_datetime(reset, "X-RateLimit-Reset")
        except PostError:
            return None
        return max(0.0, (moment - now).total_seconds())


class MastodonHashtagSource:
    """One hashtag's timeline on one instance, read forward with `min_id`."""

    name: str = NAME

    def __init__(
        self,
        instance: MastodonInstance,
        tag: str,
        *,
        interval: timedelta = timedelta(minutes=5),
        max_pages: int = 10,
    ) -> None:
        self.instance = instance
        self.tag = normal_tag(tag)
        if not self.tag:
            raise ValueError(f"mastodon: {tag!r} is not a hashtag")
        self.key = f"mastodon:{instance.host}:tag:{self.tag}"
        self.interval = interval
        self.max_pages = max_pages
        self.path = f"/api/v1/timelines/tag/{quote(self.tag, safe='')}"

    def fetch(self, cursor: str | None) -> Batch:
        """The statuses newer than the cursor, oldest first; see the module docstring."""
        self.instance.check_hashtag_access(self.key)
        min_id = read_cursor(cursor, self.key)
        reader = _BatchReader(self.key, self.instance.domain)
        if min_id is None:
            page, _ = self._page({"limit": PAGE_LIMIT})
            newest = reader.add_page(page)
            return reader.batch(_cursor(newest) if newest else cursor)
        more = False
        for number in range(self.max_pages):
            try:
                page, remaining = self._page({"limit": PAGE_LIMIT, "min_id": min_id})
            except SourceError as exc:
                if number == 0 or not exc.transient:
                    raise
                log.warning("%s: stopping after %d pages: %s", self.key, number, exc)
                break
            if not page:
                break
            newest = reader.add_page(page)
            if newest is None or _id_key(newest) <= _id_key(min_id):
                log.warning("%s: a page brought no newer status ids; stopping here", self.key)
                break
            min_id = newest
            if remaining == 0:
                log.info("%s: rate limit reached; the rest waits for the next fetch", self.key)
                break
        else:
            more = True
        return reader.batch(_cursor(min_id), more=more)

    def _page(self, params: Mapping[str, str | int]) -> tuple[list[Any], int | None]:
        """One page of the timeline (empty for an unknown tag) and the requests left."""
        data, remaining = self.instance.get(self.key, self.path, params)
        if data is None:
            log.info("%s: no such hashtag on %s (404)", self.key, self.instance.host)
            return [], remaining
        if not isinstance(data, list):
            raise SourceError(f"{self.key}: the hashtag timeline is not a list of statuses")
        return data, remaining


class MastodonSearchSource:
    """Statuses search for one saved search on one instance (needs a user token)."""

    name: str = NAME

    def __init__(
        self,
        instance: MastodonInstance,
        search_id: str,
        phrases: Sequence[str],
        *,
        language: str | None = None,
        interval: timedelta = timedelta(minutes=5),
        max_pages: int = 10,
    ) -> None:
        if not instance.token:
            raise ValueError(f"mastodon:{instance.host}: statuses search needs a token")
        self.instance = instance
        self.search_id = search_id
        self.queries = [search_phrase(p, language) for p in _unique(phrases)]
        self.key = f"mastodon:{instance.host}:search:{search_id}"
        self.interval = interval
        self.max_pages = max_pages

    def fetch(self, cursor: str | None) -> Batch:
        """Every query's statuses newer than the cursor (one page each on the first run)."""
        self.instance.info(self.key)  # the instance's own domain, for local handles
        min_id = read_cursor(cursor, self.key)
        reader = _BatchReader(self.key, self.instance.domain)
        newest = min_id
        for query in self.queries:
            offset = 0
            for _ in range(self.max_pages if min_id is not None else 1):
                params: dict[str, str | int] = {"q": query, "type": "statuses"}
                params["limit"] = PAGE_LIMIT
                if min_id is not None:
                    params["min_id"] = min_id
                if offset:
                    params["offset"] = offset
                page = self._page(params)
                top = reader.add_page(page)
                if top is not None and (newest is None or _id_key(top) > _id_key(newest)):
                    newest = top
                if len(page) < PAGE_LIMIT:
                    break
                offset += len(page)
            else:
                if min_id is not None:
                    log.warning("%s: %r has more than %d pages", self.key, query, self.max_pages)
        return reader.batch(_cursor(newest) if newest else cursor)

    def _page(self, params: Mapping[str, str | int]) -> list[Any]:
        data = self.instance.get(self.key, "/api/v2/search", params).data
        if data is None:
            raise SourceError(
                f"{self.key}: {self.instance.host} has no /api/v2/search (404)", transient=False
            )
        statuses = data.get("statuses") if isinstance(data, dict) else None
        if not isinstance(statuses, list):
            raise SourceError(f"{self.key}: the search answer has no list of statuses")
        return statuses


# --- statuses to posts ----------------------------------------------------------------------------


def status_to_post(status: Any, *, local_domain: str) -> Post:
    """A Mastodon status as a canonical post (a boost becomes the boosted status).

    `local_domain` completes the handles of the instance's own accounts ("sanne" →
    "@sanne@mastodon.nl"). Raises `MalformedStatus` for a status that is not usable.
    """
    if not isinstance(status, dict):
        raise MalformedStatus("not a JSON object")
    reblog = status.get("reblog")
    original = reblog if isinstance(reblog, dict) else status
    uri = original.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        raise MalformedStatus("no uri")
    try:
        created_at = parse_datetime(original.get("created_at"), "created_at")
    except PostError as exc:
        raise MalformedStatus(str(exc)) from exc
    content = original.get("content") or ""
    spoiler = original.get("spoiler_text") or ""
    if not isinstance(content, str) or not isinstance(spoiler, str):
        raise MalformedStatus("content and spoiler_text must be strings")
    text = "\n".join(part for part in (spoiler.strip(), html_to_text(content)) if part)
    url = original.get("url")
    language = original.get("language")
    return Post(
        id=f"{NAME}:{uri.strip()}",
        source=NAME,
        text=text,
        created_at=created_at,
        url=url if isinstance(url, str) and url else uri.strip(),
        lang=language if isinstance(language, str) and language else None,
        author=account_to_author(original.get("account"), local_domain=local_domain),
        engagement=Engagement(
            likes=_count(original.get("favourites_count")),
            reposts=_count(original.get("reblogs_count")),
            replies=_count(original.get("replies_count")),
        ),
        reply_to=None,
    )


def account_to_author(account: Any, *, local_domain: str) -> Author:
    """The post's author from a Mastodon account; raises `MalformedStatus` without `acct`."""
    if not isinstance(account, dict):
        raise MalformedStatus("no account")
    acct = account.get("acct")
    if not isinstance(acct, str) or not acct.strip("@ "):
        raise MalformedStatus("the account has no acct")
    acct = acct.strip().lstrip("@")
    handle = f"@{acct}" if "@" in acct else f"@{acct}@{local_domain}"
    name = account.get("display_name")
    return Author(
        handle=handle,
        name=name.strip() if isinstance(name, str) and name.strip() else None,
        location=profile_location(account.get("fields")),
        followers=_count(account.get("followers_count")),
    )


def profile_location(fields: Any) -> str | None:
    """The value (as text) of the first profile field whose name looks like a location."""
    if not isinstance(fields, list):
        return None
    for field in fields:
        if not isinstance(field, dict):
            continue
        name, value = field.get("name"), field.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if not is_location_label(name):
            continue
        text = " ".join(html_to_text(value).split())
        if text:
            return text
    return None


def is_location_label(name: str) -> bool:
    """'📍 Lives in:', 'Woont in', 'LOCATIE', '📍' → True; 'Homepage', '🌍' → False.
    Case, emoji and punctuation do not count; a known label may be followed by more words."""
    if LOCATION_PIN in name:
        return True
    label = _field_label(name)
    return label in LOCATION_LABELS or any(label.startswith(f"{k} ") for k in LOCATION_LABELS)


# --- building -------------------------------------------------------------------------------------


def build(
    settings: MastodonSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[MastodonHashtagSource | MastodonSearchSource]:
    """A hashtag source per (instance, hashtag); with a token, a search source per saved search
    that uses Mastodon. Never raises `SourceUnavailable`: without a token only hashtags run."""
    shared = client if client is not None else httpx.Client()  # lives as long as the process
    env = {} if env is None else env
    sources: list[MastodonHashtagSource | MastodonSearchSource] = []
    for configured in settings.instances:
        token = None
        if configured.token_env:
            token = (env.get(configured.token_env) or "").strip() or None
            if token is None:
                log.warning(
                    "mastodon: environment variable %s is not set: no statuses search on %s",
                    configured.token_env,
                    configured.url,
                )
        instance = MastodonInstance(
            configured.url, client=shared, token=token, token_env=configured.token_env
        )
        tags = _unique(normal_tag(tag) for tag in configured.hashtags)
        for tag in tags:
            sources.append(MastodonHashtagSource(instance, tag, interval=settings.interval))
        if token is None:
            continue
        for search in searches:
            if not uses(search, NAME):
                continue
            phrases = search_phrases(search, organisations)
            if not phrases:
                continue
            language = search.languages[0] if len(search.languages) == 1 else None
            sources.append(
                MastodonSearchSource(
                    instance,
                    search.id,
                    phrases,
                    language=language,
                    interval=search.interval or settings.interval,
                )
            )
    return sources


def search_phrases(search: Search, organisations: Mapping[str, Organisation]) -> list[str]:
    """What to look for: a brand search's organisation name, aliases and terms; a local
    search's terms (Mastodon cannot AND them with a list of towns; the matcher does that)."""
    if search.kind == "local":
        return _unique(search_terms(search))
    return _unique(brand_names(search, organisations))


def search_phrase(phrase: str, language: str | None = None) -> str:
    """One Mastodon search query: the phrase (quoted when several words), maybe a language."""
    cleaned = " ".join(phrase.replace('"', " ").split())
    query = f'"{cleaned}"' if " " in cleaned else cleaned
    return f"{query} language:{language}" if language else query


def normal_tag(tag: str) -> str:
    """'#Bieb ' → 'bieb'."""
    return unicodedata.normalize("NFC", tag.strip().lstrip("#").strip()).casefold()


def base_url(url: str) -> str:
    """'mastodon.nl', 'https://mastodon.nl/' → 'https://mastodon.nl'."""
    url = url.strip()
    if "://" not in url:
        url = f"https://{url}"
    return url.rstrip("/")


def read_cursor(cursor: str | None, key: str) -> str | None:
    """The `min_id` in a cursor; None for none or an unreadable one (a fresh start)."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
    except ValueError:
        log.warning("%s: ignoring unreadable cursor %r", key, cursor)
        return None
    min_id = data.get("min_id") if isinstance(data, dict) else None
    if isinstance(min_id, int) and not isinstance(min_id, bool):
        min_id = str(min_id)
    if not isinstance(min_id, str) or not min_id:
        log.warning("%s: ignoring a cursor without min_id: %r", key, cursor)
        return None
    return min_id


# --- helpers --------------------------------------------------------------------------------------


class _BatchReader:
    """Turns pages of statuses into one batch: sorted, de-duplicated, malformed ones counted."""

    def __init__(self, key: str, local_domain: str) -> None:
        self.key = key
        self.local_domain = local_domain
        self.posts: list[Post] = []
        self.skipped = 0
        self._ids: set[str] = set()

    def add_page(self, page: Iterable[Any]) -> str | None:
        """Add a page's statuses, oldest first; return the page's highest status id."""
        items = list(page)
        with_id = [s for s in items if isinstance(s, dict) and _status_id(s) is not None]
        newest: str | None = None
        for status in sorted(with_id, key=lambda s: _id_key(_status_id(s) or "")):
            status_id = _status_id(status) or ""
            newest = status_id
            self._add(status, status_id)
        for status in items:
            if not (isinstance(status, dict) and _status_id(status) is not None):
                log.warning("%s: skipping a status without an id: %.200r", self.key, status)
                self.skipped += 1
        return newest

    def batch(self, cursor: str | None, *, more: bool = False) -> Batch:
        log.debug("%s: %d posts, %d skipped", self.key, len(self.posts), self.skipped)
        return Batch(posts=self.posts, cursor=cursor, skipped=self.skipped, more=more)

    def _add(self, status: dict[str, Any], status_id: str) -> None:
        try:
            post = status_to_post(status, local_domain=self.local_domain)
        except MalformedStatus as exc:
            log.warning("%s: skipping malformed status %s: %s", self.key, status_id, exc)
            self.skipped += 1
            return
        if post.id in self._ids:
            log.debug("%s: %s again (a boost of a post seen)", self.key, post.id)
            return
        self._ids.add(post.id)
        self.posts.append(post)


def _status_id(status: dict[str, Any]) -> str | None:
    value = status.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _id_key(status_id: str) -> tuple[int, str]:
    """Mastodon ids are decimal strings: a longer one is larger. (Sortable fixed-length ids of
    other fediverse servers compare correctly this way too.)"""
    return len(status_id), status_id


def _cursor(min_id: str) -> str:
    return json.dumps({"min_id": min_id})


def _level(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) and value.strip() else "public"


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = (response.headers.get(name) or "").strip()
    return int(value) if value.isdigit() else None


def _error_detail(response: httpx.Response) -> str:
    """Mastodon's `{"error": "..."}` message, if the body has one."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    return " ".join(error.split())[:200] if isinstance(error, str) else ""


def _field_label(name: str) -> str:
    """A profile field's name as lower-case words: '📍 Lives in:' → 'lives in'."""
    letters = "".join(ch if ch.isalpha() else " " for ch in name)
    return " ".join(letters.casefold().split())


def _unique(items: Iterable[str]) -> list[str]:
    """Non-empty items, first of each (ignoring case) kept, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        cleaned = " ".join(item.split())
        if cleaned and cleaned.casefold() not in seen:
            seen.add(cleaned.casefold())
            out.append(cleaned)
    return out
