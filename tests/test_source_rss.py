"""RSS/Atom sources, fetched from a local feed server (tests/support/feedserver.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from listener.config.model import MainFile, Organisation, Search
from listener.sources import SourceError, build_sources
from listener.sources.rss import RssSource, build_query, feed_key, normalise_link
from tests.support.feedserver import FeedServer, Reply

# A real Google News search feed: SOURCES.md section 6 cites it as "Trimmed from the live Google
# News search feed (2026-09-25)", a public test fixture; copied from shared/samples.
GOOGLE_NEWS = (Path(__file__).parent / "data" / "google-news-rss.xml").read_bytes()

FIXED_NOW = datetime(2026, 9, 26, 8, 0, tzinfo=UTC)

EEMLAND = Organisation.model_validate(
    {
        "id": "eemland",
        "name": "Bibliotheek Eemland",
        "aliases": ["de Bieb Eemland", "bibliotheek eemland"],
        "branches": [
            {"id": "centrum", "name": "Eemhuis", "town": "Amersfoort", "lat": 52.15, "lon": 5.39},
            {"id": "leusden", "name": "Leusden", "town": "Leusden", "lat": 52.13, "lon": 5.43},
            {"id": "vathorst", "name": "Vathorst", "town": "Amersfoort", "lat": 52.19, "lon": 5.42},
        ],
    }
)
HAAGLANDEN = Organisation.model_validate(
    {
        "id": "haaglanden",
        "name": "Bibliotheek Den Haag",
        "branches": [
            {"id": "centrale", "name": "Centrale", "town": "Den Haag", "lat": 52.08, "lon": 4.31},
        ],
    }
)
ORGS = {"eemland": EEMLAND, "haaglanden": HAAGLANDEN}

BRAND = Search(id="eemland-brand", org="eemland", kind="brand")
LOCAL = Search(id="eemland-local", org="eemland", kind="local", terms=["de bieb", "de bibliotheek"])


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def rss_source(url: str, client: httpx.Client, **kwargs: object) -> RssSource:
    return RssSource(url, client=client, now=lambda: FIXED_NOW, **kwargs)  # type: ignore[arg-type]


def rss(*items: str, language: str = "nl") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Amersfoortse Courant</title><language>{language}</language>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


# --- parsing ------------------------------------------------------------------------------------


def test_the_real_google_news_sample_becomes_posts(client: httpx.Client) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        batch = rss_source(server.url(), client).fetch(None)

    assert batch.skipped == 0
    assert batch.more is False
    first, second = batch.posts
    assert first.id == "rss:CBMinwFBVV95cUxObDNTMW1VT3pC"
    assert first.source == "rss"
    assert first.url == "https://news.google.com/rss/articles/CBMinwFBVV95cUxObDNTMW1VT3pC?oc=5"
    assert first.created_at == datetime(2026, 9, 25, 13, 53, 48, tzinfo=UTC)
    assert first.text == (
        "Fall Related Emergency Visits for Older Adults Continue to Climb - countynewscenter.com\n"
        "Fall Related Emergency Visits for Older Adults Continue to Climb countynewscenter.com"
    )
    assert first.lang == "en-us"
    assert first.author is not None and first.author.name == "countynewscenter.com"
    assert second.id == "rss:CBMiogFBVV95cUxQZ3MtNXd1"
    assert second.created_at == datetime(2026, 9, 25, 16, 11, tzinfo=UTC)
    assert second.author is not None and second.author.name == "The Guardian"
    assert "’s handling" in second.text
    assert not any("<" in post.text or "&nbsp;" in post.text for post in batch.posts)


def test_entries_without_guid_get_an_id_from_the_normalised_link(client: httpx.Client) -> None:
    body = rss(
        "<item><title>Bieb Leusden &amp; de zomer</title>"
        "<link>HTTPS://WWW.AD.nl/amersfoort/bieb?utm_source=rss&amp;p=2#top</link>"
        "<description>&lt;p&gt;Nieuwe &lt;b&gt;openingstijden&lt;/b&gt; &amp;amp; meer&lt;/p&gt;"
        "</description></item>"
    )
    with FeedServer(body) as server:
        (post,) = rss_source(server.url(), client).fetch(None).posts

    assert post.id == "rss:https://www.ad.nl/amersfoort/bieb?p=2"
    assert post.text == "Bieb Leusden & de zomer\nNieuwe openingstijden & meer"
    assert post.lang == "nl"
    assert post.author is not None and post.author.name == "Amersfoortse Courant"
    assert post.created_at == FIXED_NOW  # no date in the feed


def test_an_entry_without_title_or_summary_is_skipped_and_counted(client: httpx.Client) -> None:
    body = rss(
        "<item><guid>empty</guid><link>https://example.nl/leeg</link></item>",
        "<item><guid>ok</guid><title>De bieb is open</title></item>",
    )
    with FeedServer(body) as server:
        batch = rss_source(server.url(), client).fetch(None)

    assert [post.id for post in batch.posts] == ["rss:ok"]
    assert batch.skipped == 1


def test_normalise_link_lowercases_scheme_and_host_and_drops_tracking() -> None:
    link = "HTTPS://News.Example.NL/Path/Stays?a=1&utm_medium=x&UTM_campaign=y&b=2#frag"
    assert normalise_link(link) == "https://news.example.nl/Path/Stays?a=1&b=2"


# --- queries ------------------------------------------------------------------------------------


def test_a_brand_query_quotes_and_ors_the_organisation_names() -> None:
    search = Search(id="b", org="eemland", kind="brand", terms=["Eemhuis bieb"])
    assert build_query(search, ORGS) == (
        '"Bibliotheek Eemland" OR "de Bieb Eemland" OR "Eemhuis bieb"'
    )


def test_a_local_query_ands_its_terms_with_the_towns_of_the_organisation() -> None:
    assert build_query(LOCAL, ORGS) == '("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden)'


def test_a_local_query_without_org_uses_the_towns_of_all_organisations() -> None:
    search = Search(id="l", kind="local", terms=["de bieb"])
    assert build_query(search, ORGS) == '"de bieb" (Amersfoort OR Leusden OR "Den Haag")'


def test_the_query_template_is_filled_and_url_encoded(client: httpx.Client, tmp_path: Path) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        main = MainFile.model_validate(
            {
                "sources": {
                    "rss": {
                        "url_template": server.url("/rss/search") + "?q={query}&hl=nl",
                        "user_agent": "listener-test/1.0",
                    }
                }
            }
        )
        (source,) = build_sources(main, [LOCAL], ORGS, tmp_path, client)
        source.fetch(None)

    (request,) = server.requests
    assert request.path == "/rss/search"
    assert request.query == {
        "q": ['("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden)'],
        "hl": ["nl"],
    }
    assert request.raw_query.startswith("q=%28%22de+bieb%22+OR+")
    assert request.headers["user-agent"] == "listener-test/1.0"


# --- HTTP ---------------------------------------------------------------------------------------


def test_an_etag_makes_the_second_fetch_a_304_with_no_posts_and_the_same_cursor(
    client: httpx.Client,
) -> None:
    with FeedServer(
        GOOGLE_NEWS, etag='"v1"', last_modified="Fri, 25 Sep 2026 18:10:28 GMT"
    ) as server:
        source = rss_source(server.url(), client)
        first = source.fetch(None)
        second = source.fetch(first.cursor)

    assert len(first.posts) == 2
    assert json.loads(first.cursor) == {"etag": '"v1"', "modified": "Fri, 25 Sep 2026 18:10:28 GMT"}
    assert second.posts == []
    assert second.cursor == first.cursor
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert server.requests[1].headers["if-modified-since"] == "Fri, 25 Sep 2026 18:10:28 GMT"


def test_redirects_are_followed(client: httpx.Client) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(status=301, body=b"", headers={"Location": "/moved.xml"}))
        batch = rss_source(server.url("/old.xml"), client).fetch(None)

    assert len(batch.posts) == 2
    assert [request.path for request in server.requests] == ["/old.xml", "/moved.xml"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_a_transient_source_error(client: httpx.Client, status: int) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(status=status, body=b"oops"))
        with pytest.raises(SourceError) as caught:
            rss_source(server.url(), client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after is None
    assert f"HTTP {status}" in str(caught.value)


def test_a_429_is_transient_and_carries_retry_after(client: httpx.Client) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(status=429, body=b"slow down", headers={"Retry-After": "120"}))
        with pytest.raises(SourceError) as caught:
            rss_source(server.url(), client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 120


def test_a_retry_after_date_becomes_seconds_from_now(client: httpx.Client) -> None:
    later = "Sat, 26 Sep 2026 08:05:00 GMT"  # five minutes after FIXED_NOW
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(status=503, body=b"", headers={"Retry-After": later}))
        with pytest.raises(SourceError) as caught:
            rss_source(server.url(), client).fetch(None)

    assert caught.value.retry_after == 300


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_other_client_errors_are_permanent(client: httpx.Client, status: int) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(status=status, body=b"no"))
        with pytest.raises(SourceError) as caught:
            rss_source(server.url(), client).fetch(None)

    assert caught.value.transient is False


@pytest.mark.parametrize(
    "body",
    [b"this is not a feed at all", b"<html><body><p>Before you continue</p></body></html>"],
)
def test_a_body_that_is_not_a_feed_is_a_source_error(client: httpx.Client, body: bytes) -> None:
    with FeedServer(body, content_type="text/html") as server, pytest.raises(SourceError) as caught:
        rss_source(server.url(), client).fetch(None)

    assert "cannot parse" in str(caught.value)


def test_a_refused_connection_is_a_transient_source_error(client: httpx.Client) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(SourceError) as caught:
        rss_source(f"http://127.0.0.1:{port}/feed.xml", client).fetch(None)

    assert caught.value.transient is True


def test_a_timeout_is_a_transient_source_error(client: httpx.Client) -> None:
    with FeedServer(GOOGLE_NEWS) as server:
        server.script(Reply(delay=5))
        source = rss_source(server.url(), client, timeout=timedelta(seconds=0.2))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True


# --- building -----------------------------------------------------------------------------------


def config(*, replay_enabled: bool = True, rss_enabled: bool = True) -> MainFile:
    return MainFile.model_validate(
        {
            "sources": {
                "replay": {"enabled": replay_enabled, "path": "demo/posts.jsonl", "batch": 50},
                "rss": {
                    "enabled": rss_enabled,
                    "feeds": ["https://www.ad.nl/amersfoort/rss.xml"],
                    "interval": "10m",
                },
            }
        }
    )


def test_build_sources_makes_one_source_per_search_and_fixed_feed(
    client: httpx.Client, tmp_path: Path
) -> None:
    hourly = Search(id="eemland-brand", org="eemland", kind="brand", interval="1h")
    elsewhere = Search(id="bsky-only", org="eemland", kind="brand", sources=["bluesky"])

    sources = build_sources(config(), [hourly, LOCAL, elsewhere], ORGS, tmp_path, client)

    by_key = {source.key: source for source in sources}
    feed = feed_key("https://www.ad.nl/amersfoort/rss.xml")
    assert list(by_key) == [
        "replay:demo/posts.jsonl",
        "rss:search:eemland-brand",
        "rss:search:eemland-local",
        feed,
    ]
    assert feed.startswith("rss:feed:") and len(feed) == len("rss:feed:") + 12
    assert [source.name for source in sources] == ["replay", "rss", "rss", "rss"]
    assert by_key["replay:demo/posts.jsonl"].path == tmp_path / "demo" / "posts.jsonl"
    assert by_key["rss:search:eemland-brand"].interval == timedelta(hours=1)
    assert by_key["rss:search:eemland-local"].interval == timedelta(minutes=10)
    brand_query = quote_plus('"Bibliotheek Eemland" OR "de Bieb Eemland"')
    assert by_key["rss:search:eemland-brand"].url == (
        f"https://news.google.com/rss/search?q={brand_query}&hl=nl&gl=NL&ceid=NL:nl"
    )


def test_build_sources_leaves_out_disabled_sources(client: httpx.Client, tmp_path: Path) -> None:
    no_replay = build_sources(config(replay_enabled=False), [BRAND], ORGS, tmp_path, client)
    no_rss = build_sources(config(rss_enabled=False), [BRAND], ORGS, tmp_path, client)

    assert [source.key for source in no_replay] == [
        "rss:search:eemland-brand",
        feed_key("https://www.ad.nl/amersfoort/rss.xml"),
    ]
    assert [source.key for source in no_rss] == ["replay:demo/posts.jsonl"]
