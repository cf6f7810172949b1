"""The Reddit source, against a local Reddit (tests/support/reddit_server.py)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from listener.config.model import MainFile, Organisation, Search
from listener.config.model import RedditSource as RedditSettings
from listener.sources import SourceError, SourceUnavailable, build_sources, reddit
from listener.sources.reddit import RedditAuth, RedditSource
from tests.support.jsonapi_server import Reply
from tests.support.reddit_server import CLIENT_ID, CLIENT_SECRET, RedditServer, link

ROOT = Path(__file__).resolve().parents[1]
FIXED_NOW = datetime(2026, 9, 26, 8, 0, tzinfo=UTC)
ENV = {"REDDIT_CLIENT_ID": CLIENT_ID, "REDDIT_CLIENT_SECRET": CLIENT_SECRET}

EEMLAND = Organisation.model_validate(
    {
        "id": "eemland",
        "name": "Bibliotheek Eemland",
        "aliases": ["de Bieb Eemland"],
        "branches": [
            {"id": "centrum", "name": "Eemhuis", "town": "Amersfoort", "lat": 52.15, "lon": 5.39},
            {"id": "leusden", "name": "Leusden", "town": "Leusden", "lat": 52.13, "lon": 5.43},
        ],
    }
)
ORGS = {"eemland": EEMLAND}
BRAND = Search(id="eemland-brand", org="eemland", kind="brand")
LOCAL = Search(id="eemland-local", org="eemland", kind="local", terms=["de bieb"])


def shared_file(folder: str, name: str) -> Path:
    """A file from the shared folder next to the repository, or its copy in tests/data."""
    copy = Path(__file__).parent / "data" / name
    return copy if copy.is_file() else ROOT.parent / "shared" / folder / name


POST_SCHEMA = json.loads(shared_file("schemas", "post.schema.json").read_text("utf-8"))
# Real listings recorded by praw's test suite; see SOURCES.md section 3 ("Samples").
LISTING = shared_file("samples", "reddit-listing.json").read_bytes()
LISTING_2022 = shared_file("samples", "reddit-listing-2022.json").read_bytes()


def assert_schema_valid(posts: list[Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        POST_SCHEMA, format_checker=jsonschema.FormatChecker()
    )
    for post in posts:
        validator.validate(post.to_dict())


class Clock:
    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(autouse=True)
def no_shared_tokens() -> Iterator[None]:
    reddit.forget_tokens()
    yield
    reddit.forget_tokens()


def auth_for(server: RedditServer, clock: Clock | None = None, **kwargs: Any) -> RedditAuth:
    return RedditAuth(
        client_id=kwargs.pop("client_id", CLIENT_ID),
        client_secret=kwargs.pop("client_secret", CLIENT_SECRET),
        token_url=server.token_url,
        user_agent="listener-test/1.0",
        now=clock or Clock(),
        **kwargs,
    )


def source_for(
    server: RedditServer,
    client: httpx.Client,
    path: str = "/r/Amersfoort/new",
    *,
    auth: RedditAuth | None = None,
    clock: Clock | None = None,
    **kwargs: Any,
) -> RedditSource:
    clock = clock or Clock()
    return RedditSource(
        path,
        key="reddit:r:amersfoort",
        auth=auth or auth_for(server, clock),
        client=client,
        api_url=server.url(),
        now=clock,
        **kwargs,
    )


def listing(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` posts, newest first: t3_p<start+count-1> ... t3_p<start>."""
    return [
        link(f"t3_p{n:04d}", f"Post {n}", created_utc=1_790_000_000.0 + n)
        for n in reversed(range(start, start + count))
    ]


def listing_requests(server: RedditServer) -> list[Any]:
    return [request for request in server.requests if request.method == "GET"]


# --- posts --------------------------------------------------------------------------------------


