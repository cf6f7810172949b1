"""Reddit: a search per saved search, and the `new` listing of each configured subreddit.

Reddit's API needs OAuth (SOURCES.md section 3). listener uses the client-credentials grant: a
POST to `token_url` with the app's id and secret as basic auth and
`grant_type=client_credentials` gives a bearer token (valid a day), which `RedditAuth` caches
until shortly before it expires. One `RedditAuth` per app is shared by every Reddit source in
the process, and it also keeps the app's rate-limit state, since Reddit counts requests per
client id. A 401 on a listing gets a fresh token and one retry.

Every source reads a listing, newest first: `GET {api_url}/search?q=..&sort=new&limit=100
&raw_json=1` (key "reddit:search:<search id>") or `GET {api_url}/r/<sub>/new?limit=100
&raw_json=1` (key "reddit:r:<sub, lower-case>"). The cursor is JSON
`{"newest": <fullname of the newest post seen>, "seen": [the last SEEN_LIMIT fullnames]}`;
`before=<fullname>` alone is not used because it returns nothing once that post is removed. A
fetch reads the first page and follows `after` while a page holds only unseen posts (at most
`max_pages` pages; the first fetch of a source reads one page), and returns the unseen posts.

Reddit posts carry no language and no coordinates. The subreddit is not kept: `Post` has no field
for it, and `author.location` is the author's own free text, which a subreddit is not (a city
subreddit as a locality signal needs a field of its own on `Post`).

Rate limits: Reddit answers with `X-Ratelimit-Remaining` (requests left in the window) and
`X-Ratelimit-Reset` (seconds until the window resets). When nothing remains, the next request of
any source of that app raises a transient `SourceError` with `retry_after` = the reset, without
calling Reddit. HTTP failures become `SourceError` in `RedditSource._get`: 429, 5xx, timeouts and
network errors are transient, 401/403/404 permanent. The client secret and the tokens never appear
in logs, reprs or error messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from listener.notify import scrub
from listener.post import Author, Engagement, Post
from listener.sources import Batch, SourceError, SourceUnavailable, uses
from listener.sources.rss import build_query, parse_retry_after

if TYPE_CHECKING:
    from listener.config.model import Organisation, Search
    from listener.config.model import RedditSource as RedditSettings

log = logging.getLogger(__name__)

NAME = "reddit"
SEEN_LIMIT = 200  # fullnames remembered in the cursor
PAGE_SIZE = 100  # Reddit's maximum `limit`
TOKEN_MARGIN = timedelta(seconds=60)  # renew a token this long before Reddit says it expires
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: datetime


class RedditAuth:
    """The app's bearer token (client credentials) and its rate-limit state, shared by every
    Reddit source of one app. Thread-safe; the token is fetched with the caller's client."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        token_url: str,
        user_agent: str,
        client_id_env: str = "REDDIT_CLIENT_ID",
        client_secret_env: str = "REDDIT_CLIENT_SECRET",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.user_agent = user_agent
        self.client_id_env = client_id_env
        self.client_secret_env = client_secret_env
        self.now = now
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self._remaining: float | None = None
        self._reset_at: datetime | None = None
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"RedditAuth(token_url={self.token_url!r}, client_id=<from {self.client_id_env}>)"

    @property
    def check_env(self) -> str:
        """What a person should check when Reddit refuses the app."""
        return f"check {self.client_id_env} and {self.client_secret_env}"

    def scrub(self, text: str) -> str:
        """`text` without the secret or the current token (for messages from the server)."""
        token = self._token.value if self._token is not None else None
        return scrub(text, self._client_secret, token)

    def token(self, client: httpx.Client, *, timeout: float, key: str) -> str:
        """A valid bearer token, fetched when there is none or it is about to expire."""
        with self._lock:
            if self._token is not None and self.now() < self._token.expires_at - TOKEN_MARGIN:
                return self._token.value
            self._token = self._fetch_token(client, timeout=timeout, key=key)
            return self._token.value

    def invalidate(self, token: str) -> None:
        """Forget `token` (Reddit refused it), unless another source already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == token:
                self._token = None

    def check_rate_limit(self, key: str) -> None:
        """Raise a transient `SourceError` when the app has no requests left in this window."""
        with self._lock:
            if self._remaining is None or self._remaining >= 1 or self._reset_at is None:
                return
            wait = (self._reset_at - self.now()).total_seconds()
            if wait <= 0:
                self._remaining = None
                return
        raise SourceError(
            f"{key}: Reddit rate limit used up, resets in {wait:.0f}s",
            transient=True,
            retry_after=wait,
        )

    def note_rate_limit(self, headers: httpx.Headers) -> None:
        """Remember `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` from a response."""
        remaining = _float(headers.get("x-ratelimit-remaining"))
        reset = _float(headers.get("x-ratelimit-reset"))
        if remaining is None:
            return
        with self._lock:
            self._remaining = remaining
            self._reset_at = self.now() + timedelta(seconds=reset) if reset is not None else None

    def _fetch_token(self, client: httpx.Client, *, timeout: float, key: str) -> _Token:
        try:
            response = client.post(
                self.token_url,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": "client_credentials"},
                headers={"User-Agent": self.user_agent},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            reason = self.scrub(str(exc) or type(exc).__name__)
            raise SourceError(f"{key}: cannot get a Reddit token: {reason}") from None
        status = response.status_code
        if status in (401, 403):
            raise SourceError(
                f"{key}: Reddit refused the app's client credentials (HTTP {status}): "
                f"{self.check_env}",
                transient=False,
            )
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.now())
            raise SourceError(
                f"{key}: Reddit's token endpoint answered HTTP {status}",
                transient=True,
                retry_after=retry_after,
            )
        if not 200 <= status < 300:
            raise SourceError(
                f"{key}: Reddit's token endpoint answered HTTP {status}: {self.check_env} "
                "and token_url",
                transient=False,
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{key}: Reddit's token endpoint sent something not JSON") from None
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            error = body.get("error") if isinstance(body, dict) else None
            detail = self.scrub(str(error)) if error else "no access_token in the answer"
            raise SourceError(
                f"{key}: Reddit gave no token ({detail}): {self.check_env}", transient=False
            )
        expires_in = _float(body.get("expires_in")) or 3600.0
        self.tokens_fetched += 1
        log.debug("%s: got a Reddit token valid for %.0fs", key, expires_in)
        return _Token(value, self.now() + timedelta(seconds=expires_in))


_SHARED: dict[tuple[str, str, str], RedditAuth] = {}
_SHARED_LOCK = threading.Lock()


def shared_auth(
    *,
    client_id: str,
    client_secret: str,
    token_url: str,
    user_agent: str,
    client_id_env: str,
    client_secret_env: str,
) -> RedditAuth:
    """The process's one `RedditAuth` for this app (the same id, secret and token URL)."""
    digest = hashlib.sha256(f"{client_id}\0{client_secret}".encode()).hexdigest()
    with _SHARED_LOCK:
        auth = _SHARED.get((token_url, client_id, digest))
        if auth is None:
            auth = RedditAuth(
                client_id=client_id,
                client_secret=client_secret,
                token_url=token_url,
                user_agent=user_agent,
                client_id_env=client_id_env,
                client_secret_env=client_secret_env,
            )
            _SHARED[(token_url, client_id, digest)] = auth
        return auth


