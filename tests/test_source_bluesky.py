"""The Bluesky search source, against a local PDS (tests/support/xrpc_server.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from listener.config.model import BlueskySource, MainFile, Organisation, Search
from listener.sources import SourceError, SourceUnavailable, build_sources
from listener.sources.bluesky import (
    BlueskySearch,
    BlueskySession,
    bluesky_queries,
    build,
    post_from_view,
    profile_location,
)
from tests.support.xrpc_server import (
    CREATE_SESSION,
    GET_PROFILES,
    REFRESH_SESSION,
    SEARCH_POSTS,
    Reply,
    XrpcServer,
    post_view,
    profile_view,
)

HANDLE = "bieb.bsky.social"
PASSWORD = "sekr-et12-pass-word"
ENV = {"BLUESKY_HANDLE": HANDLE, "BLUESKY_APP_PASSWORD": PASSWORD}

FIXED_NOW = datetime(2026, 9, 26, 8, 0, tzinfo=UTC)
PASS = Reply()  # a scripted reply that lets the normal answer through (e.g. for the login)

SHARED = Path("/work/shared")
DATA = Path(__file__).parent / "data"

# One real postView: shared/samples/bluesky-searchPosts-post.json (element [15] of
# medialab/twitwi@fcf9122 test/resources/bluesky-posts.json, see SOURCES.md 1a), copied here so
# that the test runs where the shared folder is not mounted.
SAMPLE: dict[str, Any] = {
    "uri": "at://did:plc:5klvtukw5fucxsrkjldhrjxs/app.bsky.feed.post/3kbg7jgtddn2w",
    "cid": "bafyreih35tm25o4r2w364gktbkavkowe2k5dvsnevfr2kjnkzx53s2uo4u",
    "author": {
        "did": "did:plc:5klvtukw5fucxsrkjldhrjxs",
        "handle": "yomguithereal.bsky.social",
        "displayName": "Guillaume Plique",
        "avatar": "https://cdn.bsky.app/img/avatar/plain/did:plc:5klvtukw5fucxsrkjldhrjxs/"
        "bafkreibqnfysz5boyav7syezndvt4ehihvp3w7uyrdjdbaktxynnk5gcea@jpeg",
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
        "createdAt": "2023-10-10T14:58:21.049Z",
    },
    "record": {
        "$type": "app.bsky.feed.post",
        "createdAt": "2023-10-10T19:04:03.648Z",
        "langs": ["fr"],
        "text": "This here is a test.",
    },
    "bookmarkCount": 0,
    "replyCount": 0,
    "repostCount": 0,
    "likeCount": 4,
    "quoteCount": 0,
    "indexedAt": "2023-10-10T19:04:03.648Z",
    "viewer": {"threadMuted": False, "embeddingDisabled": False},
    "labels": [],
}

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
HAAG = Search(id="haag-brand", org="haaglanden", kind="brand", interval="1h")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.moment = now

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def settings(server: XrpcServer, **fields: object) -> BlueskySource:
    return BlueskySource.model_validate({"service": server.url, **fields})


def sources_for(
    server: XrpcServer,
    client: httpx.Client,
    searches: list[Search] | None = None,
    *,
    env: dict[str, str] | None = None,
    now: Clock | None = None,
    **fields: object,
) -> list[BlueskySearch]:
    return build(
        settings(server, **fields),
        searches=[BRAND] if searches is None else searches,
        organisations=ORGS,
        base_dir=Path("."),
        client=client,
        env=ENV if env is None else env,
        now=now or Clock(),
    )


def one_source(server: XrpcServer, client: httpx.Client, **fields: Any) -> BlueskySearch:
    """The source of HAAG, a search that is one query."""
    (source,) = sources_for(server, client, [HAAG], **fields)
    return source


def minutes_ago(minutes: float) -> str:
    moment = FIXED_NOW - timedelta(minutes=minutes)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def views(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """`count` posts, one a minute, the newest (p0) a minute before FIXED_NOW."""
    return [post_view(f"p{n}", minutes_ago(n + 1), **kwargs) for n in range(count)]


def ids(posts: list[Any]) -> list[str]:
    return [post.id.rsplit("/", 1)[-1] for post in posts]


# --- queries ------------------------------------------------------------------------------------


def test_a_brand_search_is_one_quoted_query_per_name_because_bluesky_has_no_or() -> None:
    search = Search(id="b", org="eemland", kind="brand", terms=["Eemhuis bieb"])
    assert bluesky_queries(search, ORGS) == [
        '"Bibliotheek Eemland"',
        '"de Bieb Eemland"',
        '"Eemhuis bieb"',
    ]


def test_a_local_search_is_one_query_per_term_and_town() -> None:
    assert bluesky_queries(LOCAL, ORGS) == [
        '"de bieb" Amersfoort',
        '"de bieb" Leusden',
        '"de bibliotheek" Amersfoort',
        '"de bibliotheek" Leusden',
    ]
    without_org = Search(id="l", kind="local", terms=["de bieb"])
    assert bluesky_queries(without_org, ORGS) == [
        '"de bieb" Amersfoort',
        '"de bieb" Leusden',
        '"de bieb" "Den Haag"',
    ]


def test_a_local_search_with_too_many_towns_searches_its_terms_alone() -> None:
    towns = {
        "id": "many",
        "name": "Bibliotheek Veel",
        "branches": [
            {"id": f"b{n}", "name": f"B{n}", "town": f"Dorp{n}", "lat": 52.0, "lon": 5.0}
            for n in range(13)
        ],
    }
    orgs = {"many": Organisation.model_validate(towns)}
    search = Search(id="l", org="many", kind="local", terms=["de bieb"])
    assert bluesky_queries(search, orgs) == ['"de bieb"']


def test_the_queries_are_sent_as_q_with_latest_first_the_limit_and_the_language(
    client: httpx.Client,
) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        (source,) = sources_for(server, client, [LOCAL], lang="nl", limit=50)
        source.fetch(None)

    searches = server.calls(SEARCH_POSTS)
    assert [call.params["q"] for call in searches] == [
        ['"de bieb" Amersfoort'],
        ['"de bieb" Leusden'],
        ['"de bibliotheek" Amersfoort'],
        ['"de bibliotheek" Leusden'],
    ]
    assert all(call.params["sort"] == ["latest"] for call in searches)
    assert all(call.params["limit"] == ["50"] for call in searches)
    assert all(call.params["lang"] == ["nl"] for call in searches)


# --- the session --------------------------------------------------------------------------------


def test_one_login_serves_many_polls_and_many_searches(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(3)) as server:
        sources = sources_for(server, client, [BRAND, LOCAL, HAAG])
        with ThreadPoolExecutor(4) as pool:  # the daemon polls sources from a pool like this
            for _ in range(3):
                batches = list(pool.map(lambda source: source.fetch(None), sources))
                assert all(len(batch.posts) == 3 for batch in batches)

    (login,) = server.calls(CREATE_SESSION)
    assert login.body == {"identifier": HANDLE, "password": PASSWORD}
    searches = server.calls(SEARCH_POSTS)
    assert len(searches) == 3 * (2 + 4 + 1)  # BRAND is two queries, LOCAL four
    assert {call.authorization for call in searches} == {"Bearer access-1"}
    assert server.calls(REFRESH_SESSION) == []


def test_building_the_sources_does_not_log_in(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        sources_for(server, client, [BRAND, LOCAL])

    assert server.requests == []


def test_an_expired_token_is_refreshed_and_the_call_then_succeeds(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(2)) as server:
        source = one_source(server, client)
        source.fetch(None)
        server.expire_tokens()
        batch = source.fetch(None)

    assert ids(batch.posts) == ["p0", "p1"]
    (refresh,) = server.calls(REFRESH_SESSION)
    assert refresh.authorization == "Bearer refresh-1"
    assert [call.authorization for call in server.calls(SEARCH_POSTS)] == [
        "Bearer access-1",
        "Bearer access-1",  # answered 400 ExpiredToken
        "Bearer access-2",
    ]
    assert len(server.calls(CREATE_SESSION)) == 1


def test_a_refused_refresh_logs_in_again(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(1)) as server:
        source = one_source(server, client)
        source.fetch(None)
        server.expire_tokens()
        server.revoke_refresh_tokens()
        batch = source.fetch(None)

    assert ids(batch.posts) == ["p0"]
    assert len(server.calls(REFRESH_SESSION)) == 1
    assert len(server.calls(CREATE_SESSION)) == 2


def test_a_refused_login_after_a_failed_refresh_is_permanent_and_names_handle_and_variable(
    client: httpx.Client,
) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(1)) as server:
        first, second = sources_for(server, client, [BRAND, HAAG])
        first.fetch(None)
        server.expire_tokens()
        server.revoke_refresh_tokens()
        server.password = "the app password was revoked"
        with pytest.raises(SourceError) as caught:
            first.fetch(None)
        with pytest.raises(SourceError) as again:
            second.fetch(None)

    assert caught.value.transient is False
    assert str(caught.value).startswith(
        "bluesky: login refused for handle bieb.bsky.social: check BLUESKY_APP_PASSWORD"
    )
    assert "Invalid identifier or password" in str(caught.value)
    # the second search gets the same answer without spending another of the 30 logins a 5 min
    assert again.value.transient is False
    assert str(again.value) == str(caught.value)
    assert len(server.calls(CREATE_SESSION)) == 2


def test_a_wrong_password_on_the_first_login_is_permanent(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password="another one") as server:
        source = one_source(server, client)
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is False
    assert "login refused for handle bieb.bsky.social" in str(caught.value)


def test_a_rate_limited_login_is_transient_and_not_retried_before_its_time(
    client: httpx.Client,
) -> None:
    clock = Clock()
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(1)) as server:
        source = one_source(server, client, now=clock)
        server.script(Reply(status=429, error="RateLimitExceeded", headers={"Retry-After": "60"}))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)
        clock.moment += timedelta(seconds=20)
        with pytest.raises(SourceError) as early:
            source.fetch(None)
        clock.moment += timedelta(seconds=41)
        batch = source.fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 60
    assert early.value.transient is True
    assert early.value.retry_after == 40
    assert ids(batch.posts) == ["p0"]
    assert len(server.calls(CREATE_SESSION)) == 2


# --- paging and cursors -------------------------------------------------------------------------


def test_pages_are_followed_with_the_cursor_across_three_pages(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(5)) as server:
        batch = one_source(server, client, limit=2).fetch(None)

    assert ids(batch.posts) == ["p0", "p1", "p2", "p3", "p4"]
    searches = server.calls(SEARCH_POSTS)
    assert [call.params.get("cursor") for call in searches] == [None, ["2"], ["4"]]
    assert {call.params["since"][0] for call in searches} == {"2026-09-25T08:00:00.000Z"}
    assert batch.more is False


def test_paging_stops_at_a_page_older_than_since(client: httpx.Client) -> None:
    old = post_view("old", "2026-09-20T10:00:00.000Z")
    page = {"posts": [post_view("new", minutes_ago(5)), old], "cursor": "more"}
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        server.script(PASS, Reply(body=json.dumps(page).encode()))
        batch = one_source(server, client).fetch(None)

    assert ids(batch.posts) == ["new", "old"]  # the store drops what it already has
    assert len(server.calls(SEARCH_POSTS)) == 1


def test_the_new_cursor_is_the_newest_indexed_at_and_stays_when_nothing_is_new(
    client: httpx.Client,
) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(3)) as server:
        source = one_source(server, client)
        first = source.fetch(None)
        second = source.fetch(first.cursor)
        server.posts = []
        third = source.fetch(second.cursor)

    assert first.cursor is not None
    assert json.loads(first.cursor) == {"since": minutes_ago(1)}
    assert second.cursor == first.cursor  # the same posts again: nothing newer
    assert third.posts == [] and third.cursor == first.cursor


def test_a_restart_resumes_from_the_stored_cursor_minus_the_overlap(client: httpx.Client) -> None:
    stored = json.dumps({"since": "2026-09-26T07:00:00.000Z"})
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(90)) as server:
        restarted = one_source(server, client, overlap="15m")  # a new process: new session
        batch = restarted.fetch(stored)

    (search,) = server.calls(SEARCH_POSTS)
    assert search.params["since"] == ["2026-09-26T06:45:00.000Z"]
    assert len(batch.posts) == 75  # indexed 06:45 up to 07:59
    assert json.loads(batch.cursor or "") == {"since": minutes_ago(1)}


def test_the_first_fetch_looks_back_one_day(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        one_source(server, client).fetch(None)

    (search,) = server.calls(SEARCH_POSTS)
    assert search.params["since"] == ["2026-09-25T08:00:00.000Z"]


def test_an_unreadable_cursor_is_ignored_with_a_warning(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server, caplog.at_level(logging.WARNING):
        one_source(server, client).fetch("{not json")

    assert "ignoring unreadable cursor" in caplog.text
    assert server.calls(SEARCH_POSTS)[0].params["since"] == ["2026-09-25T08:00:00.000Z"]


def test_duplicates_across_pages_and_queries_yield_one_post(client: httpx.Client) -> None:
    a, b, c = views(3)
    posts = [a, b, dict(b), c]  # the index shifted between two pages: b comes back
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=posts) as server:
        (source,) = sources_for(server, client, [LOCAL], limit=2)
        batch = source.fetch(None)

    assert len(server.calls(SEARCH_POSTS)) == 4 * 2  # four queries, two pages each
    assert ids(batch.posts) == ["p0", "p1", "p2"]
    assert len({post.id for post in batch.posts}) == 3


# --- posts and profiles -------------------------------------------------------------------------


def post_schema() -> dict[str, Any]:
    shared = SHARED / "schemas" / "post.schema.json"
    path = shared if shared.exists() else DATA / "post.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_the_real_sample_payload_becomes_a_post_that_follows_the_schema(
    client: httpx.Client,
) -> None:
    profile = profile_view(
        "did:plc:5klvtukw5fucxsrkjldhrjxs",
        "yomguithereal.bsky.social",
        followers=321,
        description="Dev at médialab.\n📍 Paris | he/him",
    )
    with XrpcServer(
        handle=HANDLE,
        password=PASSWORD,
        posts=[SAMPLE],
        profiles={"did:plc:5klvtukw5fucxsrkjldhrjxs": profile},
    ) as server:
        source = one_source(server, client)
        (post,) = source.fetch(json.dumps({"since": "2023-10-10T19:00:00Z"})).posts

    assert post.id == f"bluesky:{SAMPLE['uri']}"
    assert post.source == "bluesky"
    assert post.text == "This here is a test."
    assert post.created_at == datetime(2023, 10, 10, 19, 4, 3, 648000, tzinfo=UTC)
    assert post.lang == "fr"
    assert post.url == "https://bsky.app/profile/yomguithereal.bsky.social/post/3kbg7jgtddn2w"
    assert post.author is not None
    assert post.author.handle == "yomguithereal.bsky.social"
    assert post.author.name == "Guillaume Plique"
    assert post.author.followers == 321
    assert post.author.location == "Paris"
    assert post.engagement is not None
    assert (post.engagement.likes, post.engagement.reposts, post.engagement.replies) == (4, 0, 0)
    assert post.reply_to is None
    validator = jsonschema.Draft202012Validator(
        post_schema(), format_checker=jsonschema.FormatChecker()
    )
    validator.validate(post.to_dict())


def test_the_embedded_sample_is_the_shared_one() -> None:
    shared = SHARED / "samples" / "bluesky-searchPosts-post.json"
    if not shared.exists():
        pytest.skip("the shared folder is not mounted")
    assert json.loads(shared.read_text(encoding="utf-8")) == SAMPLE


def test_the_schema_copy_in_tests_data_is_the_shared_one() -> None:
    shared = SHARED / "schemas" / "post.schema.json"
    if not shared.exists():
        pytest.skip("the shared folder is not mounted")
    assert json.loads((DATA / "post.schema.json").read_text(encoding="utf-8")) == json.loads(
        shared.read_text(encoding="utf-8")
    )


def test_a_reply_points_at_its_parent_and_an_invalid_handle_links_by_did() -> None:
    parent = "at://did:plc:other/app.bsky.feed.post/3parent"
    view = post_view("3kid", minutes_ago(1), handle="handle.invalid", reply_to=parent)
    post = post_from_view(view)

    assert post.reply_to == f"bluesky:{parent}"
    assert post.url == "https://bsky.app/profile/did:plc:author1/post/3kid"


def test_a_malformed_post_view_is_logged_skipped_and_counted(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    no_text = post_view("notext", minutes_ago(2))
    del no_text["record"]["text"]
    no_uri = post_view("nouri", minutes_ago(3))
    del no_uri["uri"]
    posts = [*views(1), no_text, no_uri, "not an object"]
    page = json.dumps({"posts": posts}).encode()
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server, caplog.at_level(logging.WARNING):
        server.script(PASS, Reply(body=page))
        batch = one_source(server, client).fetch(None)

    assert ids(batch.posts) == ["p0"]
    assert batch.skipped == 3
    assert "record.text: missing or not a string" in caplog.text
    assert "uri: not an app.bsky.feed.post AT URI" in caplog.text


def test_profiles_are_fetched_25_at_a_time_and_cached_across_polls(client: httpx.Client) -> None:
    authors = [(f"did:plc:a{n:02}", f"a{n:02}.bsky.social") for n in range(60)]
    posts = [
        post_view(f"p{n}", minutes_ago(n + 1), did=did, handle=handle)
        for n, (did, handle) in enumerate(authors)
    ]
    profiles = {
        did: profile_view(did, handle, followers=n) for n, (did, handle) in enumerate(authors)
    }
    del profiles["did:plc:a59"]  # a deleted account: getProfiles leaves it out
    clock = Clock()
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=posts, profiles=profiles) as server:
        brand, haag = sources_for(server, client, [BRAND, HAAG], now=clock)
        first = brand.fetch(None)
        brand.fetch(None)
        haag.fetch(None)  # another search shares the cache
        calls_within_a_day = len(server.calls(GET_PROFILES))
        clock.moment += timedelta(days=1, seconds=1)
        brand.fetch(json.dumps({"since": "2026-09-26T06:00:00Z"}))

    batches = [call.params["actors"] for call in server.calls(GET_PROFILES)]
    assert calls_within_a_day == 3
    assert [len(actors) for actors in batches] == [25, 25, 10, 25, 25, 10]
    assert sorted(batches[0] + batches[1] + batches[2]) == sorted(did for did, _ in authors)
    followers = {post.author.handle: post.author.followers for post in first.posts if post.author}
    assert followers["a07.bsky.social"] == 7
    assert followers["a59.bsky.social"] is None


def test_a_failed_profile_lookup_leaves_the_followers_out_but_keeps_the_posts(
    client: httpx.Client,
) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(2)) as server:
        server.script(PASS, PASS, Reply(status=502))
        batch = one_source(server, client).fetch(None)

    assert ids(batch.posts) == ["p0", "p1"]
    assert all(post.author and post.author.followers is None for post in batch.posts)


@pytest.mark.parametrize(
    ("description", "location"),
    [
        ("📍 Amersfoort | boeken en koffie", "Amersfoort"),
        ("Lezer.\n📍Leusden\nmeer niet", "Leusden"),
        ("📍\ufe0f Den Haag · NL", "Den Haag"),
        ("Woont in Amersfoort, leest veel", None),
        ("📍", None),
    ],
)
def test_only_an_explicit_pin_in_the_profile_is_a_location(
    description: str, location: str | None
) -> None:
    assert profile_location(description) == location


# --- errors -------------------------------------------------------------------------------------


def fetch_error(server: XrpcServer, client: httpx.Client, *replies: Reply) -> SourceError:
    source = one_source(server, client)
    server.script(PASS, *replies)  # PASS: the login
    with pytest.raises(SourceError) as caught:
        source.fetch(None)
    return caught.value


def test_a_429_with_retry_after_is_transient_and_carries_it(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(
            server,
            client,
            Reply(status=429, error="RateLimitExceeded", headers={"Retry-After": "120"}),
        )

    assert error.transient is True
    assert error.retry_after == 120
    assert "rate-limited" in str(error) and "HTTP 429 RateLimitExceeded" in str(error)


def test_a_429_with_only_ratelimit_reset_waits_until_the_reset(client: httpx.Client) -> None:
    reset = str(int(FIXED_NOW.timestamp()) + 300)  # Bluesky sends epoch seconds
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(
            server,
            client,
            Reply(status=429, headers={"RateLimit-Reset": reset, "RateLimit-Remaining": "0"}),
        )

    assert error.transient is True
    assert error.retry_after == 300


def test_a_429_without_any_hint_is_transient_without_retry_after(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(server, client, Reply(status=429))

    assert error.transient is True
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(client: httpx.Client, status: int) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(server, client, Reply(status=status))

    assert error.transient is True
    assert f"HTTP {status}" in str(error)


def test_a_malformed_json_page_is_transient(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(5)) as server:
        source = one_source(server, client, limit=2)
        server.script(PASS, PASS, Reply(body=b'{"posts": [{"uri": '))  # login, page 1, page 2
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert "malformed JSON" in str(caught.value)
    assert len(server.calls(SEARCH_POSTS)) == 2


def test_a_timeout_is_transient(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        session = BlueskySession(
            server.url, HANDLE, PASSWORD, client=client, timeout=timedelta(seconds=0.2)
        )
        source = BlueskySearch(['"de bieb"'], session=session, key="bluesky:search:t")
        server.script(PASS, Reply(delay=5))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is True
    assert "searchPosts" in str(caught.value)


def test_a_bad_request_is_permanent_with_the_servers_message(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(
            server, client, Reply(status=400, error="InvalidRequest", message="Invalid since value")
        )

    assert error.transient is False
    assert "HTTP 400 InvalidRequest: Invalid since value" in str(error)


def test_a_403_is_permanent(client: httpx.Client) -> None:
    with XrpcServer(handle=HANDLE, password=PASSWORD) as server:
        error = fetch_error(server, client, Reply(status=403, error="Forbidden"))

    assert error.transient is False
    assert "forbidden for handle bieb.bsky.social" in str(error)


# --- building and secrets -----------------------------------------------------------------------


def test_build_sources_makes_one_bluesky_source_per_search_that_uses_it(
    client: httpx.Client, tmp_path: Path
) -> None:
    rss_only = Search(id="rss-only", org="eemland", kind="brand", sources=["rss"])
    both = Search(id="both", org="eemland", kind="brand", sources=["rss", "bluesky"])
    main = MainFile.model_validate({"sources": {"bluesky": {"interval": "2m"}}})

    sources = build_sources(main, [BRAND, rss_only, both, HAAG], ORGS, tmp_path, client, ENV)

    assert [source.key for source in sources] == [
        "bluesky:search:eemland-brand",
        "bluesky:search:both",
        "bluesky:search:haag-brand",
    ]
    assert {source.name for source in sources} == {"bluesky"}
    assert [source.interval for source in sources] == [
        timedelta(minutes=2),
        timedelta(minutes=2),
        timedelta(hours=1),
    ]
    sessions = {id(source.session) for source in sources if isinstance(source, BlueskySearch)}
    assert len(sessions) == 1


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"BLUESKY_APP_PASSWORD": PASSWORD}, "BLUESKY_HANDLE is not set"),
        ({"BLUESKY_HANDLE": HANDLE}, "BLUESKY_APP_PASSWORD is not set"),
        ({"BLUESKY_HANDLE": HANDLE, "BLUESKY_APP_PASSWORD": " "}, "BLUESKY_APP_PASSWORD is empty"),
    ],
)
def test_a_missing_credential_makes_the_source_unavailable_naming_the_variable(
    client: httpx.Client, env: dict[str, str], missing: str
) -> None:
    with XrpcServer() as server, pytest.raises(SourceUnavailable) as caught:
        sources_for(server, client, env=env)

    assert str(caught.value) == f"bluesky: environment variable {missing}"


def test_build_sources_reports_the_missing_variable_and_goes_on(
    client: httpx.Client, tmp_path: Path
) -> None:
    main = MainFile.model_validate(
        {"sources": {"bluesky": {"app_password_env": "LIBRARY_BSKY_PASSWORD"}}}
    )
    unavailable: dict[str, str] = {}

    sources = build_sources(main, [BRAND], ORGS, tmp_path, client, ENV, unavailable)

    assert sources == []
    assert unavailable == {
        "bluesky": "bluesky: environment variable LIBRARY_BSKY_PASSWORD is not set"
    }


def test_the_password_and_tokens_never_appear_in_logs_messages_or_reprs(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[SourceError] = []
    with (
        XrpcServer(handle=HANDLE, password=PASSWORD, posts=views(2)) as server,
        caplog.at_level(logging.DEBUG),
    ):
        source = one_source(server, client)
        source.fetch(None)
        server.expire_tokens()
        source.fetch(None)  # refreshes
        # a server that echoes what it got, secrets included
        echo = f"bad token access-2 for {HANDLE} with password {PASSWORD}"
        server.script(Reply(status=400, error="InvalidRequest", message=echo))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)
        errors.append(caught.value)
        server.expire_tokens()
        server.revoke_refresh_tokens()
        server.password = "changed"
        server.script(
            PASS, PASS, Reply(status=401, message=f"wrong password {PASSWORD}, old token access-2")
        )
        with pytest.raises(SourceError) as caught:
            source.fetch(None)
        errors.append(caught.value)
        texts = [caplog.text, repr(source), repr(source.session), str(source.session)]
        texts += [str(error) for error in errors] + [repr(error) for error in errors]

    assert "login refused" in str(errors[1])
    for text in texts:
        assert PASSWORD not in text
        for n in range(1, 4):
            assert f"access-{n}" not in text and f"refresh-{n}" not in text
