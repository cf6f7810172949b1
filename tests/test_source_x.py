"""The X recent-search source, against a local X API (tests/support/x_server.py)."""

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
from listener.config.model import XSource as XSettings
from listener.post import Geo
from listener.sources import SourceError, SourceUnavailable, build_sources, x
from listener.sources.x import XSource, build_queries
from tests.support.jsonapi_server import Reply
from tests.support.x_server import BEARER, XServer, tweet, user

ROOT = Path(__file__).resolve().parents[1]
FIXED_NOW = datetime(2026, 9, 26, 8, 0, tzinfo=UTC)
ENV = {"X_BEARER_TOKEN": BEARER}

EEMLAND = Organisation.model_validate(
    {
        "id": "eemland",
        "name": "Bibliotheek Eemland",
        "aliases": ["de Bieb Eemland", "bibliotheek eemland"],
        "branches": [
            {
                "id": "centrum",
                "name": "Eemhuis",
                "town": "Amersfoort",
                "lat": 52.155,
                "lon": 5.3875,
                "radius_km": 5,
            },
            {"id": "leusden", "name": "Leusden", "town": "Leusden", "lat": 52.1325, "lon": 5.43194},
            {
                "id": "vathorst",
                "name": "Vathorst",
                "town": "Amersfoort",
                "lat": 52.19,
                "lon": 5.42,
                "radius_km": 60,
            },
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
BRAND = Search(id="eemland-brand", org="eemland", kind="brand", terms=["Eemhuis bieb"])
LOCAL = Search(id="eemland-local", org="eemland", kind="local", terms=["de bieb", "de bibliotheek"])


def shared_file(folder: str, name: str) -> Path:
    """A file from the shared folder next to the repository, or its copy in tests/data."""
    copy = Path(__file__).parent / "data" / name
    return copy if copy.is_file() else ROOT.parent / "shared" / folder / name


POST_SCHEMA = json.loads(shared_file("schemas", "post.schema.json").read_text("utf-8"))
# A real v2 payload with geo, from medialab/twitwi's tests; see SOURCES.md section 4 ("Sample").
SAMPLE = shared_file("samples", "x-recent-search.json").read_bytes()


def assert_schema_valid(posts: list[Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        POST_SCHEMA, format_checker=jsonschema.FormatChecker()
    )
    for post in posts:
        validator.validate(post.to_dict())


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def source_for(server: XServer, client: httpx.Client, **kwargs: Any) -> XSource:
    settings: dict[str, Any] = {
        "key": "x:search:eemland-local",
        "client": client,
        "bearer": BEARER,
        "api_url": server.url(),
        "now": lambda: FIXED_NOW,
        **kwargs,
    }
    return XSource(kwargs.pop("query", '"de bieb" lang:nl -is:retweet'), **settings)


def tweets(count: int, first: int = 1000) -> list[dict[str, Any]]:
    """`count` posts, newest (highest id) first."""
    return [tweet(str(n), f"Post {n} over de bieb") for n in reversed(range(first, first + count))]


AUTHORS = [user("100", "lezer", location="Amersfoort")]


# --- posts --------------------------------------------------------------------------------------


def test_the_real_sample_becomes_posts_that_follow_the_post_schema(client: httpx.Client) -> None:
    with XServer() as server:
        server.script(Reply(body=SAMPLE))
        batch = source_for(server, client).fetch(None)

    assert batch.skipped == 0
    assert batch.more is False
    retweet, original = batch.posts
    assert retweet.id == "x:1382860305341030411"
    assert retweet.source == "x"
    assert retweet.url == "https://x.com/christanley29/status/1382860305341030411"
    assert retweet.text.startswith("RT @joselcherrez: Repost from @joselcherrez\n•\n#tbt")
    assert retweet.created_at == datetime(2021, 4, 16, 0, 56, 3, tzinfo=UTC)
    assert retweet.lang == "en"
    assert retweet.author is not None
    assert retweet.author.handle == "christanley29"
    assert retweet.author.name == "*♛*\uf8ffChris\uf8ff*♛*"  # private-use characters, kept
    assert retweet.author.location is None
    assert retweet.author.followers == 104
    assert retweet.engagement is not None
    assert (retweet.engagement.likes, retweet.engagement.reposts) == (0, 1)
    assert retweet.reply_to is None  # a retweet answers nothing
    assert retweet.geo is None
    assert original.url == "https://x.com/joselcherrez/status/1382840699322732544"
    assert original.author is not None and original.author.location == "Miami, FL"
    assert original.author.followers == 1663
    assert original.geo == Geo(lat=25.7751, lon=-80.1936)  # the post's own point, not the place
    assert json.loads(batch.cursor or "") == {"since_id": "1382860305341030411"}
    assert_schema_valid(batch.posts)


def test_without_its_own_point_a_post_gets_the_centre_of_its_place(client: httpx.Client) -> None:
    place = {
        "id": "0e2242eb8691df96",
        "full_name": "Amersfoort, Nederland",
        "country_code": "NL",
        "geo": {"type": "Feature", "bbox": [5.3, 52.1, 5.5, 52.2], "properties": {}},
    }
    posted = tweet("77", "Bieb dicht?", geo={"place_id": "0e2242eb8691df96"})
    with XServer([posted], users=AUTHORS, places=[place]) as server:
        (post,) = source_for(server, client).fetch(None).posts

    assert post.geo is not None
    assert post.geo.lat == pytest.approx(52.15)
    assert post.geo.lon == pytest.approx(5.4)
    assert_schema_valid([post])


def test_a_reply_points_at_the_post_it_answers_and_newer_field_names_are_read(
    client: httpx.Client,
) -> None:
    reply = tweet(
        "78",
        "@bieb is het morgen open?",
        referenced_posts=[{"type": "quoted", "id": "5"}, {"type": "replied_to", "id": "70"}],
        public_metrics={"repost_count": 2, "reply_count": 1, "like_count": 4},
    )
    with XServer([reply], users=AUTHORS) as server:
        (post,) = source_for(server, client).fetch(None).posts

    assert post.reply_to == "x:70"
    assert post.engagement is not None
    assert (post.engagement.likes, post.engagement.reposts, post.engagement.replies) == (4, 2, 1)
    assert post.author is not None and post.author.location == "Amersfoort"


def test_a_post_whose_author_is_not_included_gets_the_generic_url(client: httpx.Client) -> None:
    with XServer([tweet("79", "Bieb", author_id="999")], users=AUTHORS) as server:
        (post,) = source_for(server, client).fetch(None).posts

    assert post.url == "https://x.com/i/web/status/79"
    assert post.author is None


def test_malformed_posts_are_logged_skipped_and_counted(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "data": [
            {"id": "81", "text": "no date"},
            {"id": "not-a-number", "text": "x", "created_at": "2026-09-25T12:00:00.000Z"},
            "not an object",
            tweet("80", "Goed"),
        ],
        "meta": {"newest_id": "81", "oldest_id": "80", "result_count": 4},
    }
    with XServer() as server:
        server.script(Reply(body=body))
        batch = source_for(server, client).fetch(None)

    assert [post.id for post in batch.posts] == ["x:80"]
    assert batch.skipped == 3
    assert caplog.text.count("skipping a malformed post") == 3


def test_an_empty_answer_gives_no_posts_and_keeps_the_cursor(client: httpx.Client) -> None:
    with XServer(tweets(3)) as server:
        first = source_for(server, client).fetch(None)
        empty = source_for(server, client).fetch(first.cursor)
        server.script(Reply(body={"meta": {"result_count": 0}}))
        nothing_yet = source_for(server, client).fetch(None)

    assert empty.posts == [] and empty.more is False
    assert empty.cursor == first.cursor
    assert nothing_yet.posts == [] and nothing_yet.cursor is None


# --- paging and resuming ------------------------------------------------------------------------


def test_pages_are_read_one_per_fetch_before_since_id_advances(client: httpx.Client) -> None:
    with XServer(tweets(250), users=AUTHORS) as server:
        source = source_for(server, client, max_results=100)
        one = source.fetch(None)
        two = source.fetch(one.cursor)
        three = source.fetch(two.cursor)

    assert [len(b.posts) for b in (one, two, three)] == [100, 100, 50]
    assert [b.more for b in (one, two, three)] == [True, True, False]
    assert json.loads(one.cursor or "") == {
        "since_id": None,
        "next_token": "p100",
        "newest_id": "1249",
    }
    assert json.loads(two.cursor or "")["next_token"] == "p200"
    assert json.loads(three.cursor or "") == {"since_id": "1249"}
    first, second, third = server.requests
    assert first.params == {
        "query": '"de bieb" lang:nl -is:retweet',
        "max_results": "100",
        "tweet.fields": "created_at,lang,public_metrics,geo,referenced_tweets,author_id",
        "expansions": "author_id,geo.place_id",
        "user.fields": "username,name,location,public_metrics",
        "place.fields": "full_name,geo,country_code",
    }
    assert first.headers["authorization"] == f"Bearer {BEARER}"
    assert second.params["next_token"] == "p100" and "since_id" not in second.params
    assert third.params["next_token"] == "p200"


def test_a_restart_resumes_from_since_id(client: httpx.Client) -> None:
    posts = tweets(5)
    with XServer(posts, users=AUTHORS) as server:
        cursor = source_for(server, client).fetch(None).cursor
        posts[:0] = tweets(2, first=2000)  # two new posts while listener was down
        batch = source_for(server, client).fetch(cursor)  # a new process, the stored cursor

    assert [post.id for post in batch.posts] == ["x:2001", "x:2000"]
    assert server.requests[-1].params["since_id"] == "1004"
    assert json.loads(batch.cursor or "") == {"since_id": "2001"}


def test_a_restart_in_the_middle_of_paging_continues_with_the_next_token_and_old_since_id(
    client: httpx.Client,
) -> None:
    cursor = json.dumps({"since_id": "900", "next_token": "p10", "newest_id": "1019"})
    with XServer(tweets(20), users=AUTHORS) as server:
        batch = source_for(server, client, max_results=10).fetch(cursor)

    (request,) = server.requests
    assert request.params["since_id"] == "900"
    assert request.params["next_token"] == "p10"
    assert batch.posts[0].id == "x:1009"
    assert batch.more is False
    assert json.loads(batch.cursor or "") == {"since_id": "1019"}


def test_a_since_id_older_than_seven_days_starts_again_from_the_newest(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    too_old = {
        "errors": [
            {
                "parameters": {"since_id": ["1"]},
                "message": "Invalid 'since_id':'1'. 'since_id' must be a tweet id created after "
                "2026-09-19T08:00Z.",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    with XServer(tweets(3), users=AUTHORS) as server:
        server.script(Reply(status=400, body=too_old))
        batch = source_for(server, client).fetch(json.dumps({"since_id": "1"}))

    assert len(batch.posts) == 3
    assert [r.params.get("since_id") for r in server.requests] == ["1", None]
    assert "X refuses since_id 1" in caplog.text


def test_no_requests_left_after_a_page_makes_the_next_page_wait_for_the_next_poll(
    client: httpx.Client,
) -> None:
    with XServer(tweets(20), users=AUTHORS) as server:
        server.ratelimit["x-rate-limit-remaining"] = "0"
        batch = source_for(server, client, max_results=10).fetch(None)

    assert batch.more is False
    assert json.loads(batch.cursor or "")["next_token"] == "p10"


# --- HTTP errors --------------------------------------------------------------------------------


def test_a_429_waits_until_x_rate_limit_reset(client: httpx.Client) -> None:
    reset = int(FIXED_NOW.timestamp()) + 420
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    with XServer(tweets(2)) as server:
        server.script(Reply(status=429, body={"title": "Too Many Requests"}, headers=headers))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 420
    assert "Too Many Requests" in str(caught.value)


def test_a_429_with_retry_after_uses_it(client: httpx.Client) -> None:
    with XServer(tweets(2)) as server:
        server.script(Reply(status=429, body=b"", headers={"Retry-After": "60"}))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 60


def test_a_429_without_headers_is_transient_without_a_wait(client: httpx.Client) -> None:
    with XServer(tweets(2)) as server:
        server.script(Reply(status=429, body=b""))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after is None


def test_a_wrong_bearer_token_is_permanent_and_names_the_variable(client: httpx.Client) -> None:
    with XServer(tweets(2)) as server, pytest.raises(SourceError) as caught:
        source_for(server, client, bearer="not-the-token-at-all").fetch(None)

    assert caught.value.transient is False
    assert "HTTP 401" in str(caught.value) and "X_BEARER_TOKEN" in str(caught.value)
    assert "not-the-token-at-all" not in str(caught.value)


def test_a_403_is_permanent_and_says_what_access_may_be_missing(client: httpx.Client) -> None:
    problem = {
        "title": "Client Forbidden",
        "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use "
        "keys and tokens from a Twitter developer App that is attached to a Project.",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
    with XServer() as server:
        server.script(Reply(status=403, body=problem))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is False
    assert "Client Forbidden" in str(caught.value)
    assert "X_BEARER_TOKEN" in str(caught.value)


def test_an_invalid_query_is_permanent_with_x_s_explanation(client: httpx.Client) -> None:
    problem = {
        "errors": [
            {
                "parameters": {"query": ["point_radius:[x"]},
                "message": "There were errors processing your request: no viable alternative",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
    }
    with XServer() as server:
        server.script(Reply(status=400, body=problem))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(json.dumps({"since_id": "5"}))

    assert caught.value.transient is False
    assert "no viable alternative" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_transient(client: httpx.Client, status: int) -> None:
    with XServer() as server:
        server.script(Reply(status=status, body=b"<html>over capacity</html>"))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert f"HTTP {status}" in str(caught.value)


def test_a_timeout_is_transient(client: httpx.Client) -> None:
    with XServer() as server:
        server.script(Reply(delay=5))
        with pytest.raises(SourceError) as caught:
            source_for(server, client, timeout=timedelta(seconds=0.2)).fetch(None)

    assert caught.value.transient is True


def test_a_refused_connection_is_transient(client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = XSource(
        "q", key="x:search:a", client=client, bearer=BEARER, api_url=f"http://127.0.0.1:{port}"
    )

    with pytest.raises(SourceError) as caught:
        source.fetch(None)

    assert caught.value.transient is True


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b"[1, 2]", b'{"data": {"id": "1"}}'])
def test_a_body_that_is_not_a_search_answer_is_a_transient_source_error(
    client: httpx.Client, body: bytes
) -> None:
    with XServer() as server:
        server.script(Reply(body=body))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True


# --- queries ------------------------------------------------------------------------------------


def test_a_brand_query_quotes_and_ors_the_names_in_dutch_without_retweets() -> None:
    assert build_queries(BRAND, ORGS) == [
        '("Bibliotheek Eemland" OR "de Bieb Eemland" OR "Eemhuis bieb") lang:nl -is:retweet'
    ]


def test_a_local_query_ands_its_terms_with_the_towns() -> None:
    assert build_queries(LOCAL, ORGS) == [
        '("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden) lang:nl -is:retweet'
    ]


def test_point_radius_adds_a_circle_per_branch_ored_with_the_towns_capped_at_40_km() -> None:
    (query,) = build_queries(LOCAL, ORGS, point_radius=True)

    assert query == (
        '("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden'
        " OR point_radius:[5.3875 52.155 5km]"
        " OR point_radius:[5.43194 52.1325 3km]"
        " OR point_radius:[5.42 52.19 40km]) lang:nl -is:retweet"
    )


def test_a_search_s_languages_replace_dutch() -> None:
    search = Search(id="b", org="eemland", kind="brand", languages=["nl", "en"])
    (query,) = build_queries(search, ORGS)
    assert query.endswith("(lang:nl OR lang:en) -is:retweet")


def test_a_query_over_512_characters_is_split_into_several() -> None:
    branches = [
        {
            "id": f"b{n}",
            "name": f"Filiaal {n}",
            "town": f"Dorp{n:02d}",
            "lat": 52.0 + n / 100,
            "lon": 5.0 + n / 100,
        }
        for n in range(30)
    ]
    big = Organisation.model_validate(
        {"id": "big", "name": "Bibliotheek Groot", "branches": branches}
    )
    search = Search(id="groot", org="big", kind="local", terms=["de bieb", "de bibliotheek"])

    queries = build_queries(search, {"big": big}, point_radius=True)

    assert len(queries) > 1
    assert all(len(query) <= 512 for query in queries)
    assert all(query.startswith('("de bieb" OR "de bibliotheek") (') for query in queries)
    together = " ".join(queries)
    assert all(f"Dorp{n:02d}" in together for n in range(30))
    assert together.count("point_radius:") == 30


def test_terms_that_do_not_fit_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    terms = [f"een heel lange zoekterm nummer {n} over de bibliotheek" for n in range(12)]
    search = Search(id="lang", org="eemland", kind="brand", terms=terms)

    (query,) = build_queries(search, ORGS)

    assert len(query) <= 512
    assert '"Bibliotheek Eemland"' in query
    assert "nummer 11" not in query
    assert "left out" in caplog.text and "nummer 11" in caplog.text


# --- building -----------------------------------------------------------------------------------


def test_build_makes_a_source_per_query_of_each_search_that_uses_x(
    client: httpx.Client, tmp_path: Path
) -> None:
    elsewhere = Search(id="bsky-only", org="eemland", kind="brand", sources=["bluesky"])
    hourly = Search(id="hourly", org="eemland", kind="brand", sources=["x"], interval="1h")
    with XServer(tweets(1), users=AUTHORS) as server:
        main = MainFile.model_validate(
            {"sources": {"x": {"api_url": server.url(), "max_results": 10}}}
        )
        sources = build_sources(main, [LOCAL, elsewhere, hourly], ORGS, tmp_path, client, ENV)
        sources[0].fetch(None)

    assert [source.key for source in sources] == ["x:search:eemland-local", "x:search:hourly"]
    assert {source.name for source in sources} == {"x"}
    assert sources[1].interval == timedelta(hours=1)
    assert sources[0].interval == timedelta(minutes=15)
    (request,) = server.requests
    assert request.params["query"] == (
        '("de bieb" OR "de bibliotheek") (Amersfoort OR Leusden) lang:nl -is:retweet'
    )
    assert request.params["max_results"] == "10"


def test_build_gives_the_parts_of_a_split_query_keys_of_their_own(tmp_path: Path) -> None:
    branches = [
        {"id": f"b{n}", "name": f"F{n}", "town": f"Plaatsnaam{n:02d}", "lat": 52.0, "lon": 5.0}
        for n in range(60)
    ]
    big = Organisation.model_validate({"id": "big", "name": "B", "branches": branches})
    search = Search(id="groot", org="big", kind="local", terms=["de bieb"])

    sources = x.build(
        XSettings(),
        searches=[search],
        organisations={"big": big},
        base_dir=tmp_path,
        client=None,
        env=ENV,
    )

    assert [source.key for source in sources] == ["x:search:groot", "x:search:groot:2"]
    assert all(len(source.query) <= 512 for source in sources)
    assert "Plaatsnaam00" in sources[0].query and "Plaatsnaam59" in sources[1].query


@pytest.mark.parametrize(
    ("env", "state"), [({}, "is not set"), ({"X_BEARER_TOKEN": " "}, "is empty")]
)
def test_a_missing_bearer_token_makes_the_source_unavailable_naming_the_variable(
    tmp_path: Path, env: dict[str, str], state: str
) -> None:
    with pytest.raises(SourceUnavailable) as caught:
        x.build(
            XSettings(),
            searches=[BRAND],
            organisations=ORGS,
            base_dir=tmp_path,
            client=None,
            env=env,
        )

    assert str(caught.value) == f"x: environment variable X_BEARER_TOKEN {state}"


def test_build_sources_reports_x_as_unavailable_without_a_token(tmp_path: Path) -> None:
    main = MainFile.model_validate({"sources": {"x": {"bearer_env": "MY_X_TOKEN"}}})
    unavailable: dict[str, str] = {}

    assert build_sources(main, [BRAND], ORGS, tmp_path, None, {}, unavailable) == []
    assert unavailable == {"x": "x: environment variable MY_X_TOKEN is not set"}


# --- secrets ------------------------------------------------------------------------------------


def test_the_bearer_token_stays_out_of_logs_reprs_and_errors(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with XServer(tweets(30), users=AUTHORS) as server:
        source = source_for(server, client, max_results=10, timeout=timedelta(seconds=0.2))
        cursor = source.fetch(None).cursor
        for reply in (
            Reply(status=500, body={"detail": f"echo {BEARER}"}),
            Reply(status=401, body={"title": "Unauthorized", "detail": f"bad token {BEARER}"}),
            Reply(status=400, body={"errors": [{"message": f"since_id {BEARER}"}]}),
            Reply(delay=5),
            Reply(body=f"not json {BEARER}".encode()),
        ):
            server.script(reply)
            try:
                source.fetch(cursor)
            except SourceError as exc:
                errors.append(f"{exc} {exc!r}")

    assert len(errors) == 5
    assert any("***" in error for error in errors)  # the server's echo, scrubbed
    shown = "\n".join([caplog.text, *errors, repr(source)])
    assert BEARER not in shown