def test_the_real_listing_becomes_posts_that_follow_the_post_schema(client: httpx.Client) -> None:
    with RedditServer() as server:
        source = source_for(server, client, "/r/all/new")
        source.auth.token(client, timeout=5, key="test")  # the token first, then the listing
        server.script(Reply(body=LISTING))
        batch = source.fetch(None)

    assert batch.skipped == 0
    assert [post.id for post in batch.posts] == [
        "reddit:t3_5jo144",
        "reddit:t3_5jo143",
        "reddit:t3_5jo141",
        "reddit:t3_5jo140",
    ]
    first = batch.posts[0]
    assert first.source == "reddit"
    assert first.text == (
        "Newly discovered disease could hold key to Alzheimer's, Parkinson's – and even ageing"
    )
    assert first.url == (
        "https://www.reddit.com/r/UpliftingNews/comments/5jo144/"
        "newly_discovered_disease_could_hold_key_to/"
    )
    assert first.created_at == datetime(2016, 12, 22, 2, 17, 32, tzinfo=UTC)
    assert first.lang is None and first.geo is None
    assert first.author is not None and first.author.handle == "u/3joan"
    assert first.author.location is None  # the subreddit is not the author's location
    assert first.engagement is not None
    assert (first.engagement.likes, first.engagement.replies) == (1, 0)
    selfpost = batch.posts[2]
    assert selfpost.text.startswith(
        "LF: Lure Ball Gible and Friend Ball Snorlax/Munchlax, FT: A list of rare ball'd "
        "Pokemons + HA\n[casual] I have the following:"
    )
    assert_schema_valid(batch.posts)


def test_the_2022_listing_with_newer_fields_becomes_a_post(client: httpx.Client) -> None:
    with RedditServer() as server:
        source = source_for(server, client, "/api/info/")
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(body=LISTING_2022))
        (post,) = source.fetch(None).posts

    assert post.id == "reddit:t3_uflrmv"
    assert post.text == "Test post"
    assert post.created_at == datetime(2022, 4, 30, 22, 33, 31, tzinfo=UTC)
    assert post.url == "https://www.reddit.com/r/<TEST_SUBREDDIT>/comments/uflrmv/test_post/"
    assert post.author is not None and post.author.handle == "u/Lil_SpazTest"
    assert post.engagement is not None
    assert (post.engagement.likes, post.engagement.reposts, post.engagement.replies) == (1, 0, 1)
    assert_schema_valid([post])


def test_a_deleted_author_and_a_negative_score_still_make_a_valid_post(
    client: httpx.Client,
) -> None:
    child = link("t3_x1", "Boete", author="[deleted]", score=-4, selftext="  veel te hoog  ")
    with RedditServer({"/r/Amersfoort/new": [child]}) as server:
        (post,) = source_for(server, client).fetch(None).posts

    assert post.author is None
    assert post.engagement is not None and post.engagement.likes == 0
    assert post.text == "Boete\nveel te hoog"
    assert_schema_valid([post])


def test_malformed_items_are_logged_skipped_and_counted(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    no_date = link("t3_bad1", "Zonder datum")
    del no_date["data"]["created_utc"]
    no_title = link("t3_bad2", "x")
    no_title["data"]["title"] = None
    comment = {"kind": "t1", "data": {"name": "t1_c1", "body": "een reactie"}}
    children = [no_date, "not an object", no_title, comment, link("t3_ok", "De bieb is open")]
    with RedditServer({"/r/Amersfoort/new": children}) as server:
        batch = source_for(server, client).fetch(None)

    assert [post.id for post in batch.posts] == ["reddit:t3_ok"]
    assert batch.skipped == 3  # the comment is not a post, not a malformed one
    assert caplog.text.count("skipping a malformed listing item") == 3


def test_an_empty_listing_gives_no_posts_and_keeps_what_was_seen(client: httpx.Client) -> None:
    cursor = json.dumps({"newest": "t3_old", "seen": ["t3_old"]})
    with RedditServer({"/r/Amersfoort/new": []}) as server:
        batch = source_for(server, client).fetch(cursor)

    assert batch.posts == []
    assert batch.skipped == 0
    assert json.loads(batch.cursor or "") == {"newest": "t3_old", "seen": ["t3_old"]}


# --- paging and resuming ------------------------------------------------------------------------


def test_a_first_fetch_reads_the_newest_page_only_and_remembers_it(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(250)}) as server:
        batch = source_for(server, client).fetch(None)

    assert len(batch.posts) == 100
    assert batch.posts[0].id == "reddit:t3_p0249"
    cursor = json.loads(batch.cursor or "")
    assert cursor["newest"] == "t3_p0249"
    assert cursor["seen"] == [f"t3_p{n:04d}" for n in range(249, 149, -1)]
    (request,) = listing_requests(server)
    assert request.path == "/r/Amersfoort/new"
    assert request.params == {"limit": "100", "raw_json": "1"}


