"""YouTube Data API v3 `search.list`: videos per saved search, near each branch for a local one.

SOURCES.md section 7. Each saved search that includes "youtube" (or lists no sources) becomes
`GET {api_url}/search?part=snippet&type=video&order=date&q=..&relevanceLanguage=nl&regionCode=NL
&maxResults=50&publishedAfter=..`, the key sent in the `X-Goog-Api-Key` header (never in the URL,
so it cannot end up in a logged URL). `q` ORs the quoted names (brand search) or terms (local
search) with YouTube's `|`. A local search makes one request per branch, with
`location=<lat,lng>&locationRadius=<radius_km>km` (at most 1000 km), and no towns in `q`: the
location filter is the locality. Results are paged with `pageToken` (at most `max_pages` pages
per request) and de-duplicated by video id.

The cursor is JSON `{"newest": <publishedAt of the newest video seen>}`; a fetch asks for videos
published after `newest - overlap` (search results can show up hours after publication), and the
first fetch for the last `lookback`.

Quota: every `search.list` call costs 100 units of the project's 10,000 a day (and current docs
speak of a separate bucket of 100 search calls a day), so a local search costs one call per
branch per poll. A 403 `quotaExceeded` is transient, with `retry_after` = the time until
midnight Pacific time, when the quota resets. A 400 with an invalid key, 401 and other 403s are
permanent and name the environment variable to check; 429, 5xx, timeouts and network errors are
transient.

Posts: id "youtube:<videoId>", text title + description (the snippet's description is truncated by
YouTube; both are HTML-unescaped), author = the channel (handle = channel id). `geo` stays None:
the location filter matches a video's recording location, which the search result does not
include, so the branch's point would be a guess, not the video's position.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from listener.notify import scrub
from listener.post import Author, Post, PostError, parse_datetime
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
    from listener.config.model import Organisation, Search
    from listener.config.model import YouTubeSource as YouTubeSettings

log = logging.getLogger(__name__)

NAME = "youtube"
PAGE_SIZE = 50  # search.list's maximum maxResults
MAX_RADIUS_KM = 1000.0  # search.list's limit for locationRadius
QUOTA_FALLBACK = timedelta(hours=6)  # when the Pacific time zone is not installed
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_KEY_REASONS = frozenset({"keyInvalid", "API_KEY_INVALID", "keyExpired", "API_KEY_EXPIRED"})

Circle = tuple[float, float, float]  # lat, lon, radius in km


class YouTubeSource:
    """One saved search on YouTube: a search.list request per circle (or one without)."""

    name = NAME

    def __init__(
        self,
        query: str,
        *,
        key: str,
        client: httpx.Client,
        api_key: str,
        api_key_env: str = "YOUTUBE_API_KEY",
        api_url: str = "https://www.googleapis.com/youtube/v3",
        circles: Sequence[Circle] = (),
        interval: timedelta = timedelta(hours=1),
        timeout: timedelta = timedelta(seconds=20),
        overlap: timedelta = timedelta(hours=6),
        lookback: timedelta = timedelta(days=7),
        max_pages: int = 2,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.query = query
        self.key = key
        self.client = client
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.url = api_url.rstrip("/") + "/search"
        self.circles = list(dict.fromkeys(circles))
        self.interval = interval
        self.timeout = timeout
        self.overlap = overlap
        self.lookback = lookback
        self.max_pages = max_pages
        self.now = now

    def __repr__(self) -> str:
        return f"YouTubeSource(key={self.key!r}, query={self.query!r})"

    def fetch(self, cursor: str | None) -> Batch:
        """Videos published since the cursor's newest (minus the overlap), for every circle."""
        newest = _read_cursor(cursor, self.key)
        since = newest - self.overlap if newest is not None else self.now() - self.lookback
        posts: list[Post] = []
        found: set[str] = set()
        skipped = 0
        circles: list[Circle | None] = [*self.circles] or [None]
        for circle in circles:
            page_token: str | None = None
            for page in range(1, self.max_pages + 1):
                body = self._get(self._params(since, circle, page_token))
                items = body.get("items")
                if not isinstance(items, list):
                    raise SourceError(f"{self.key}: YouTube's answer has no list of items")
                for item in items:
                    if _kind(item) not in (None, "youtube#video"):
                        continue
                    post = item_to_post(item)
                    if post is None:
                        log.warning("%s: skipping a malformed search result", self.key)
                        skipped += 1
                        continue
                    if post.id in found:
                        continue
                    found.add(post.id)
                    posts.append(post)
                    if newest is None or post.created_at > newest:
                        newest = post.created_at
                token = body.get("nextPageToken")
                page_token = token if isinstance(token, str) and token else None
                if page_token is None or not items:
                    break
                if page == self.max_pages:
                    log.warning(
                        "%s: more than %d pages of results%s; older ones are left unread",
                        self.key,
                        self.max_pages,
                        f" near {circle[0]},{circle[1]}" if circle else "",
                    )
        log.debug("%s: %d posts, %d skipped", self.key, len(posts), skipped)
        new_cursor = json.dumps({"newest": _rfc3339(newest)}) if newest is not None else cursor
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped)

    def _params(
        self, since: datetime, circle: Circle | None, page_token: str | None
    ) -> dict[str, str]:
        params = {
            "part": "snippet",
            "type": "video",
            "order": "date",
            "q": self.query,
            "relevanceLanguage": "nl",
            "regionCode": "NL",
            "maxResults": str(PAGE_SIZE),
            "publishedAfter": _rfc3339(since),
        }
        if circle is not None:
            lat, lon, radius = circle
            params["location"] = f"{_number(lat)},{_number(lon)}"
            params["locationRadius"] = f"{_number(min(radius, MAX_RADIUS_KM))}km"
        if page_token:
            params["pageToken"] = page_token
        return params

    def _get(self, params: Mapping[str, str]) -> dict[str, Any]:
        """One search.list call's JSON, translating every failure into `SourceError`."""
        headers = {"X-Goog-Api-Key": self._api_key, "User-Agent": "listener"}
        try:
            response = self.client.get(
                self.url, params=params, headers=headers, timeout=self.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            reason = scrub(str(exc) or type(exc).__name__, self._api_key)
            raise SourceError(f"{self.key}: {self.url}: {reason}") from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                raise SourceError(f"{self.key}: YouTube sent something not JSON") from None
            if not isinstance(body, dict):
                raise SourceError(f"{self.key}: YouTube's answer is not a JSON object")
            return body
        text, reasons = _google_error(response)
        text = scrub(text, self._api_key)
        message = f"{self.key}: YouTube answered HTTP {status}" + (f": {text}" if text else "")
        if reasons:
            message += f" ({', '.join(sorted(reasons))})"
        if status == 403 and reasons & _QUOTA_REASONS:
            wait = until_quota_reset(self.now())
            raise SourceError(
                f"{message}: the project's daily YouTube quota is used up; it resets at "
                f"midnight Pacific time, in {wait / 3600:.1f} h",
                transient=True,
                retry_after=wait,
            )
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.now())
        if status == 429 or status >= 500 or (status == 403 and reasons & _RATE_REASONS):
            raise SourceError(message, transient=True, retry_after=retry_after)
        key_refused = bool(reasons & _KEY_REASONS) or "api key" in text.lower()
        if status in (401, 403) or key_refused:
            message += f": check {self.api_key_env} and that the key may use the YouTube Data API"
        raise SourceError(message, transient=False)