def forget_tokens() -> None:
    """Drop every shared `RedditAuth` (tests; a process never needs to)."""
    with _SHARED_LOCK:
        _SHARED.clear()


class RedditSource:
    """One Reddit listing (a search or a subreddit's `new`), read newest first."""

    name = NAME

    def __init__(
        self,
        path: str,
        *,
        key: str,
        auth: RedditAuth,
        client: httpx.Client,
        api_url: str = "https://oauth.reddit.com",
        params: Mapping[str, str] | None = None,
        interval: timedelta = timedelta(minutes=10),
        timeout: timedelta = timedelta(seconds=20),
        max_pages: int = 3,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = path
        self.key = key
        self.auth = auth
        self.client = client
        self.url = api_url.rstrip("/") + path
        self.params = dict(params or {})
        self.interval = interval
        self.timeout = timeout
        self.max_pages = max_pages
        self.now = now

    def __repr__(self) -> str:
        return f"RedditSource(key={self.key!r}, url={self.url!r})"

    def fetch(self, cursor: str | None) -> Batch:
        """The posts not seen before, newest first; see the module docstring."""
        newest, seen = _read_cursor(cursor, self.key)
        known = set(seen)
        first_fetch = not seen  # a first fetch starts from the newest page only
        posts: list[Post] = []
        names: list[str] = []
        skipped = 0
        after: str | None = None
        for page in range(1, self.max_pages + 1):
            children, after = self._listing(after)
            old_on_page = 0
            for child in children:
                name = _fullname(child)
                if name is not None and name in known:
                    old_on_page += 1
                    continue
                if isinstance(child, dict) and child.get("kind") not in (None, "t3"):
                    continue  # a comment or another kind of thing: not a post
                post = child_to_post(child)
                if post is None or name is None:
                    log.warning("%s: skipping a malformed listing item", self.key)
                    skipped += 1
                    continue
                known.add(name)
                names.append(name)
                posts.append(post)
            if not after or not children or old_on_page or first_fetch:
                break
            if page == self.max_pages:
                log.info(
                    "%s: %d pages of unseen posts; older ones are left unread",
                    self.key,
                    self.max_pages,
                )
        log.debug("%s: %d new posts, %d skipped", self.key, len(posts), skipped)
        new_cursor = json.dumps(
            {"newest": names[0] if names else newest, "seen": (names + seen)[:SEEN_LIMIT]}
        )
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped)

    def _listing(self, after: str | None) -> tuple[list[Any], str | None]:
        """One page of the listing: its children and its `after` fullname."""
        params = {**self.params, "limit": str(PAGE_SIZE), "raw_json": "1"}
        if after:
            params["after"] = after
        response = self._get(params)
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{self.key}: Reddit sent something not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        children = data.get("children") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(children, list):
            raise SourceError(f"{self.key}: Reddit's answer is not a listing")
        next_after = data.get("after")
        return children, next_after if isinstance(next_after, str) and next_after else None

    def _get(self, params: Mapping[str, str]) -> httpx.Response:
        """GET the listing with a token, translating every failure into `SourceError`."""
        self.auth.check_rate_limit(self.key)
        timeout = self.timeout.total_seconds()
        token = self.auth.token(self.client, timeout=timeout, key=self.key)
        response = self._send(token, params)
        if response.status_code == 401:
            log.info("%s: Reddit refused the token, getting a new one", self.key)
            self.auth.invalidate(token)
            token = self.auth.token(self.client, timeout=timeout, key=self.key)
            response = self._send(token, params)
        self.auth.note_rate_limit(response.headers)
        status = response.status_code
        if 200 <= status < 300:
            return response
        message = f"{self.key}: {self.url} answered HTTP {status}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.now())
            if retry_after is None and status == 429:
                retry_after = _float(response.headers.get("x-ratelimit-reset"))
            raise SourceError(message, transient=True, retry_after=retry_after)
        if status == 401:
            message += f" twice, also with a new token: {self.auth.check_env}"
        elif status == 403:
            message += (
                " (a private, quarantined or banned subreddit, or an app without access): "
                + self.auth.check_env
            )
        elif 300 <= status < 400:
            message += " (a redirect: Reddit does this for a subreddit that does not exist)"
        elif status == 404:
            message += " (no such subreddit, or a banned one)"
        raise SourceError(message, transient=False)

    def _send(self, token: str, params: Mapping[str, str]) -> httpx.Response:
        headers = {"Authorization": f"bearer {token}", "User-Agent": self.auth.user_agent}
        try:
            return self.client.get(
                self.url, params=params, headers=headers, timeout=self.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            reason = self.auth.scrub(str(exc) or type(exc).__name__)
            raise SourceError(f"{self.key}: {self.url}: {reason}") from None


def child_to_post(child: Any) -> Post | None:
    """A listing child of kind t3 as a canonical post, or None when it is malformed."""
    data = child.get("data") if isinstance(child, dict) else None
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    title = data.get("title")
    permalink = data.get("permalink")
    created = data.get("created_utc")
    if (
        not isinstance(name, str)
        or not name.startswith("t3_")
        or not isinstance(title, str)
        or not isinstance(permalink, str)
        or isinstance(created, bool)
        or not isinstance(created, int | float)
    ):
        return None
    try:
        created_at = datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    selftext = data.get("selftext")
    body = selftext.strip() if isinstance(selftext, str) else ""
    text = "\n".join(part for part in (title.strip(), body) if part)
    author = data.get("author")
    known_author = isinstance(author, str) and author and author != "[deleted]"
    return Post(
        id=f"reddit:{name}",
        source=NAME,
        text=text,
        created_at=created_at,
        url="https://www.reddit.com" + permalink,
        lang=None,
        author=Author(handle=f"u/{author}") if known_author else None,
        engagement=Engagement(
            likes=_count(data.get("score")),
            reposts=_count(data.get("num_crossposts")),
            replies=_count(data.get("num_comments")),
        ),
    )


def build(
    settings: RedditSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[RedditSource]:
    """A search per saved search that uses Reddit, and a `new` listing per subreddit."""
    env = os.environ if env is None else env
    client_id = env.get(settings.client_id_env, "").strip()
    client_secret = env.get(settings.client_secret_env, "").strip()
    missing = [
        f"{name} {'is empty' if name in env else 'is not set'}"
        for name, value in (
            (settings.client_id_env, client_id),
            (settings.client_secret_env, client_secret),
        )
        if not value
    ]
    if missing:
        raise SourceUnavailable(
            "reddit: " + "; ".join(f"environment variable {m}" for m in missing)
        )
    subreddits: dict[str, str] = {}
    for entry in settings.subreddits:
        sub = entry.strip().removeprefix("/").removeprefix("r/")
        if not _SUBREDDIT.match(sub):
            raise ValueError(f"sources.reddit.subreddits: {entry!r} is not a subreddit name")
        subreddits.setdefault(sub.lower(), sub)
    shared = client if client is not None else httpx.Client()  # lives as long as the process
    auth = shared_auth(
        client_id=client_id,
        client_secret=client_secret,
        token_url=settings.token_url,
        user_agent=settings.user_agent,
        client_id_env=settings.client_id_env,
        client_secret_env=settings.client_secret_env,
    )
    sources: list[RedditSource] = []
    for search in searches:
        if not uses(search, NAME):
            continue
        sources.append(
            RedditSource(
                "/search",
                key=f"reddit:search:{search.id}",
                auth=auth,
                client=shared,
                api_url=settings.api_url,
                params={"q": build_query(search, organisations), "sort": "new"},
                interval=search.interval or settings.interval,
            )
        )
    for lower, sub in subreddits.items():
        sources.append(
            RedditSource(
                f"/r/{sub}/new",
                key=f"reddit:r:{lower}",
                auth=auth,
                client=shared,
                api_url=settings.api_url,
                interval=settings.interval,
            )
        )
    return sources


def _read_cursor(cursor: str | None, key: str) -> tuple[str | None, list[str]]:
    """The newest fullname and the seen fullnames in a cursor; nothing for none or a bad one."""
    if not cursor:
        return None, []
    try:
        data = json.loads(cursor)
    except ValueError:
        log.warning("%s: ignoring an unreadable cursor", key)
        return None, []
    if not isinstance(data, dict):
        return None, []
    newest = data.get("newest") if isinstance(data.get("newest"), str) else None
    seen = data.get("seen")
    names = [name for name in seen if isinstance(name, str)] if isinstance(seen, list) else []
    return newest, names


def _fullname(child: Any) -> str | None:
    data = child.get("data") if isinstance(child, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def _count(value: Any) -> int | None:
    """A count for `Engagement`: a whole number >= 0 (a negative score counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, int(value))


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
