"""Bluesky post search (`app.bsky.feed.searchPosts`), one source per saved search.

Each saved search whose `sources` is empty or includes "bluesky" becomes a `BlueskySearch` with
key "bluesky:search:<search id>". Bluesky's search ANDs every word and has no `OR`: `"a" OR "b"`
finds posts containing a, b *and* the word "or" (bluesky-social/atproto#3751, still open), so
the RSS query does not fit. `bluesky_queries` makes one query per alternative instead: one quoted
name per brand name, one `"term" Town` per local term and town. The fetch runs every query and
merges the answers, de-duplicated on the post's URI.

Auth (SOURCES.md 1a): the hosted AppView refuses anonymous search, so the sources log in with an
app password (`com.atproto.server.createSession`, limited to 30 a 5 minutes and 300 a day per
account). One `BlueskySession` is shared by every source that `build` makes: it logs in once,
lazily, under a lock; when a call answers ExpiredToken (or 401) it calls
`com.atproto.server.refreshSession` with the refresh token and retries the call once; it logs in
again only when the refresh is refused. A refused login is remembered for `login_retry` so that
twenty searches do not spend twenty logins an hour on a wrong password.

Fetching: `searchPosts?q=...&sort=latest&limit=...&since=...`, following `cursor` pages until
there is no cursor, a page is empty, or a page reaches past `since` (at most `max_pages` pages per
query). `since` is the stored cursor's time minus `overlap`, or `initial_lookback` before now on
the first run. The new cursor is JSON `{"since": <newest indexedAt seen>}`; when nothing newer
was seen the old cursor is returned unchanged.

Search results carry no follower counts or profile text, so authors are looked up with
`app.bsky.actor.getProfiles` (25 per call) through a `ProfileCache` shared by the sources (bounded,
entries live a day). A profile lookup that fails is logged and the posts go out without them.

Errors become `SourceError` in `BlueskySession`, in one place: 429 (with Retry-After or
RateLimit-Reset), 5xx, timeouts, network errors and unreadable JSON are transient; a refused
login, 403 and other 4xx are permanent and carry the server's message. The password and the
tokens are never logged, never in a message, never in a repr.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from listener.post import Author, Engagement, Post, PostError, parse_datetime
from listener.sources import (
    Batch,
    SourceError,
    brand_names,
    credential,
    search_branches,
    search_terms,
    uses,
)
from listener.sources.rss import parse_retry_after

if TYPE_CHECKING:
    from listener.config.model import BlueskySource as BlueskySettings
    from listener.config.model import Organisation, Search

log = logging.getLogger(__name__)

NAME = "bluesky"
USER_AGENT = "listener/0.1 (+https://github.com/listener-webcare/listener)"

SEARCH_POSTS = "app.bsky.feed.searchPosts"
GET_PROFILES = "app.bsky.actor.getProfiles"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"

PROFILES_PER_CALL = 25  # getProfiles' maximum
MAX_QUERIES = 12  # a local search with more term × town pairs searches its terms alone

_POST_URI = re.compile(r"^at://([^/\s]+)/app\.bsky\.feed\.post/([^/\s]+)$")
_PIN = "📍"
_PLACE_END = re.compile(r"[|•·\n]| - | / ")

Params = Sequence[tuple[str, str]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- the session -------------------------------------------------------------------------------


class _RefreshRefused(Exception):
    """refreshSession said no (expired or revoked refresh token): log in again."""


class BlueskySession:
    """An app-password session on one PDS, shared by every Bluesky source of a process.

    `get(method, params)` is an authenticated XRPC GET returning the JSON object, or raising
    `SourceError`. Safe to use from several threads: logging in and refreshing happen under a
    lock, and a thread that finds its token already replaced by another thread just uses the new
    one. Nothing here talks to the network until the first `get`.
    """

    def __init__(
        self,
        service: str,
        handle: str,
        password: str,
        *,
        client: httpx.Client,
        password_env: str = "BLUESKY_APP_PASSWORD",
        timeout: timedelta = timedelta(seconds=20),
        user_agent: str = USER_AGENT,
        login_retry: timedelta = timedelta(hours=1),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.service = service.rstrip("/")
        self.handle = handle
        self.password_env = password_env
        self.client = client
        self.timeout = timeout
        self.user_agent = user_agent
        self.login_retry = login_retry
        self.now = now
        self.logins = 0  # createSession calls made (successful or not)
        self.refreshes = 0  # refreshSession calls made
        self.__password = password
        self._access: str | None = None
        self._refresh: str | None = None
        self._retired: deque[str] = deque(maxlen=8)  # replaced tokens, still scrubbed from text
        self._lock = threading.Lock()
        self._login_blocked_until: datetime | None = None
        self._login_error: SourceError | None = None

    def __repr__(self) -> str:
        state = "logged in" if self._access else "not logged in"
        return f"BlueskySession(service={self.service!r}, handle={self.handle!r}, {state})"

    __str__ = __repr__

    def get(self, method: str, params: Params) -> dict[str, Any]:
        """GET /xrpc/<method> with the session's token; renew the token once if it expired."""
        token = self._token()
        response = self._send("GET", method, params=params, bearer=token)
        if _token_refused(response):
            log.info("bluesky: %s: the access token was refused; renewing the session", method)
            self._renew(token)
            response = self._send("GET", method, params=params, bearer=self._token())
        return self._json(method, response)

    # -- tokens --

    def _token(self) -> str:
        with self._lock:
            if self._access is None:
                self._login()
            assert self._access is not None
            return self._access

    def _renew(self, stale: str) -> None:
        """Replace the access token `stale`: refresh, or log in when the refresh is refused."""
        with self._lock:
            if self._access is not None and self._access != stale:
                return  # another thread renewed it meanwhile
            if self._refresh is not None:
                try:
                    self._refresh_session()
                    return
                except _RefreshRefused:
                    log.info("bluesky: refresh refused for %s; logging in again", self.handle)
            self._set_tokens(None, None)
            self._login()

    def _refresh_session(self) -> None:
        self.refreshes += 1
        response = self._send("POST", REFRESH_SESSION, bearer=self._refresh)
        if response.status_code in (400, 401):
            self._set_tokens(None, None)
            raise _RefreshRefused()
        self._store_tokens(REFRESH_SESSION, response)
        log.info("bluesky: session refreshed for %s", self.handle)

    def _login(self) -> None:
        now = self.now()
        if self._login_blocked_until is not None and now < self._login_blocked_until:
            assert self._login_error is not None
            error = self._login_error
            wait = (self._login_blocked_until - now).total_seconds()
            raise SourceError(
                str(error),
                transient=error.transient,
                retry_after=wait if error.transient else None,
            )
        self.logins += 1
        response = self._send(
            "POST",
            CREATE_SESSION,
            body={"identifier": self.handle, "password": self.__password},
        )
        status = response.status_code
        if status in (401, 403):
            error = SourceError(
                f"bluesky: login refused for handle {self.handle}: check {self.password_env}"
                f" ({self._reason(response)})",
                transient=False,
            )
            self._block_login(error, self.login_retry)
            raise error
        if status == 429:
            error = SourceError(
                f"bluesky: too many logins for handle {self.handle} ({self._reason(response)})",
                retry_after=_retry_after(response, self.now()),
            )
            self._block_login(error, timedelta(seconds=error.retry_after or 60))
            raise error
        self._store_tokens(CREATE_SESSION, response)
        self._login_blocked_until = self._login_error = None
        log.info("bluesky: logged in as %s on %s", self.handle, self.service)

    def _block_login(self, error: SourceError, wait: timedelta) -> None:
        self._login_error = error
        self._login_blocked_until = self.now() + wait

    def _store_tokens(self, method: str, response: httpx.Response) -> None:
        data = self._json(method, response)
        access, refresh = data.get("accessJwt"), data.get("refreshJwt")
        if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
            raise SourceError(f"bluesky: {method} answered without tokens")
        self._set_tokens(access, refresh)

    def _set_tokens(self, access: str | None, refresh: str | None) -> None:
        self._retired.extend(token for token in (self._access, self._refresh) if token)
        self._access, self._refresh = access, refresh

    # -- HTTP --

    def _send(
        self,
        http_method: str,
        method: str,
        *,
        params: Params | None = None,
        body: Mapping[str, str] | None = None,
        bearer: str | None = None,
    ) -> httpx.Response:
        """One request; network failures and timeouts become transient `SourceError`s."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            return self.client.request(
                http_method,
                f"{self.service}/xrpc/{method}",
                params=list(params) if params is not None else None,
                json=body,
                headers=headers,
                timeout=self.timeout.total_seconds(),
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceError(
                f"bluesky: bad service URL {self.service!r}: {self._scrub(str(exc))}",
                transient=False,
            ) from None
        except httpx.HTTPError as exc:
            reason = self._scrub(str(exc)) or type(exc).__name__
            raise SourceError(f"bluesky: {method}: {reason}") from None

    def _json(self, method: str, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a 2xx answer; any other answer raises the right `SourceError`."""
        status = response.status_code
        if not 200 <= status < 300:
            raise self._error(method, response)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SourceError(f"bluesky: {method} answered HTTP {status} with malformed JSON")
        return data

    def _error(self, method: str, response: httpx.Response) -> SourceError:
        status = response.status_code
        reason = self._reason(response)
        if status == 429:
            return SourceError(
                f"bluesky: {method} rate-limited ({reason})",
                retry_after=_retry_after(response, self.now()),
            )
        if status >= 500:
            return SourceError(f"bluesky: {method} answered {reason}")
        if status == 401:
            return SourceError(
                f"bluesky: login refused for handle {self.handle}: check {self.password_env}"
                f" ({reason})",
                transient=False,
            )
        if status == 403:
            return SourceError(
                f"bluesky: {method} forbidden for handle {self.handle} ({reason}): the account "
                "may not use it, or the app password lacks the permission",
                transient=False,
            )
        if status == 400:
            # ExpiredToken right after a renewal: a clock problem more likely than a bad request
            expired = _error_fields(response)[0] == "ExpiredToken"
            return SourceError(
                f"bluesky: {method} rejected the request ({reason})", transient=expired
            )
        return SourceError(
            f"bluesky: {method} answered {reason}", transient=not 400 <= status < 500
        )

    def _reason(self, response: httpx.Response) -> str:
        """'HTTP 400 InvalidRequest: <message>' from an XRPC error body, secrets scrubbed."""
        error, message = _error_fields(response)
        parts = [f"HTTP {response.status_code}"]
        if error:
            parts.append(f" {error}")
        if message:
            parts.append(f": {message}")
        return self._scrub("".join(parts))[:300]

    def _scrub(self, text: str) -> str:
        for secret in (self.__password, self._access, self._refresh, *self._retired):
            if secret:
                text = text.replace(secret, "***")
        return text