def test_a_later_fetch_follows_after_until_it_reaches_posts_it_has_seen(
    client: httpx.Client,
) -> None:
    posts = listing(300)  # t3_p0299 .. t3_p0000; the last fetch saw t3_p0120 and older
    seen = [f"t3_p{n:04d}" for n in range(120, 0, -1)]
    cursor = json.dumps({"newest": "t3_p0120", "seen": seen})
    with RedditServer({"/r/Amersfoort/new": posts}) as server:
        batch = source_for(server, client).fetch(cursor)

    assert [post.id for post in batch.posts] == [f"reddit:t3_p{n:04d}" for n in range(299, 120, -1)]
    first, second = listing_requests(server)
    assert "after" not in first.params
    assert second.params == {"limit": "100", "raw_json": "1", "after": "t3_p0200"}
    cursor_after = json.loads(batch.cursor or "")
    assert cursor_after["newest"] == "t3_p0299"
    assert len(cursor_after["seen"]) == reddit.SEEN_LIMIT
    assert cursor_after["seen"][:2] == ["t3_p0299", "t3_p0298"]


def test_paging_stops_after_max_pages_even_when_everything_is_new(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="listener.sources.reddit")
    cursor = json.dumps({"newest": "t3_gone", "seen": ["t3_gone"]})
    with RedditServer({"/r/Amersfoort/new": listing(500)}) as server:
        batch = source_for(server, client, max_pages=3).fetch(cursor)

    assert len(batch.posts) == 300
    assert len(listing_requests(server)) == 3
    assert "older ones are left unread" in caplog.text


def test_a_post_that_moves_to_the_next_page_is_returned_once(client: httpx.Client) -> None:
    def page(after: str | None, *names: str) -> Reply:
        children = [link(name, name) for name in names]
        return Reply(body={"kind": "Listing", "data": {"after": after, "children": children}})

    cursor = json.dumps({"newest": "t3_a", "seen": ["t3_a"]})
    with RedditServer() as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        # a new post arrived between the two requests, pushing t3_c onto the second page
        server.script(page("t3_c", "t3_e", "t3_d", "t3_c"), page(None, "t3_c", "t3_b", "t3_a"))
        batch = source.fetch(cursor)

    assert [post.id for post in batch.posts] == [
        "reddit:t3_e",
        "reddit:t3_d",
        "reddit:t3_c",
        "reddit:t3_b",
    ]


def test_a_restart_resumes_from_the_stored_cursor(client: httpx.Client) -> None:
    posts = listing(50)
    with RedditServer({"/r/Amersfoort/new": posts}) as server:
        cursor = source_for(server, client).fetch(None).cursor
        posts[:0] = listing(3, start=50)  # three new posts while listener was down
        restarted = source_for(server, client)  # a new process: new objects, the stored cursor
        batch = restarted.fetch(cursor)

    assert [post.id for post in batch.posts] == [
        "reddit:t3_p0052",
        "reddit:t3_p0051",
        "reddit:t3_p0050",
    ]
    last = listing_requests(server)[-1]
    assert last.params == {"limit": "100", "raw_json": "1"}  # the newest page, then it stops
    assert json.loads(batch.cursor or "")["newest"] == "t3_p0052"


def test_an_unreadable_cursor_is_ignored_with_a_warning(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(3)}) as server:
        batch = source_for(server, client).fetch("not json")

    assert len(batch.posts) == 3
    assert "ignoring an unreadable cursor" in caplog.text


# --- OAuth --------------------------------------------------------------------------------------


def test_the_token_comes_from_client_credentials_with_basic_auth_and_the_user_agent(
    client: httpx.Client,
) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(1)}) as server:
        source_for(server, client).fetch(None)

    token_request, listing_request = server.requests
    assert token_request.method == "POST"
    assert token_request.path == "/api/v1/access_token"
    assert token_request.form == {"grant_type": "client_credentials"}
    assert token_request.headers["authorization"].startswith("Basic ")
    assert token_request.headers["user-agent"] == "listener-test/1.0"
    assert listing_request.headers["authorization"] == "bearer token-1"
    assert listing_request.headers["user-agent"] == "listener-test/1.0"


