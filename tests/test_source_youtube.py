"""The YouTube search source, against a local search.list (tests/support/youtube_server.py)."""

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
from listener.config.model import YouTubeSource as YouTubeSettings
from listener.sources import SourceError, SourceUnavailable, build_sources, youtube
from listener.sources.youtube import YouTubeSource, build_query, circles_for, until_quota_reset
from tests.support.jsonapi_server import Reply
from tests.support.youtube_server import API_KEY, YouTubeServer, google_error, video

ROOT = Path(__file__).resolve().parents[1]
FIXED_NOW = datetime(2026, 9, 26, 8, 0, tzinfo=UTC)  # 01:00 in California (PDT)
ENV = {"YOUTUBE_API_KEY": API_KEY}

EEMLAND = Organisation.model_validate(
    {
        "id": "eemland",
        "name": "Bibliotheek Eemland",
        "aliases": ["de Bieb Eemland"],
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
        ],
    }
)
ORGS = {"eemland": EEMLAND}
BRAND = Search(id="eemland-brand", org="eemland", kind="brand")
LOCAL = Search(id="eemland-local", org="eemland", kind="local", terms=["de bieb", "bibliotheek"])
CENTRUM = (52.155, 5.3875, 5.0)
LEUSDEN = (52.1325, 5.43194, 3.0)

# There is no recorded YouTube response in shared/samples. This one is written from the shape the
# API reference documents for search.list (developers.google.com/youtube/v3/docs/search/list,
# "Response" and the search resource, .../docs/search#resource): a youtube#searchListResponse
# with youtube#searchResult items whose snippet titles come HTML-escaped, as YouTube sends them.
SEARCH_LIST_SAMPLE: dict[str, Any] = {
    "kind": "youtube#searchListResponse",
    "etag": "q6EhJnT0cB3ZaAT3nX3P5d0tSQc",
    "nextPageToken": None,
    "regionCode": "NL",
    "pageInfo": {"totalResults": 2, "resultsPerPage": 50},
    "items": [
        {
            "kind": "youtube#searchResult",
            "etag": "Tg1n1E2nN1yZz1R8m6fPp0kq7hI",
            "id": {"kind": "youtube#video", "videoId": "dQw4w9WgXcQ"},
            "snippet": {
                "publishedAt": "2026-09-25T14:03:11Z",
                "channelId": "UC4Zy7kJ8fQ2d3ZyTnHcQe1A",
                "title": "Voorlezen in de bieb: &quot;De Gruffalo&quot; &amp; meer",
                "description": "Elke woensdag lezen we voor in het Eemhuis. Kom je ook? "
                "Ouders &#39;welkom&#39;...",
                "thumbnails": {
                    "default": {
                        "url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/default.jpg",
                        "width": 120,
                        "height": 90,
                    },
                    "medium": {
                        "url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/mqdefault.jpg",
                        "width": 320,
                        "height": 180,
                    },
                    "high": {
                        "url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg",
                        "width": 480,
                        "height": 360,
                    },
                },
                "channelTitle": "Amersfoort &amp; Omstreken",
                "liveBroadcastContent": "none",
                "publishTime": "2026-09-25T14:03:11Z",
            },
        },
        {
            "kind": "youtube#searchResult",
            "etag": "b9dV0x1Qp2yN3mZ4aL5kJ6hG7fE",
            "id": {"kind": "youtube#video", "videoId": "9bZkp7q19f0"},
            "snippet": {
                "publishedAt": "2026-09-24T09:30:00Z",
                "channelId": "UCbiebeemland0000000000",
                "title": "Rondleiding bibliotheek Leusden",
                "description": "",
                "thumbnails": {},
                "channelTitle": "Bibliotheek Eemland",
                "liveBroadcastContent": "none",
                "publishTime": "2026-09-24T09:30:00Z",
            },
        },
    ],
}