def build_query(search: Search, organisations: Mapping[str, Organisation]) -> str:
    """`q` for a saved search: the quoted names (brand) or terms (local), OR-ed with `|`."""
    items = brand_names(search, organisations) if search.kind == "brand" else search_terms(search)
    unique: dict[str, str] = {}
    for item in items:
        cleaned = " ".join(item.replace('"', " ").split())
        if cleaned:
            unique.setdefault(cleaned.casefold(), f'"{cleaned}"')
    return "|".join(unique.values())


def circles_for(search: Search, organisations: Mapping[str, Organisation]) -> list[Circle]:
    """The branch circles a local search is limited to (none for a brand search)."""
    if search.kind != "local":
        return []
    circles = (
        (branch.lat, branch.lon, min(branch.radius_km, MAX_RADIUS_KM))
        for branch in search_branches(search, organisations)
    )
    return list(dict.fromkeys(circles))


def item_to_post(item: Any) -> Post | None:
    """A search result (`youtube#searchResult` of a video) as a canonical post, or None."""
    if not isinstance(item, dict):
        return None
    ident, snippet = item.get("id"), item.get("snippet")
    video_id = ident.get("videoId") if isinstance(ident, dict) else None
    if not isinstance(video_id, str) or not video_id or not isinstance(snippet, dict):
        return None
    title = snippet.get("title")
    if not isinstance(title, str):
        return None
    try:
        created_at = parse_datetime(snippet.get("publishedAt"), "publishedAt")
    except PostError:
        return None
    description = snippet.get("description")
    parts = [html.unescape(title).strip()]
    if isinstance(description, str):
        parts.append(html.unescape(description).strip())
    channel_id = snippet.get("channelId")
    channel_title = snippet.get("channelTitle")
    return Post(
        id=f"youtube:{video_id}",
        source=NAME,
        text="\n".join(part for part in parts if part),
        created_at=created_at,
        url=f"https://www.youtube.com/watch?v={video_id}",
        lang=None,
        author=Author(
            handle=channel_id if isinstance(channel_id, str) and channel_id else None,
            name=html.unescape(channel_title) if isinstance(channel_title, str) else None,
        ),
    )