def test_the_token_is_cached_until_it_is_about_to_expire(client: httpx.Client) -> None:
    clock = Clock()
    with RedditServer({"/r/Amersfoort/new": listing(1)}, expires_in=3600) as server:
        auth = auth_for(server, clock)
        one = source_for(server, client, auth=auth, clock=clock)
        two = source_for(server, client, "/r/Amersfoort/new", auth=auth, clock=clock)
        one.fetch(None)
        two.fetch(None)
        clock.now += timedelta(minutes=58)  # still valid for two minutes
        one.fetch(None)
        clock.now += timedelta(seconds=90)  # within a minute of expiry: renewed
        one.fetch(None)

    assert server.issued == ["token-1", "token-2"]
    assert auth.tokens_fetched == 2
    bearer = [r.headers["authorization"] for r in listing_requests(server)]
    assert bearer == ["bearer token-1", "bearer token-1", "bearer token-1", "bearer token-2"]


def test_a_401_gets_a_new_token_and_one_retry(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.fetch(None)
        server.revoke_tokens()
        batch = source.fetch(None)

    assert len(batch.posts) == 2
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/api/v1/access_token"),
        ("GET", "/r/Amersfoort/new"),
        ("GET", "/r/Amersfoort/new"),  # 401
        ("POST", "/api/v1/access_token"),
        ("GET", "/r/Amersfoort/new"),
    ]


def test_a_second_401_is_permanent_and_names_the_variables_to_check(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        server.accept_tokens = False
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is False
    assert "REDDIT_CLIENT_ID" in str(caught.value) and "REDDIT_CLIENT_SECRET" in str(caught.value)
    assert len(server.issued) == 2  # re-authenticated once, not in a loop


def test_refused_client_credentials_are_permanent_and_name_the_variables(
    client: httpx.Client,
) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        auth = auth_for(server, client_secret="wrong-secret-value")
        with pytest.raises(SourceError) as caught:
            source_for(server, client, auth=auth).fetch(None)

    message = str(caught.value)
    assert caught.value.transient is False
    assert "HTTP 401" in message and "REDDIT_CLIENT_SECRET" in message
    assert "wrong-secret-value" not in message


def test_a_token_answer_without_a_token_is_permanent(client: httpx.Client) -> None:
    with RedditServer() as server:
        server.script(Reply(body={"error": "invalid_grant"}))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is False
    assert "invalid_grant" in str(caught.value)


def test_a_token_endpoint_that_is_down_is_transient(client: httpx.Client) -> None:
    with RedditServer() as server:
        server.script(Reply(status=503, body=b"down", headers={"Retry-After": "60"}))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 60


# --- rate limits and HTTP errors ----------------------------------------------------------------


def test_a_429_with_retry_after_is_transient_and_waits_that_long(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(status=429, body=b"", headers={"Retry-After": "120"}))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 120


def test_a_429_with_only_the_reset_header_waits_until_the_reset(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        headers = {"X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "42"}
        server.script(Reply(status=429, body={"message": "Too Many Requests"}, headers=headers))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 42


def test_a_429_without_headers_is_transient_without_a_wait(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(status=429, body=b""))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after is None


def test_no_requests_remaining_stops_the_next_fetch_until_the_reset(client: httpx.Client) -> None:
    clock = Clock()
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        server.ratelimit = {"X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "90"}
        auth = auth_for(server, clock)
        source = source_for(server, client, auth=auth, clock=clock)
        other = source_for(server, client, "/r/Amersfoort/new", auth=auth, clock=clock)
        first = source.fetch(None)  # this answer is fine; the next request would not be
        with pytest.raises(SourceError) as caught:
            other.fetch(None)
        sent = len(server.requests)
        clock.now += timedelta(seconds=91)
        server.ratelimit = {"X-Ratelimit-Remaining": "599.0", "X-Ratelimit-Reset": "300"}
        later = other.fetch(None)

    assert len(first.posts) == 2
    assert caught.value.transient is True
    assert caught.value.retry_after == 90
    assert sent == 2  # the token and the first listing: nothing sent while rate limited
    assert len(later.posts) == 2


def test_running_out_of_requests_while_paging_fails_the_fetch_and_keeps_the_cursor(
    client: httpx.Client,
) -> None:
    cursor = json.dumps({"newest": "t3_gone", "seen": ["t3_gone"]})
    with RedditServer({"/r/Amersfoort/new": listing(150)}) as server:
        server.ratelimit = {"X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "30"}
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(cursor)

    assert caught.value.transient is True
    assert caught.value.retry_after == 30
    assert len(listing_requests(server)) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(client: httpx.Client, status: int) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(status=status, body=b"<html>oops</html>"))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "explains"),
    [
        (403, "REDDIT_CLIENT_ID"),
        (404, "no such subreddit"),
        (302, "does not exist"),
    ],
)
def test_forbidden_missing_and_redirected_listings_are_permanent(
    client: httpx.Client, status: int, explains: str
) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        headers = {"Location": "/subreddits/search?q=x"} if status == 302 else {}
        server.script(Reply(status=status, body={"reason": "private"}, headers=headers))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is False
    assert explains in str(caught.value)


def test_a_timeout_is_transient(client: httpx.Client) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(2)}) as server:
        source = source_for(server, client, timeout=timedelta(seconds=0.2))
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(delay=5))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True