def shared_file(folder: str, name: str) -> Path:
    """A file from the shared folder next to the repository, or its copy in tests/data."""
    copy = Path(__file__).parent / "data" / name
    return copy if copy.is_file() else ROOT.parent / "shared" / folder / name


POST_SCHEMA = json.loads(shared_file("schemas", "post.schema.json").read_text("utf-8"))


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


def source_for(server: YouTubeServer, client: httpx.Client, **kwargs: Any) -> YouTubeSource:
    settings: dict[str, Any] = {
        "key": "youtube:search:eemland-local",
        "client": client,
        "api_key": API_KEY,
        "api_url": server.url(),
        "now": lambda: FIXED_NOW,
        **kwargs,
    }
    return YouTubeSource(settings.pop("query", '"de bieb"|"bibliotheek"'), **settings)


def videos(count: int, *, near: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """`count` videos, newest first, one a minute up to FIXED_NOW - 1 hour."""
    newest = FIXED_NOW - timedelta(hours=1)
    return [
        video(
            f"vid{n:03d}",
            f"Video {n} in de bieb",
            (newest - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            near=near,
        )
        for n in range(count)
    ]


# --- posts --------------------------------------------------------------------------------------


def test_the_documented_search_list_shape_becomes_posts_that_follow_the_post_schema(
    client: httpx.Client,
) -> None:
    with YouTubeServer() as server:
        server.script(Reply(body=SEARCH_LIST_SAMPLE))
        batch = source_for(server, client).fetch(None)

    assert batch.skipped == 0
    first, second = batch.posts
    assert first.id == "youtube:dQw4w9WgXcQ"
    assert first.source == "youtube"
    assert first.url == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert first.text == (
        'Voorlezen in de bieb: "De Gruffalo" & meer\n'
        "Elke woensdag lezen we voor in het Eemhuis. Kom je ook? Ouders 'welkom'..."
    )
    assert first.created_at == datetime(2026, 9, 25, 14, 3, 11, tzinfo=UTC)
    assert first.lang is None
    assert first.geo is None  # the search result does not say where the video was recorded
    assert first.author is not None
    assert first.author.handle == "UC4Zy7kJ8fQ2d3ZyTnHcQe1A"
    assert first.author.name == "Amersfoort & Omstreken"
    assert second.text == "Rondleiding bibliotheek Leusden"
    assert json.loads(batch.cursor or "") == {"newest": "2026-09-25T14:03:11Z"}
    assert_schema_valid(batch.posts)


def test_malformed_results_are_logged_skipped_and_counted(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    good = video("ok1", "De bieb", "2026-09-25T10:00:00Z")["result"]
    no_date = video("bad1", "x", "2026-09-25T10:00:00Z")["result"]
    del no_date["snippet"]["publishedAt"]
    no_id = {"kind": "youtube#searchResult", "id": {"kind": "youtube#video"}, "snippet": {}}
    channel = {"kind": "youtube#searchResult", "id": {"kind": "youtube#channel", "channelId": "U"}}
    odd_id = {"kind": "youtube#searchResult", "id": "vid", "snippet": {}}
    items = [no_date, no_id, 7, odd_id, channel, good]
    body = {"kind": "youtube#searchListResponse", "items": items}
    with YouTubeServer() as server:
        server.script(Reply(body=body))
        batch = source_for(server, client).fetch(None)

    assert [post.id for post in batch.posts] == ["youtube:ok1"]
    assert batch.skipped == 4  # a channel result is not a video, not a malformed one
    assert caplog.text.count("skipping a malformed search result") == 4


def test_an_empty_page_gives_no_posts_and_keeps_the_cursor(client: httpx.Client) -> None:
    cursor = json.dumps({"newest": "2026-09-20T10:00:00Z"})
    with YouTubeServer([]) as server:
        batch = source_for(server, client).fetch(cursor)
        first = source_for(server, client).fetch(None)

    assert batch.posts == [] and batch.cursor == cursor
    assert first.posts == [] and first.cursor is None


# --- requests, paging and resuming --------------------------------------------------------------


def test_a_brand_search_is_one_request_with_the_documented_parameters_and_the_key_in_a_header(
    client: httpx.Client,
) -> None:
    with YouTubeServer(videos(2)) as server:
        source_for(server, client, query=build_query(BRAND, ORGS)).fetch(None)

    (request,) = server.requests
    assert request.path == "/search"
    assert request.params == {
        "part": "snippet",
        "type": "video",
        "order": "date",
        "q": '"Bibliotheek Eemland"|"de Bieb Eemland"',
        "relevanceLanguage": "nl",
        "regionCode": "NL",
        "maxResults": "50",
        "publishedAfter": "2026-09-19T08:00:00Z",  # the first fetch looks back a week
    }
    assert request.headers["x-goog-api-key"] == API_KEY


def test_a_local_search_asks_once_per_branch_with_its_location_and_radius(
    client: httpx.Client,
) -> None:
    in_centre = videos(2, near=(52.156, 5.389))
    in_leusden = [video("leu1", "Bieb Leusden", "2026-09-25T20:00:00Z", near=(52.11, 5.44))]
    both = [video("both", "Tussen de twee", "2026-09-25T21:00:00Z", near=(52.14, 5.41))]
    elsewhere = [video("ams", "Bieb Amsterdam", "2026-09-25T21:30:00Z", near=(52.37, 4.9))]
    with YouTubeServer(elsewhere + both + in_leusden + in_centre) as server:
        source = source_for(server, client, circles=circles_for(LOCAL, ORGS))
        batch = source.fetch(None)

    first, second = server.requests
    assert (first.params["location"], first.params["locationRadius"]) == ("52.155,5.3875", "5km")
    assert (second.params["location"], second.params["locationRadius"]) == (
        "52.1325,5.43194",
        "3km",
    )
    assert first.params["q"] == '"de bieb"|"bibliotheek"'
    ids = [post.id for post in batch.posts]
    assert ids == ["youtube:both", "youtube:vid000", "youtube:vid001", "youtube:leu1"]
    assert all(post.geo is None for post in batch.posts)


def test_results_are_paged_with_the_page_token(client: httpx.Client) -> None:
    with YouTubeServer(videos(120)) as server:
        batch = source_for(server, client, max_pages=3).fetch(None)

    assert len(batch.posts) == 120
    assert [r.params.get("pageToken") for r in server.requests] == [None, "page50", "page100"]
    assert len({r.params["publishedAfter"] for r in server.requests}) == 1


def test_paging_stops_at_max_pages_with_a_warning(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with YouTubeServer(videos(120)) as server:
        batch = source_for(server, client, max_pages=2).fetch(None)

    assert len(batch.posts) == 100
    assert len(server.requests) == 2
    assert "older ones are left unread" in caplog.text


def test_a_restart_asks_for_videos_since_the_cursor_minus_the_overlap(
    client: httpx.Client,
) -> None:
    with YouTubeServer(videos(3)) as server:
        cursor = source_for(server, client).fetch(None).cursor
        restarted = source_for(server, client)  # a new process, the stored cursor
        batch = restarted.fetch(cursor)

    assert json.loads(cursor or "") == {"newest": "2026-09-26T07:00:00Z"}
    assert server.requests[-1].params["publishedAfter"] == "2026-09-26T01:00:00Z"
    assert len(batch.posts) == 3  # re-read within the overlap; the store drops the duplicates
    assert batch.cursor == cursor


def test_the_cursor_never_moves_back(client: httpx.Client) -> None:
    cursor = json.dumps({"newest": "2026-09-26T07:30:00Z"})
    with YouTubeServer(videos(2)) as server:
        batch = source_for(server, client).fetch(cursor)

    assert len(batch.posts) == 2
    assert json.loads(batch.cursor or "") == {"newest": "2026-09-26T07:30:00Z"}


# --- errors -------------------------------------------------------------------------------------


def test_an_exhausted_quota_is_transient_until_midnight_pacific_time(client: httpx.Client) -> None:
    body = google_error(
        403,
        "quotaExceeded",
        'The request cannot be completed because you have exceeded your <a href="/youtube/v3/'
        'getting-started#quota">quota</a>.',
    )
    with YouTubeServer() as server:
        server.script(Reply(status=403, body=body))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == 23 * 3600  # 01:00 PDT until midnight
    message = str(caught.value)
    assert "quota is used up" in message and "midnight Pacific time" in message
    assert "<a href" not in message


def test_quota_resets_at_midnight_pacific_also_across_a_clock_change() -> None:
    assert until_quota_reset(datetime(2026, 9, 26, 6, 59, tzinfo=UTC)) == 60
    assert until_quota_reset(datetime(2026, 11, 1, 6, 0, tzinfo=UTC)) == 3600  # 23:00 PDT
    assert until_quota_reset(datetime(2026, 11, 1, 8, 0, tzinfo=UTC)) == 24 * 3600  # 01:00 PDT


def test_a_per_minute_rate_limit_is_transient(client: httpx.Client) -> None:
    with YouTubeServer() as server:
        server.script(Reply(status=403, body=google_error(403, "rateLimitExceeded", "Slow down")))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after is None


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "30"}, 30), ({}, None)])
def test_a_429_is_transient_with_and_without_retry_after(
    client: httpx.Client, headers: dict[str, str], wait: float | None
) -> None:
    with YouTubeServer() as server:
        server.script(Reply(status=429, body=b"", headers=headers))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True
    assert caught.value.retry_after == wait