def until_quota_reset(now: datetime) -> float:
    """Seconds from `now` to the next midnight Pacific time, when YouTube resets quotas."""
    try:
        pacific = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        return QUOTA_FALLBACK.total_seconds()
    local = now.astimezone(pacific)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=pacific)
    return (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


def build(
    settings: YouTubeSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[YouTubeSource]:
    """One source per saved search that uses YouTube."""
    env = os.environ if env is None else env
    api_key = credential(env, settings.api_key_env, NAME)
    shared = client if client is not None else httpx.Client()  # lives as long as the process
    sources: list[YouTubeSource] = []
    for search in searches:
        if not uses(search, NAME):
            continue
        circles = circles_for(search, organisations)
        if search.kind == "local" and not circles:
            log.warning(
                "search %s: no branches to search near; YouTube searches everywhere", search.id
            )
        sources.append(
            YouTubeSource(
                build_query(search, organisations),
                key=f"youtube:search:{search.id}",
                client=shared,
                api_key=api_key,
                api_key_env=settings.api_key_env,
                api_url=settings.api_url,
                circles=circles,
                interval=search.interval or settings.interval,
            )
        )
    return sources


def _kind(item: Any) -> str | None:
    """What a search result is ("youtube#video", "youtube#channel", ...), if it says so."""
    ident = item.get("id") if isinstance(item, dict) else None
    kind = ident.get("kind") if isinstance(ident, dict) else None
    return kind if isinstance(kind, str) else None


def _google_error(response: httpx.Response) -> tuple[str, set[str]]:
    """The message and the reasons of a Google API error body (both empty if there is none)."""
    try:
        body = response.json()
    except ValueError:
        return "", set()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", set()
    reasons: set[str] = set()
    for entry in [*(error.get("errors") or []), *(error.get("details") or [])]:
        if isinstance(entry, dict) and isinstance(entry.get("reason"), str):
            reasons.add(entry["reason"])
    message = error.get("message")
    text = re.sub(r"<[^>]+>", "", message) if isinstance(message, str) else ""
    return " ".join(text.split())[:300], reasons


def _read_cursor(cursor: str | None, key: str) -> datetime | None:
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
        return parse_datetime(data["newest"], "newest") if isinstance(data, dict) else None
    except (ValueError, KeyError):
        log.warning("%s: ignoring an unreadable cursor", key)
        return None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")