def test_a_refused_connection_is_transient(client: httpx.Client) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth = RedditAuth(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_url=f"http://127.0.0.1:{port}/api/v1/access_token",
        user_agent="t",
    )
    source = RedditSource(
        "/r/a/new", key="reddit:r:a", auth=auth, client=client, api_url=f"http://127.0.0.1:{port}"
    )

    with pytest.raises(SourceError) as caught:
        source.fetch(None)

    assert caught.value.transient is True


@pytest.mark.parametrize(
    "body", [b"<html>Our CDN was unable to reach our servers</html>", b'{"kind": "t3"}', b"[]"]
)
def test_a_body_that_is_not_a_listing_is_a_transient_source_error(
    client: httpx.Client, body: bytes
) -> None:
    with RedditServer() as server:
        source = source_for(server, client)
        source.auth.token(client, timeout=5, key="test")
        server.script(Reply(body=body))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert "not JSON" in str(caught.value) or "not a listing" in str(caught.value)


# --- building -----------------------------------------------------------------------------------


def main_file(server: RedditServer, **settings: Any) -> MainFile:
    reddit_settings = {
        "api_url": server.url(),
        "token_url": server.token_url,
        "user_agent": "listener-test/2.0",
        **settings,
    }
    return MainFile.model_validate({"sources": {"reddit": reddit_settings}})


def test_build_makes_a_search_per_saved_search_and_a_listing_per_subreddit(
    client: httpx.Client, tmp_path: Path
) -> None:
    elsewhere = Search(id="bsky-only", org="eemland", kind="brand", sources=["bluesky"])
    hourly = Search(id="hourly", org="eemland", kind="brand", sources=["reddit"], interval="1h")
    listings = {"/search": listing(1), "/r/Amersfoort/new": listing(1)}
    with RedditServer(listings) as server:
        main = main_file(server, subreddits=["Amersfoort", "r/thenetherlands", "amersfoort"])
        sources = build_sources(main, [LOCAL, elsewhere, hourly], ORGS, tmp_path, client, ENV)
        sources[0].fetch(None)
        by_key = {source.key: source for source in sources}
        by_key["reddit:r:amersfoort"].fetch(None)

    assert list(by_key) == [
        "reddit:search:eemland-local",
        "reddit:search:hourly",
        "reddit:r:amersfoort",
        "reddit:r:thenetherlands",
    ]
    assert {source.name for source in sources} == {"reddit"}
    assert by_key["reddit:search:hourly"].interval == timedelta(hours=1)
    assert by_key["reddit:r:thenetherlands"].interval == timedelta(minutes=10)
    token, search, subreddit = server.requests
    assert token.headers["user-agent"] == "listener-test/2.0"
    assert search.path == "/search"
    assert search.params == {
        "q": '"de bieb" (Amersfoort OR Leusden)',
        "sort": "new",
        "limit": "100",
        "raw_json": "1",
    }
    assert subreddit.path == "/r/Amersfoort/new"
    assert subreddit.headers["authorization"] == search.headers["authorization"]