def _token_refused(response: httpx.Response) -> bool:
    """A call refused for its token: 400/401 ExpiredToken, or any 401."""
    if response.status_code == 401:
        return True
    return response.status_code == 400 and _error_fields(response)[0] == "ExpiredToken"


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        data = response.json()
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    error, message = data.get("error"), data.get("message")
    return (
        error if isinstance(error, str) and error else None,
        " ".join(message.split()) if isinstance(message, str) and message.strip() else None,
    )


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """Seconds from Retry-After, else from RateLimit-Reset (Bluesky sends epoch seconds; a small
    number is taken as seconds from now, as in draft-polli-ratelimit-headers)."""
    seconds = parse_retry_after(response.headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    reset = (response.headers.get("ratelimit-reset") or "").strip()
    try:
        value = float(reset)
    except ValueError:
        return None
    if value >= 1_000_000_000:
        return max(0.0, value - now.timestamp())
    return max(0.0, value)


# --- profiles ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """What a post's author needs from `app.bsky.actor.getProfiles`."""

    followers: int | None = None
    location: str | None = None


class ProfileCache:
    """Profiles by DID, for `ttl`, at most `max_size` (least recently used go first).

    An author getProfiles did not return (deleted, suspended) is cached as None too, so that it
    is not asked for again at every poll.
    """

    def __init__(
        self,
        *,
        max_size: int = 20_000,
        ttl: timedelta = timedelta(days=1),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self.now = now
        self._entries: OrderedDict[str, tuple[datetime, Profile | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, did: str) -> tuple[bool, Profile | None]:
        """(found, profile); found is False when `did` is unknown or its entry expired."""
        with self._lock:
            entry = self._entries.get(did)
            if entry is None:
                return False, None
            stored, profile = entry
            if self.now() - stored >= self.ttl:
                del self._entries[did]
                return False, None
            self._entries.move_to_end(did)
            return True, profile

    def put(self, did: str, profile: Profile | None) -> None:
        with self._lock:
            self._entries[did] = (self.now(), profile)
            self._entries.move_to_end(did)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)


def profile_from_view(view: Mapping[str, Any]) -> Profile:
    """A profileViewDetailed's follower count and its explicit '📍 Place', if any."""
    followers = _count(view, "followersCount")
    description = view.get("description")
    location = profile_location(description) if isinstance(description, str) else None
    return Profile(followers=followers, location=location)


def profile_location(description: str) -> str | None:
    """The place after a '📍' in a profile description ('📍 Amersfoort | boeken' → 'Amersfoort').

    A description is not a location: without the explicit marker this is None.
    """
    at = description.find(_PIN)
    if at < 0:
        return None
    rest = description[at + len(_PIN) :].lstrip("\ufe0f :")
    place = _PLACE_END.split(rest, maxsplit=1)[0]
    place = " ".join(place.split()).strip(" ,;.-–")
    return place[:100] or None


# --- posts -------------------------------------------------------------------------------------


def post_from_view(view: Any, profile: Profile | None = None) -> Post:
    """A searchPosts postView as a canonical post; `PostError` naming the field if malformed."""
    if not isinstance(view, Mapping):
        raise PostError("postView: not an object")
    uri = view.get("uri")
    if not isinstance(uri, str) or not (match := _POST_URI.match(uri)):
        raise PostError(f"uri: not an app.bsky.feed.post AT URI: {uri!r}")
    repo, rkey = match.groups()
    record = view.get("record")
    if not isinstance(record, Mapping):
        raise PostError("record: missing or not an object")
    text = record.get("text")
    if not isinstance(text, str):
        raise PostError("record.text: missing or not a string")
    author = view.get("author")
    if not isinstance(author, Mapping):
        raise PostError("author: missing or not an object")
    handle = author.get("handle")
    handle = handle if isinstance(handle, str) and handle else None
    try:
        created_at = parse_datetime(record.get("createdAt"), "record.createdAt")
    except PostError:
        created_at = parse_datetime(view.get("indexedAt"), "record.createdAt and indexedAt")
    langs = record.get("langs")
    lang = (
        next((x for x in langs if isinstance(x, str) and x), None)
        if isinstance(langs, list)
        else None
    )
    reply = record.get("reply")
    parent = reply.get("parent") if isinstance(reply, Mapping) else None
    parent_uri = parent.get("uri") if isinstance(parent, Mapping) else None
    name = author.get("displayName")
    who = handle if handle and handle != "handle.invalid" else repo
    return Post(
        id=f"{NAME}:{uri}",
        source=NAME,
        text=text,
        created_at=created_at,
        url=f"https://bsky.app/profile/{who}/post/{rkey}",
        lang=lang,
        author=Author(
            handle=handle,
            name=(name.strip() or None) if isinstance(name, str) else None,
            location=profile.location if profile else None,
            followers=profile.followers if profile else None,
        ),
        engagement=Engagement(
            likes=_count(view, "likeCount"),
            reposts=_count(view, "repostCount"),
            replies=_count(view, "replyCount"),
        ),
        reply_to=f"{NAME}:{parent_uri}" if isinstance(parent_uri, str) and parent_uri else None,
    )


def _count(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass(frozen=True, slots=True)
class _Hit:
    post: Post
    did: str | None
    indexed_at: datetime | None


def _hit(view: Any) -> _Hit:
    post = post_from_view(view)
    author = view["author"]
    did = author.get("did")
    try:
        indexed_at: datetime | None = parse_datetime(view.get("indexedAt"), "indexedAt")
    except PostError:
        indexed_at = None
    return _Hit(post, did if isinstance(did, str) and did else None, indexed_at)


# --- the source --------------------------------------------------------------------------------


class BlueskySearch:
    """One saved search, run as one or more searchPosts queries; see the module docstring."""

    name = NAME

    def __init__(
        self,
        queries: Sequence[str],
        *,
        session: BlueskySession,
        key: str,
        profiles: ProfileCache | None = None,
        interval: timedelta = timedelta(minutes=5),
        overlap: timedelta = timedelta(minutes=10),
        lang: str | None = None,
        limit: int = 100,
        max_pages: int = 10,
        initial_lookback: timedelta = timedelta(days=1),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not queries:
            raise ValueError(f"{key}: no query to search for")
        self.queries = list(queries)
        self.session = session
        self.key = key
        self.profiles = profiles if profiles is not None else ProfileCache(now=now)
        self.interval = interval
        self.overlap = overlap
        self.lang = lang
        self.limit = limit
        self.max_pages = max_pages
        self.initial_lookback = initial_lookback
        self.now = now

    def __repr__(self) -> str:
        return f"BlueskySearch(key={self.key!r}, queries={self.queries!r})"

    def fetch(self, cursor: str | None) -> Batch:
        """Every post of every query since the cursor's time minus the overlap."""
        last_seen = _read_cursor(cursor, self.key)
        since = last_seen - self.overlap if last_seen else self.now() - self.initial_lookback
        hits: dict[str, _Hit] = {}
        skipped = 0
        for query in self.queries:
            skipped += self._search(query, since, hits)
        posts = self._with_profiles(list(hits.values()))
        times = [hit.indexed_at for hit in hits.values() if hit.indexed_at is not None]
        newest = max(times, default=None)
        new_cursor = cursor
        if newest is not None and (last_seen is None or newest > last_seen):
            new_cursor = json.dumps({"since": _iso(newest)})
        log.debug("%s: %d posts, %d skipped, since %s", self.key, len(posts), skipped, _iso(since))
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped)

    def _search(self, query: str, since: datetime, hits: dict[str, _Hit]) -> int:
        """Page through one query into `hits` (by URI); the number of malformed postViews."""
        skipped = 0
        page_cursor: str | None = None
        for _ in range(self.max_pages):
            params = [("q", query), ("sort", "latest"), ("limit", str(self.limit))]
            params.append(("since", _iso(since)))
            if self.lang:
                params.append(("lang", self.lang))
            if page_cursor:
                params.append(("cursor", page_cursor))
            data = self.session.get(SEARCH_POSTS, params)
            views = data.get("posts")
            if not isinstance(views, list):
                raise SourceError(f"{self.key}: {SEARCH_POSTS} answered without a posts list")
            oldest: datetime | None = None
            for view in views:
                try:
                    hit = _hit(view)
                except PostError as exc:
                    log.warning("%s: skipping a malformed postView: %s", self.key, exc)
                    skipped += 1
                    continue
                if hit.indexed_at is not None and (oldest is None or hit.indexed_at < oldest):
                    oldest = hit.indexed_at
                hits.setdefault(hit.post.id, hit)
            next_cursor = data.get("cursor")
            if not views or not isinstance(next_cursor, str) or not next_cursor:
                break
            if oldest is not None and oldest < since:
                break
            page_cursor = next_cursor
        else:
            log.warning(
                "%s: stopped after %d pages of %r; older posts since %s are left out",
                self.key,
                self.max_pages,
                query,
                _iso(since),
            )
        return skipped

    def _with_profiles(self, hits: list[_Hit]) -> list[Post]:
        """The posts with their authors' followers and '📍' place, from the cache or getProfiles."""
        known: dict[str, Profile | None] = {}
        missing: list[str] = []
        for did in dict.fromkeys(hit.did for hit in hits if hit.did):
            assert did is not None
            found, profile = self.profiles.get(did)
            if found:
                known[did] = profile
            else:
                missing.append(did)
        for start in range(0, len(missing), PROFILES_PER_CALL):
            chunk = missing[start : start + PROFILES_PER_CALL]
            try:
                fetched = self._get_profiles(chunk)
            except SourceError as exc:
                log.warning("%s: profiles left out: %s", self.key, exc)
                break
            for did in chunk:
                known[did] = fetched.get(did)
                self.profiles.put(did, known[did])
        posts: list[Post] = []
        for hit in hits:
            profile = known.get(hit.did) if hit.did else None
            if profile is not None and hit.post.author is not None:
                author = replace(
                    hit.post.author, followers=profile.followers, location=profile.location
                )
                posts.append(replace(hit.post, author=author))
            else:
                posts.append(hit.post)
        return posts

    def _get_profiles(self, dids: Iterable[str]) -> dict[str, Profile]:
        data = self.session.get(GET_PROFILES, [("actors", did) for did in dids])
        views = data.get("profiles")
        if not isinstance(views, list):
            raise SourceError(f"{self.key}: {GET_PROFILES} answered without a profiles list")
        return {
            view["did"]: profile_from_view(view)
            for view in views
            if isinstance(view, dict) and isinstance(view.get("did"), str)
        }


def _iso(moment: datetime) -> str:
    """'2026-09-26T07:50:00.000Z': what searchPosts' since accepts."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read_cursor(cursor: str | None, key: str) -> datetime | None:
    """The time stored in a cursor; None for none or an unreadable one."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        return parse_datetime(data["since"], "since") if isinstance(data, dict) else None
    except (ValueError, KeyError):  # PostError is a ValueError
        log.warning("%s: ignoring unreadable cursor %r", key, cursor)
        return None


# --- queries and building ----------------------------------------------------------------------


def bluesky_queries(search: Search, organisations: Mapping[str, Organisation]) -> list[str]:
    """The searchPosts queries for a saved search; their results together are the search.

    Bluesky ANDs every word and knows no OR, so each alternative is a query of its own. A brand
    search is one quoted name per name and alias of its organisation (and per term of its own):
    `"Bibliotheek Eemland"`, `"de Bieb Eemland"`. A local search is one `"term" Town` per term and
    town of its organisation's branches (every organisation's when it has none):
    `"de bieb" Amersfoort`, `"de bieb" Leusden`; when that makes more than MAX_QUERIES queries,
    it searches its terms alone and leaves the towns to listener's own matcher.
    """
    if search.kind == "brand":
        return [_phrase(name) for name in _unique(brand_names(search, organisations))]
    terms = [_phrase(term) for term in _unique(search_terms(search))]
    towns = [
        _phrase(town) if " " in town else town
        for town in _unique([b.town for b in search_branches(search, organisations) if b.town])
    ]
    if not towns or len(terms) * len(towns) > MAX_QUERIES:
        return terms
    return [f"{term} {town}" for term in terms for town in towns]


def _unique(items: Iterable[str]) -> list[str]:
    """Cleaned (no quotes, single spaces) and de-duplicated ignoring case, in order."""
    unique: list[str] = []
    seen: set[str] = set()
    for item in items:
        cleaned = " ".join(item.replace('"', " ").split())
        if cleaned and cleaned.casefold() not in seen:
            seen.add(cleaned.casefold())
            unique.append(cleaned)
    return unique


def _phrase(text: str) -> str:
    return f'"{text}"'


def build(
    settings: BlueskySettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> list[BlueskySearch]:
    """A `BlueskySearch` per saved search that uses Bluesky, all sharing one session and one
    profile cache; `SourceUnavailable` names the environment variable that is missing. Nothing
    talks to the network before the first fetch. `now` is the clock (tests inject one)."""
    env = os.environ if env is None else env
    handle = credential(env, settings.handle_env, "bluesky").lstrip("@")
    password = credential(env, settings.app_password_env, "bluesky")
    session = BlueskySession(
        settings.service,
        handle,
        password,
        client=client if client is not None else httpx.Client(),  # lives as long as the process
        password_env=settings.app_password_env,
        now=now,
    )
    profiles = ProfileCache(now=now)
    sources: list[BlueskySearch] = []
    for search in searches:
        if not uses(search, NAME):
            continue
        sources.append(
            BlueskySearch(
                bluesky_queries(search, organisations),
                session=session,
                key=f"{NAME}:search:{search.id}",
                profiles=profiles,
                interval=search.interval or settings.interval,
                overlap=settings.overlap,
                lang=settings.lang,
                limit=settings.limit,
                now=now,
            )
        )
    return sources