def test_an_invalid_key_is_permanent_and_names_the_variable(client: httpx.Client) -> None:
    with YouTubeServer(videos(1)) as server, pytest.raises(SourceError) as caught:
        source_for(server, client, api_key="AIza-not-the-right-key").fetch(None)

    message = str(caught.value)
    assert caught.value.transient is False
    assert "HTTP 400" in message and "API key not valid" in message
    assert "YOUTUBE_API_KEY" in message
    assert "AIza-not-the-right-key" not in message


def test_the_older_keyinvalid_reason_is_permanent_too(client: httpx.Client) -> None:
    with YouTubeServer() as server:
        server.script(Reply(status=400, body=google_error(400, "keyInvalid", "Bad Request")))
        with pytest.raises(SourceError) as caught:
            source_for(server, client, api_key_env="MY_YT_KEY").fetch(None)

    assert caught.value.transient is False
    assert "MY_YT_KEY" in str(caught.value)


@pytest.mark.parametrize("reason", ["forbidden", "accessNotConfigured", "ipRefererBlocked"])
def test_other_403s_are_permanent_and_name_the_variable(client: httpx.Client, reason: str) -> None:
    with YouTubeServer() as server:
        server.script(Reply(status=403, body=google_error(403, reason, "Access denied")))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is False
    assert reason in str(caught.value) and "YOUTUBE_API_KEY" in str(caught.value)