def test_every_reddit_source_in_the_process_shares_one_token(
    client: httpx.Client, tmp_path: Path
) -> None:
    with RedditServer({"/r/Amersfoort/new": listing(1), "/r/Leusden/new": listing(1)}) as server:
        first = reddit.build(
            RedditSettings(
                api_url=server.url(), token_url=server.token_url, subreddits=["Amersfoort"]
            ),
            searches=[],
            organisations=ORGS,
            base_dir=tmp_path,
            client=client,
            env=ENV,
        )
        second = reddit.build(
            RedditSettings(
                api_url=server.url(), token_url=server.token_url, subreddits=["Leusden"]
            ),
            searches=[],
            organisations=ORGS,
            base_dir=tmp_path,
            client=client,
            env=ENV,
        )
        first[0].fetch(None)
        second[0].fetch(None)

    assert first[0].auth is second[0].auth
    assert server.issued == ["token-1"]


def test_a_bad_subreddit_name_is_a_configuration_error(tmp_path: Path) -> None:
    settings = RedditSettings(subreddits=["Amersfoort centrum"])
    with pytest.raises(ValueError, match="not a subreddit name"):
        reddit.build(
            settings, searches=[], organisations=ORGS, base_dir=tmp_path, client=None, env=ENV
        )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            "environment variable REDDIT_CLIENT_ID is not set; "
            "environment variable REDDIT_CLIENT_SECRET is not set",
        ),
        ({"REDDIT_CLIENT_ID": CLIENT_ID}, "REDDIT_CLIENT_SECRET is not set"),
        (
            {"REDDIT_CLIENT_ID": "", "REDDIT_CLIENT_SECRET": CLIENT_SECRET},
            "REDDIT_CLIENT_ID is empty",
        ),
    ],
)
def test_missing_credentials_make_the_source_unavailable_naming_the_variable(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(SourceUnavailable) as caught:
        reddit.build(
            RedditSettings(),
            searches=[BRAND],
            organisations=ORGS,
            base_dir=tmp_path,
            client=None,
            env=env,
        )

    assert str(caught.value).startswith("reddit: environment variable")
    assert expected in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)


def test_build_sources_reports_reddit_as_unavailable_without_credentials(tmp_path: Path) -> None:
    main = MainFile.model_validate({"sources": {"reddit": {"subreddits": ["Amersfoort"]}}})
    unavailable: dict[str, str] = {}

    sources = build_sources(main, [BRAND], ORGS, tmp_path, None, {}, unavailable)

    assert sources == []
    assert "REDDIT_CLIENT_ID" in unavailable["reddit"]


# --- secrets ------------------------------------------------------------------------------------


def test_the_secret_and_the_tokens_stay_out_of_logs_reprs_and_errors(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with RedditServer({"/r/Amersfoort/new": listing(3)}) as server:
        source = source_for(server, client)
        source.fetch(None)
        server.revoke_tokens()
        source.fetch(None)  # a 401 and a new token
        for reply in (
            Reply(status=500, body=f"token-2 {CLIENT_SECRET}".encode()),
            Reply(status=403, body={"error": CLIENT_SECRET}),
            Reply(delay=5),
        ):
            server.script(reply)
            try:
                source_for(server, client, auth=source.auth, timeout=timedelta(seconds=0.2)).fetch(
                    None
                )
            except SourceError as exc:
                errors.append(f"{exc} {exc!r}")
        server.accept_tokens = False
        server.revoke_tokens()
        try:
            source.fetch(None)
        except SourceError as exc:
            errors.append(str(exc))
        server.client_secret = "something-else"  # the app's secret no longer works
        server.revoke_tokens()
        try:
            source.fetch(None)
        except SourceError as exc:
            errors.append(str(exc))

    assert len(errors) == 5
    shown = "\n".join([caplog.text, *errors, repr(source), repr(source.auth)])
    for secret in (CLIENT_SECRET, *server.issued):
        assert secret not in shown


def test_the_newest_seen_post_deleted_before_the_next_poll_leaves_no_gap(
    client: httpx.Client,
) -> None:
    posts = listing(50)
    with RedditServer({"/r/Amersfoort/new": posts}) as server:
        cursor = source_for(server, client).fetch(None).cursor
        del posts[0]  # the newest post the cursor names is removed by its author
        posts[:0] = listing(2, start=50)  # and two new ones arrive
        batch = source_for(server, client).fetch(cursor)

    assert [post.id for post in batch.posts] == ["reddit:t3_p0051", "reddit:t3_p0050"]
