"""X (Twitter) API v2 recent search, one source per saved search, with an app bearer token.

SOURCES.md section 4. Each saved search that includes "x" (or lists no sources) becomes a query
like `("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden) lang:nl -is:retweet`:

- a brand search finds the organisation's name, aliases and the search's own terms, quoted;
- a local search finds its quoted terms AND one of its branches' towns. With `point_radius = true`
  (a plan with geo operators) the town group also gets a `point_radius:[lon lat Rkm]` per branch
  (radius capped at 40 km), OR-ed with the towns: a post that names a town *or* is geotagged near
  a branch. AND-ing the radius would keep only geotagged posts, 1-2 % of all posts.
- the languages are the search's `languages`, or Dutch.

X caps a query at 512 characters. A query that is too long is split into several, each with a
part of the town group and a source of its own ("x:search:<id>", "x:search:<id>:2", ...); terms
that do not fit even with one town are left out with a logged warning.

Fetching (`GET {api_url}/2/tweets/search/recent`) reads one page per `fetch`, newest first. The
cursor is JSON: `{"since_id": ...}` between polls; while paging, `{"since_id": <the poll's
since_id>, "next_token": ..., "newest_id": <meta.newest_id of the poll's first page>}` and the
batch says `more`. Only when the last page is read does since_id advance to newest_id (X's own
advice: page through everything before moving since_id). A since_id older than X's seven days
makes X answer 400: the source then starts again without it, with a logged warning.

Tweets become posts with their author from `includes.users`, their geo from the tweet's own
coordinates or else the centre of its place's bounding box (`includes.places`: a town or a
region, so weaker evidence than a point), and `reply_to` from `referenced_tweets` (replied_to).
HTTP failures become `SourceError`: 429 (with `x-rate-limit-reset`), 5xx, timeouts and network
errors are transient; 400, 401 and 403 permanent. The bearer token never appears in logs, reprs
or error messages.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from listener.notify import scrub
from listener.post import Author, Engagement, Geo, Post, PostError, parse_datetime
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
    from listener.config.model import XSource as XSettings

log = logging.getLogger(__name__)

NAME = "x"
MAX_QUERY = 512  # characters, X's limit for self-serve plans
MAX_RADIUS_KM = 40.0  # X's limit for point_radius (25 miles)
TWEET_FIELDS = "created_at,lang,public_metrics,geo,referenced_tweets,author_id"
EXPANSIONS = "author_id,geo.place_id"
USER_FIELDS = "username,name,location,public_metrics"
PLACE_FIELDS = "full_name,geo,country_code"


class XSource:
    """One recent-search query, paged with next_token and resumed with since_id."""

    name = NAME

    def __init__(
        self,
        query: str,
        *,
        key: str,
        client: httpx.Client,
        bearer: str,
        bearer_env: str = "X_BEARER_TOKEN",
        api_url: str = "https://api.x.com",
        max_results: int = 100,
        interval: timedelta = timedelta(minutes=15),
        timeout: timedelta = timedelta(seconds=20),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.query = query
        self.key = key
        self.client = client
        self._bearer = bearer
        self.bearer_env = bearer_env
        self.url = api_url.rstrip("/") + "/2/tweets/search/recent"
        self.max_results = max_results
        self.interval = interval
        self.timeout = timeout
        self.now = now

    def __repr__(self) -> str:
        return f"XSource(key={self.key!r}, query={self.query!r})"

    def fetch(self, cursor: str | None) -> Batch:
        """One page of posts newer than the cursor's since_id; see the module docstring."""
        state = _read_cursor(cursor, self.key)
        response = self._get(state)
        if response is None:  # since_id too old: start again from X's seven days
            state = {}
            response = self._get(state)
        if response is None:
            raise SourceError(f"{self.key}: X refused the query without since_id too")
        body = _json(response, self.key)
        data = body.get("data")
        meta = _object(body.get("meta"))
        if data is None:
            data = []
        if not isinstance(data, list):
            raise SourceError(f"{self.key}: X's answer has no list of posts")
        includes = _object(body.get("includes"))
        users = _by_id(includes.get("users"))
        places = _by_id(includes.get("places"))
        posts: list[Post] = []
        skipped = 0
        for tweet in data:
            post = tweet_to_post(tweet, users, places)
            if post is None:
                log.warning("%s: skipping a malformed post", self.key)
                skipped += 1
            else:
                posts.append(post)
        paging = bool(state.get("next_token"))
        newest_id = state.get("newest_id") if paging else _str(meta.get("newest_id"))
        next_token = _str(meta.get("next_token"))
        if next_token and data:
            new_state = {"since_id": state.get("since_id"), "next_token": next_token}
            new_state["newest_id"] = newest_id
            remaining = response.headers.get("x-rate-limit-remaining")
            more = remaining is None or remaining.strip() != "0"
        else:
            new_state = {"since_id": newest_id or state.get("since_id")}
            more = False
        log.debug("%s: %d posts, %d skipped, more=%s", self.key, len(posts), skipped, more)
        new_cursor = json.dumps(new_state) if any(new_state.values()) else cursor
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped, more=more)

    def _get(self, state: Mapping[str, str | None]) -> httpx.Response | None:
        """GET one page, translating every failure into `SourceError`; None when X refuses the
        cursor's since_id as too old."""
        params = {
            "query": self.query,
            "max_results": str(self.max_results),
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
            "place.fields": PLACE_FIELDS,
        }
        if state.get("since_id"):
            params["since_id"] = str(state["since_id"])
        if state.get("next_token"):
            params["next_token"] = str(state["next_token"])
        headers = {"Authorization": f"Bearer {self._bearer}", "User-Agent": "listener"}
        try:
            response = self.client.get(
                self.url, params=params, headers=headers, timeout=self.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            reason = scrub(str(exc) or type(exc).__name__, self._bearer)
            raise SourceError(f"{self.key}: {self.url}: {reason}") from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        detail = scrub(_problem(response), self._bearer)
        message = f"{self.key}: X answered HTTP {status}" + (f": {detail}" if detail else "")
        if status == 429 or status >= 500:
            raise SourceError(message, transient=True, retry_after=self._retry_after(response))
        if status == 400 and state.get("since_id") and "since_id" in detail:
            log.warning(
                "%s: X refuses since_id %s (older than its seven days of recent search); "
                "reading again from the newest posts, anything older is not read",
                self.key,
                state.get("since_id"),
            )
            return None
        if status == 401:
            message += f": check {self.bearer_env}"
        elif status == 403:
            message += (
                f": the app behind {self.bearer_env} may lack access to recent search or to the "
                "operators in the query (point_radius needs a plan with geo operators)"
            )
        raise SourceError(message, transient=False)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait: Retry-After, else x-rate-limit-reset (epoch seconds), else None."""
        now = self.now()
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        if retry_after is not None:
            return retry_after
        reset = response.headers.get("x-rate-limit-reset", "").strip()
        if reset.isdigit():
            return max(0.0, int(reset) - now.timestamp())
        return None


def build_queries(
    search: Search,
    organisations: Mapping[str, Organisation],
    *,
    point_radius: bool = False,
    include_retweets: bool = False,
    max_length: int = MAX_QUERY,
) -> list[str]:
    """The recent-search queries for a saved search: one, or several when one is too long."""
    places: list[str] = []
    if search.kind == "brand":
        terms = [f'"{item}"' for item in _unique(brand_names(search, organisations))]
    else:
        terms = [f'"{item}"' for item in _unique(search_terms(search))]
        branches = search_branches(search, organisations)
        towns = _unique([branch.town for branch in branches if branch.town])
        places = [town if re.fullmatch(r"[\w\-']+", town) else f'"{town}"' for town in towns]
        if point_radius:
            radii = (
                f"point_radius:[{_number(b.lon)} {_number(b.lat)} "
                f"{_number(min(b.radius_km, MAX_RADIUS_KM))}km]"
                for b in branches
            )
            places.extend(dict.fromkeys(radii))
    languages = [f"lang:{code}" for code in _unique(search.languages or ["nl"])]
    suffix = _group(languages) + ("" if include_retweets else " -is:retweet")

    def query(term_part: list[str], place_part: list[str]) -> str:
        return " ".join(part for part in (_group(term_part), _group(place_part), suffix) if part)

    longest_place = [max(places, key=len)] if places else []
    dropped: list[str] = []
    while len(terms) > 1 and len(query(terms, longest_place)) > max_length:
        dropped.insert(0, terms.pop())
    if len(query(terms, longest_place)) > max_length:
        raise ValueError(f"search {search.id!r}: its terms make an X query over {max_length} chars")
    if dropped:
        log.warning(
            "search %s: the X query would be over %d characters; left out %s",
            search.id,
            max_length,
            ", ".join(dropped),
        )
    if not places:
        return [query(terms, [])]
    queries: list[str] = []
    chunk: list[str] = []
    for place in places:
        if chunk and len(query(terms, [*chunk, place])) > max_length:
            queries.append(query(terms, chunk))
            chunk = []
        chunk.append(place)
    queries.append(query(terms, chunk))
    return queries


def tweet_to_post(
    tweet: Any, users: Mapping[str, Mapping[str, Any]], places: Mapping[str, Mapping[str, Any]]
) -> Post | None:
    """A v2 post object (with the expansions' users and places) as a canonical post, or None
    when it is malformed."""
    if not isinstance(tweet, dict):
        return None
    ident, text = tweet.get("id"), tweet.get("text")
    if not isinstance(ident, str) or not ident.isdigit() or not isinstance(text, str):
        return None
    try:
        created_at = parse_datetime(tweet.get("created_at"))
    except PostError:
        return None
    user = users.get(str(tweet.get("author_id")), {})
    username = _str(user.get("username"))
    author = None
    if user:
        user_metrics = user.get("public_metrics")
        followers = user_metrics.get("followers_count") if isinstance(user_metrics, dict) else None
        author = Author(
            handle=username,
            name=_str(user.get("name")),
            location=_str(user.get("location")),
            followers=_count(followers),
        )
    metrics = tweet.get("public_metrics")
    engagement = None
    if isinstance(metrics, dict):
        reposts = metrics.get("retweet_count", metrics.get("repost_count"))
        engagement = Engagement(
            likes=_count(metrics.get("like_count")),
            reposts=_count(reposts),
            replies=_count(metrics.get("reply_count")),
        )
    referenced = tweet.get("referenced_tweets", tweet.get("referenced_posts"))
    reply_to = None
    if isinstance(referenced, list):
        for ref in referenced:
            if isinstance(ref, dict) and ref.get("type") == "replied_to" and _str(ref.get("id")):
                reply_to = f"x:{ref['id']}"
                break
    url = (
        f"https://x.com/{username}/status/{ident}"
        if username
        else f"https://x.com/i/web/status/{ident}"
    )
    lang = _str(tweet.get("lang"))
    return Post(
        id=f"x:{ident}",
        source=NAME,
        text=text,
        created_at=created_at,
        url=url,
        lang=lang,
        author=author,
        geo=_geo(tweet.get("geo"), places),
        engagement=engagement,
        reply_to=reply_to,
    )


def build(
    settings: XSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[XSource]:
    """One source per query of each saved search that uses X."""
    env = os.environ if env is None else env
    bearer = credential(env, settings.bearer_env, NAME)
    shared = client if client is not None else httpx.Client()  # lives as long as the process
    sources: list[XSource] = []
    for search in searches:
        if not uses(search, NAME):
            continue
        queries = build_queries(search, organisations, point_radius=settings.point_radius)
        for number, query in enumerate(queries, start=1):
            suffix = "" if number == 1 else f":{number}"
            sources.append(
                XSource(
                    query,
                    key=f"x:search:{search.id}{suffix}",
                    client=shared,
                    bearer=bearer,
                    bearer_env=settings.bearer_env,
                    api_url=settings.api_url,
                    max_results=settings.max_results,
                    interval=search.interval or settings.interval,
                )
            )
    return sources


def _geo(geo: Any, places: Mapping[str, Mapping[str, Any]]) -> Geo | None:
    """The post's own point, else the centre of its place's bounding box, else None."""
    if not isinstance(geo, dict):
        return None
    point = geo.get("coordinates")
    if isinstance(point, dict) and point.get("type", "Point") == "Point":
        pair = point.get("coordinates")
        if isinstance(pair, list) and len(pair) == 2:
            found = _valid(pair[1], pair[0])
            if found is not None:
                return found
    place = places.get(str(geo.get("place_id")))
    place_geo = place.get("geo") if place else None
    bbox = place_geo.get("bbox") if isinstance(place_geo, dict) else None
    if isinstance(bbox, list) and len(bbox) == 4:
        west, south, east, north = bbox
        try:
            return _valid((float(south) + float(north)) / 2, (float(west) + float(east)) / 2)
        except (TypeError, ValueError):
            return None
    return None


def _valid(lat: Any, lon: Any) -> Geo | None:
    if isinstance(lat, bool) or isinstance(lon, bool):
        return None
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return Geo(float(lat), float(lon))


def _read_cursor(cursor: str | None, key: str) -> dict[str, str | None]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        log.warning("%s: ignoring an unreadable cursor", key)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k in ("since_id", "next_token", "newest_id") if (v := _str(data.get(k)))}


def _json(response: httpx.Response, key: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise SourceError(f"{key}: X sent something not JSON") from None
    if not isinstance(body, dict):
        raise SourceError(f"{key}: X's answer is not a JSON object")
    return body


def _problem(response: httpx.Response) -> str:
    """What X says went wrong: its problem detail and error messages, or nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for field in ("title", "detail"):
        if isinstance(body.get(field), str):
            parts.append(body[field])
    errors = body.get("errors")
    if isinstance(errors, list):
        parts.extend(
            str(error["message"])
            for error in errors
            if isinstance(error, dict) and error.get("message")
        )
    return "; ".join(dict.fromkeys(parts))[:500]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _by_id(items: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {str(item["id"]): item for item in items if isinstance(item, dict) and "id" in item}


def _unique(items: Sequence[str]) -> list[str]:
    """The items without double quotes and extra spaces, de-duplicated ignoring case."""
    unique: dict[str, str] = {}
    for item in items:
        cleaned = " ".join(item.replace('"', " ").split())
        if cleaned:
            unique.setdefault(cleaned.casefold(), cleaned)
    return list(unique.values())


def _group(items: list[str]) -> str:
    joined = " OR ".join(items)
    return f"({joined})" if len(items) > 1 else joined


def _number(value: float) -> str:
    """A coordinate or radius without trailing zeros: 5.3875, 40, 2.5."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
