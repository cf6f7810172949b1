"""RSS and Atom feeds: a news-search feed per saved search, plus fixed feeds.

Each saved search that includes "rss" in its `sources` (or lists no sources, meaning all of
them) gets a feed whose URL is `url_template` with `{query}` replaced by the URL-encoded query
`build_query` makes from the search (Google News search by default, see SOURCES.md section 6).
Each URL in `feeds` (local news, Google Alerts Atom feeds) is a source of its own.

Fetching is a conditional GET with httpx: the cursor is JSON `{"etag": ..., "modified": ...}`
from the last 200 response, and a 304 gives an empty batch with the same cursor. The body goes
to `feedparser.parse`. HTTP and network failures become `SourceError` here, in one place:
429, 5xx, timeouts and network errors are transient; other 4xx are permanent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import feedparser
import httpx

from listener.post import Author, Post
from listener.sources import Batch, SourceError, brand_names, search_branches, search_terms, uses

if TYPE_CHECKING:
    from listener.config.model import Organisation, Search
    from listener.config.model import RssSource as RssSettings

log = logging.getLogger(__name__)

NAME = "rss"


class RssSource:
    """One feed URL, fetched with a conditional GET and turned into posts."""

    name = NAME

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client,
        key: str | None = None,
        interval: timedelta = timedelta(minutes=15),
        timeout: timedelta = timedelta(seconds=20),
        user_agent: str = "listener",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url
        self.client = client
        self.key = key or feed_key(url)
        self.interval = interval
        self.timeout = timeout
        self.user_agent = user_agent
        self.now = now

    def fetch(self, cursor: str | None) -> Batch:
        """Fetch the feed; 304 gives no posts and keeps `cursor`."""
        validators = _read_cursor(cursor)
        response = self._get(validators)
        if response.status_code == 304:
            return Batch(posts=[], cursor=cursor)
        parsed = feedparser.parse(
            response.content,
            response_headers={"content-type": response.headers.get("content-type", "")},
        )
        if not parsed.entries and (parsed.get("bozo") or not parsed.get("version")):
            reason = parsed.get("bozo_exception") or "not an RSS or Atom feed"
            raise SourceError(f"{self.key}: cannot parse {self.url}: {reason}")
        channel = parsed.feed
        language = channel.get("language")
        lang = language.strip().lower() if isinstance(language, str) and language.strip() else None
        posts: list[Post] = []
        skipped = 0
        for entry in parsed.entries:
            post = entry_to_post(entry, lang=lang, channel_title=channel.get("title"), now=self.now)
            if post is None:
                log.warning("%s: skipping an entry with no title, summary or id", self.key)
                skipped += 1
            else:
                posts.append(post)
        log.debug("%s: %d posts, %d skipped", self.key, len(posts), skipped)
        new_cursor = json.dumps(
            {
                "etag": response.headers.get("etag"),
                "modified": response.headers.get("last-modified"),
            }
        )
        return Batch(posts=posts, cursor=new_cursor, skipped=skipped)

    def _get(self, validators: Mapping[str, str | None]) -> httpx.Response:
        """GET the feed, translating every failure into `SourceError`."""
        headers = {"User-Agent": self.user_agent}
        if validators.get("etag"):
            headers["If-None-Match"] = str(validators["etag"])
        if validators.get("modified"):
            headers["If-Modified-Since"] = str(validators["modified"])
        try:
            response = self.client.get(
                self.url,
                headers=headers,
                timeout=self.timeout.total_seconds(),
                follow_redirects=True,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise SourceError(
                f"{self.key}: bad feed URL {self.url}: {exc}", transient=False
            ) from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise SourceError(f"{self.key}: {self.url}: {reason}") from exc
        status = response.status_code
        if status == 304 or 200 <= status < 300:
            return response
        message = f"{self.key}: {self.url} answered HTTP {status}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.now())
            raise SourceError(message, transient=True, retry_after=retry_after)
        raise SourceError(message, transient=not 400 <= status < 500)


def build_query(search: Search, organisations: Mapping[str, Organisation]) -> str:
    """The news-search query for a saved search.

    A brand search finds the organisation's name and aliases (and the search's own terms), each
    quoted and OR-ed. A local search finds its quoted terms AND one of the towns of its
    organisation's branches (or of every organisation's branches when it has no org), e.g.
    `("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden)`.
    """
    if search.kind == "brand":
        return _any_of(brand_names(search, organisations), always_quote=True, group=False)
    terms = _any_of(search_terms(search), always_quote=True, group=True)
    towns = [branch.town for branch in search_branches(search, organisations) if branch.town]
    places = _any_of(towns, always_quote=False, group=True)
    return f"{terms} {places}" if places else terms


def feed_key(url: str) -> str:
    """The key of a fixed feed: stable across restarts, short, and free of secrets in the URL."""
    return f"rss:feed:{hashlib.sha1(url.encode('utf-8')).hexdigest()[:12]}"


def normalise_link(link: str) -> str:
    """Lower-case scheme and host, drop the fragment and utm_* parameters."""
    parts = urlsplit(link.strip())
    query = "&".join(
        piece for piece in parts.query.split("&") if piece and not piece.lower().startswith("utm_")
    )
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, query, ""))


def html_to_text(html: str) -> str:
    """Plain text from an HTML fragment: tags stripped, entities unescaped, spaces collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def entry_to_post(
    entry: Mapping[str, Any],
    *,
    lang: str | None,
    channel_title: str | None,
    now: Callable[[], datetime],
) -> Post | None:
    """A feedparser entry as a canonical post, or None if it has no text or no id."""
    title = _plain(entry, "title")
    summary = _plain(entry, "summary")
    text = "\n".join(part for part in (title, summary) if part)
    link = entry.get("link") or None
    ident = entry.get("id") or (normalise_link(link) if link else None)
    if not text or not ident:
        return None
    moment = entry.get("published_parsed") or entry.get("updated_parsed")
    created_at = (
        datetime(moment[0], moment[1], moment[2], moment[3], moment[4], moment[5], tzinfo=UTC)
        if moment
        else now()
    )
    source = entry.get("source") or {}
    author_name = source.get("title") or channel_title or None
    return Post(
        id=f"rss:{ident}",
        source=NAME,
        text=text,
        created_at=created_at,
        url=link,
        lang=lang,
        author=Author(name=author_name, handle=None, location=None, followers=None),
    )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def build(
    settings: RssSettings,
    *,
    searches: Sequence[Search],
    organisations: Mapping[str, Organisation],
    base_dir: Path,
    client: httpx.Client | None,
    env: Mapping[str, str] | None = None,
) -> list[RssSource]:
    """A source per saved search that uses RSS, and one per fixed feed in `settings.feeds`."""
    shared = client if client is not None else httpx.Client()  # lives as long as the process

    def source(url: str, key: str, interval: timedelta) -> RssSource:
        return RssSource(
            url,
            client=shared,
            key=key,
            interval=interval,
            timeout=settings.timeout,
            user_agent=settings.user_agent,
        )

    sources: list[RssSource] = []
    if settings.url_template is not None:
        for search in searches:
            if not uses(search, NAME):
                continue
            url = settings.url_template.replace(
                "{query}", quote_plus(build_query(search, organisations))
            )
            interval = search.interval or settings.interval
            sources.append(source(url, f"rss:search:{search.id}", interval))
    for url in dict.fromkeys(settings.feeds):  # a URL listed twice is one feed
        sources.append(source(url, feed_key(url), settings.interval))
    return sources


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line breaks."""

    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})
    _HIDDEN = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _plain(entry: Mapping[str, Any], field: str) -> str:
    """An entry's title or summary as plain text (HTML converted when feedparser says it is)."""
    value = entry.get(field) or ""
    detail = entry.get(f"{field}_detail") or {}
    if "html" in (detail.get("type") or "text/html"):
        value = html_to_text(value)
    return " ".join(value.split()) if field == "title" else value.strip()


def _any_of(items: Sequence[str], *, always_quote: bool, group: bool) -> str:
    """`"a" OR "b"`, de-duplicated (ignoring case), in parentheses when `group` and several."""
    unique: list[str] = []
    seen: set[str] = set()
    for item in items:
        cleaned = " ".join(item.replace('"', " ").split())
        if cleaned and cleaned.casefold() not in seen:
            seen.add(cleaned.casefold())
            unique.append(cleaned)
    quoted = [
        f'"{item}"' if always_quote or not re.fullmatch(r"[\w\-']+", item) else item
        for item in unique
    ]
    joined = " OR ".join(quoted)
    return f"({joined})" if group and len(quoted) > 1 else joined


def _read_cursor(cursor: str | None) -> dict[str, str | None]:
    """The validators stored in a cursor; empty for none or an unreadable one."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        log.warning("ignoring unreadable RSS cursor %r", cursor)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in ("etag", "modified") and isinstance(v, str)}