def test_a_bad_request_that_is_not_about_the_key_is_permanent(client: httpx.Client) -> None:
    body = google_error(400, "invalidLocation", "Invalid value for location", "youtube.search")
    with YouTubeServer() as server:
        server.script(Reply(status=400, body=body))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is False
    assert "invalidLocation" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_transient(client: httpx.Client, status: int) -> None:
    with YouTubeServer() as server:
        server.script(Reply(status=status, body=google_error(status, "backendError", "Backend")))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True


def test_a_timeout_is_transient(client: httpx.Client) -> None:
    with YouTubeServer() as server:
        server.script(Reply(delay=5))
        with pytest.raises(SourceError) as caught:
            source_for(server, client, timeout=timedelta(seconds=0.2)).fetch(None)

    assert caught.value.transient is True


def test_a_refused_connection_is_transient(client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = YouTubeSource(
        "q",
        key="youtube:search:a",
        client=client,
        api_key=API_KEY,
        api_url=f"http://127.0.0.1:{port}",
    )

    with pytest.raises(SourceError) as caught:
        source.fetch(None)

    assert caught.value.transient is True


@pytest.mark.parametrize("body", [b"<html>Error 502</html>", b"[]", b'{"kind": "x"}'])
def test_a_body_that_is_not_a_search_answer_is_a_transient_source_error(
    client: httpx.Client, body: bytes
) -> None:
    with YouTubeServer() as server:
        server.script(Reply(body=body))
        with pytest.raises(SourceError) as caught:
            source_for(server, client).fetch(None)

    assert caught.value.transient is True


# --- building -----------------------------------------------------------------------------------


def test_build_makes_a_source_per_search_that_uses_youtube(
    client: httpx.Client, tmp_path: Path
) -> None:
    elsewhere = Search(id="bsky-only", org="eemland", kind="brand", sources=["bluesky"])
    with YouTubeServer(videos(1, near=(52.155, 5.3875))) as server:
        main = MainFile.model_validate({"sources": {"youtube": {"api_url": server.url()}}})
        sources = build_sources(main, [BRAND, LOCAL, elsewhere], ORGS, tmp_path, client, ENV)
        sources[1].fetch(None)

    assert [source.key for source in sources] == [
        "youtube:search:eemland-brand",
        "youtube:search:eemland-local",
    ]
    assert {source.name for source in sources} == {"youtube"}
    assert sources[0].interval == timedelta(hours=1)
    brand, local = sources
    assert isinstance(brand, YouTubeSource) and isinstance(local, YouTubeSource)
    assert brand.circles == []
    assert local.circles == [CENTRUM, LEUSDEN]
    assert [r.params["location"] for r in server.requests] == ["52.155,5.3875", "52.1325,5.43194"]


def test_a_local_search_without_branches_searches_everywhere_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    search = Search(id="overal", kind="local", terms=["de bieb"])
    (source,) = youtube.build(
        YouTubeSettings(),
        searches=[search],
        organisations={},
        base_dir=tmp_path,
        client=None,
        env=ENV,
    )

    assert source.circles == []
    assert "no branches to search near" in caplog.text


@pytest.mark.parametrize(
    ("env", "state"), [({}, "is not set"), ({"YOUTUBE_API_KEY": ""}, "is empty")]
)
def test_a_missing_api_key_makes_the_source_unavailable_naming_the_variable(
    tmp_path: Path, env: dict[str, str], state: str
) -> None:
    with pytest.raises(SourceUnavailable) as caught:
        youtube.build(
            YouTubeSettings(),
            searches=[BRAND],
            organisations=ORGS,
            base_dir=tmp_path,
            client=None,
            env=env,
        )

    assert str(caught.value) == f"youtube: environment variable YOUTUBE_API_KEY {state}"


# --- secrets ------------------------------------------------------------------------------------


def test_the_api_key_stays_out_of_urls_logs_reprs_and_errors(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with YouTubeServer(videos(3)) as server:
        source = source_for(server, client, timeout=timedelta(seconds=0.2))
        source.fetch(None)
        for reply in (
            Reply(status=403, body=google_error(403, "quotaExceeded", f"quota for {API_KEY}")),
            Reply(status=400, body=google_error(400, "keyInvalid", f"key {API_KEY} invalid")),
            Reply(status=500, body=f"echo {API_KEY}".encode()),
            Reply(delay=5),
            Reply(body=f"not json {API_KEY}".encode()),
        ):
            server.script(reply)
            try:
                source.fetch(None)
            except SourceError as exc:
                errors.append(f"{exc} {exc!r}")

    assert len(errors) == 5
    assert all("key" not in request.params for request in server.requests)
    shown = "\n".join([caplog.text, *errors, repr(source)])
    assert API_KEY not in shown
