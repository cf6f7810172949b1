"""Mastodon sources against a local Mastodon-wire server (hashtag timelines, statuses search,
`/api/v2/instance`), serving the real sample statuses of SOURCES.md section 2 and variations."""

from __future__ import annotations

import copy
import html
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jsonschema
import pytest

from listener.config.model import MainFile, Organisation, Search
from listener.post import Post
from listener.sources import SourceError, build_sources
from listener.sources.mastodon import (
    MastodonHashtagSource,
    MastodonInstance,
    MastodonSearchSource,
    is_location_label,
    profile_location,
    read_cursor,
    search_phrases,
    status_to_post,
)
from listener.store import Decided, Store
from tests.support.configs import ROOT
from tests.support.localserver import LocalServer
from tests.support.schemas import post_schema

SHARED = ROOT.parent / "shared"

# Verbatim copies of shared/samples/mastodon-status.json (the Status example of the Mastodon
# docs, a mastodon.social post) and shared/samples/mastodon-streaming-update.json (the streaming
# "update" example, a real fosstodon.org post whose payload is a JSON string), so these tests run
# without shared/ beside the repo; `test_the_embedded_samples_are_the_shared_ones` keeps them equal.
STATUS_SAMPLE = r"""{
  "id": "103270115826048975",
  "created_at": "2019-12-08T03:48:33.901Z",
  "in_reply_to_id": null,
  "in_reply_to_account_id": null,
  "sensitive": false,
  "spoiler_text": "",
  "visibility": "public",
  "language": "en",
  "uri": "https://mastodon.social/users/Gargron/statuses/103270115826048975",
  "url": "https://mastodon.social/@Gargron/103270115826048975",
  "replies_count": 5,
  "reblogs_count": 6,
  "favourites_count": 11,
  "quotes_count": 2,
  "favourited": false,
  "reblogged": false,
  "muted": false,
  "bookmarked": false,
  "content": "<p>&quot;I lost my inheritance with one wrong digit on my sort code&quot;</p><p><a href=\"https://www.theguardian.com/money/2019/dec/07/i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code\" rel=\"nofollow noopener noreferrer\" target=\"_blank\"><span class=\"invisible\">https://www.</span><span class=\"ellipsis\">theguardian.com/money/2019/dec</span><span class=\"invisible\">/07/i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code</span></a></p>",
  "reblog": null,
  "application": {
    "name": "Web",
    "website": null
  },
  "account": {
    "id": "1",
    "username": "Gargron",
    "acct": "Gargron",
    "display_name": "Eugen",
    "locked": false,
    "bot": false,
    "discoverable": true,
    "group": false,
    "created_at": "2016-03-16T14:34:26.392Z",
    "note": "<p>Developer of Mastodon and administrator of mastodon.social. I post service announcements, development updates, and personal stuff.</p>",
    "url": "https://mastodon.social/@Gargron",
    "avatar": "https://files.mastodon.social/accounts/avatars/000/000/001/original/d96d39a0abb45b92.jpg",
    "avatar_static": "https://files.mastodon.social/accounts/avatars/000/000/001/original/d96d39a0abb45b92.jpg",
    "header": "https://files.mastodon.social/accounts/headers/000/000/001/original/c91b871f294ea63e.png",
    "header_static": "https://files.mastodon.social/accounts/headers/000/000/001/original/c91b871f294ea63e.png",
    "followers_count": 322930,
    "following_count": 459,
    "statuses_count": 61323,
    "last_status_at": "2019-12-10T08:14:44.811Z",
    "emojis": [],
    "fields": [
      {
        "name": "Patreon",
        "value": "<a href=\"https://www.patreon.com/mastodon\" rel=\"me nofollow noopener noreferrer\" target=\"_blank\"><span class=\"invisible\">https://www.</span><span class=\"\">patreon.com/mastodon</span><span class=\"invisible\"></span></a>",
        "verified_at": null
      },
      {
        "name": "Homepage",
        "value": "<a href=\"https://zeonfederated.com\" rel=\"me nofollow noopener noreferrer\" target=\"_blank\"><span class=\"invisible\">https://</span><span class=\"\">zeonfederated.com</span><span class=\"invisible\"></span></a>",
        "verified_at": "2019-07-15T18:29:57.191+00:00"
      }
    ]
  },
  "media_attachments": [],
  "mentions": [],
  "tags": [],
  "emojis": [],
  "quote": null,
  "card": {
    "url": "https://www.theguardian.com/money/2019/dec/07/i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code",
    "title": "‘I lost my £193,000 inheritance – with one wrong digit on my sort code’",
    "description": "When Peter Teich’s money went to another Barclays customer, the bank offered £25 as a token gesture",
    "type": "link",
    "author_name": "",
    "author_url": "",
    "provider_name": "",
    "provider_url": "",
    "html": "",
    "width": 0,
    "height": 0,
    "image": null,
    "embed_url": ""
  },
  "poll": null,
  "quote_approval": {
    "automatic": [],
    "manual": [],
    "current_user": "automatic"
  }
}
"""  # noqa: E501

STREAMING_SAMPLE = r"""{
  "stream": [
    "public"
  ],
  "event": "update",
  "payload": "{\"id\":\"108913983692647032\",\"created_at\":\"2022-08-30T21:38:22.000Z\",\"in_reply_to_id\":\"108913981098896721\",\"in_reply_to_account_id\":\"1081104\",\"sensitive\":false,\"spoiler_text\":\"\",\"visibility\":\"public\",\"language\":\"en\",\"uri\":\"https://fosstodon.org/users/tobtobxx/statuses/108913983628474640\",\"url\":\"https://fosstodon.org/@tobtobxx/108913983628474640\",\"replies_count\":0,\"reblogs_count\":0,\"favourites_count\":0,\"edited_at\":null,\"content\":\"<p>And now I can't exit the inner nvim because I mapped escape to the parent vim instance 😂</p>\",\"reblog\":null,\"account\":{\"id\":\"1081104\",\"username\":\"tobtobxx\",\"acct\":\"tobtobxx@fosstodon.org\",\"display_name\":\"TobTobXX\",\"locked\":false,\"bot\":false,\"discoverable\":true,\"group\":false,\"created_at\":\"2020-01-10T00:00:00.000Z\",\"note\":\"<p>Young tech enthusiast. Likes software (and also general, just not work-) minimalsim. Constantly trying to escape big-tech software.<br>Other hobbies include making music, stargazing, math and recently chess, but there's a lot that piques my interest and a lot left to learn out there.</p><p>„Of course, every house is constructed by someone, but the one who constructed all things is God.“ (Hebrews 3:4 [nwt18])</p>\",\"url\":\"https://fosstodon.org/@tobtobxx\",\"avatar\":\"https://files.mastodon.social/cache/accounts/avatars/001/081/104/original/230a8d0fb54e249b.png\",\"avatar_static\":\"https://files.mastodon.social/cache/accounts/avatars/001/081/104/original/230a8d0fb54e249b.png\",\"header\":\"https://static-cdn.mastodon.social/headers/original/missing.png\",\"header_static\":\"https://static-cdn.mastodon.social/headers/original/missing.png\",\"followers_count\":150,\"following_count\":216,\"statuses_count\":2447,\"last_status_at\":\"2022-08-30\",\"emojis\":[],\"fields\":[{\"name\":\"📍 Lives in:\",\"value\":\"Switzerland (CET: UTC+1 or CEST: UTC+2)\",\"verified_at\":null},{\"name\":\"🔑 GPG  key:\",\"value\":\"EA23 42C5 3EBF 2A2D 985C  416A 12AC 3D47 52E2 FA2E\",\"verified_at\":null}]},\"media_attachments\":[],\"mentions\":[],\"tags\":[],\"emojis\":[],\"card\":null,\"poll\":null}"
}
"""  # noqa: E501

GARGRON: dict[str, Any] = json.loads(STATUS_SAMPLE)
TOBTOBXX: dict[str, Any] = json.loads(json.loads(STREAMING_SAMPLE)["payload"])

FIXED_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BASE_ID = 115_000_000_000_000_000
TOKEN = "s3cret-user-token"

EEMLAND = Organisation.model_validate(
    {"id": "eemland", "name": "Bibliotheek Eemland", "aliases": ["Bieb Eemland"]}
)
ORGS = {"eemland": EEMLAND}
BRAND = Search(id="eemland-brand", org="eemland", kind="brand")
LOCAL = Search(id="eemland-local", org="eemland", kind="local", terms=["de bieb"])


# --- the local Mastodon-wire server ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `body=None` gives the server's normal answer with this status."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request. Header names are lower-case; `query` keeps the first value of each name."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


class MastodonServer(LocalServer[Recorded, Reply]):
    """Speaks the parts of Mastodon's REST API the sources use, with Mastodon's paging rules:
    `min_id` gives the `limit` statuses just above it, newest first; otherwise the newest
    statuses (below `max_id`, above `since_id`), newest first. Statuses search needs the token
    (unauthenticated full-text search finds no statuses, as on Mastodon)."""

    def __init__(self, *, domain: str = "mastodon.social") -> None:
        super().__init__()
        self.tags: dict[str, list[dict[str, Any]]] = {}
        self.searchable: list[dict[str, Any]] = []
        self.token = TOKEN
        self.rate_remaining = 299
        self.instance: dict[str, Any] = {
            "domain": domain,
            "title": "Mastodon",
            "version": "4.5.0",
            "configuration": {
                "urls": {"streaming": f"wss://{domain}"},
                "timelines_access": {
                    "live_feeds": {"local": "public", "remote": "public"},
                    "hashtag_feeds": {"local": "public", "remote": "public"},
                    "trending_link_feeds": {"local": "public", "remote": "public"},
                },
            },
        }

    def url(self, path: str = "") -> str:
        host, port = self.address
        return f"http://{host}:{port}{path}"

    def add(self, tag: str, *statuses: dict[str, Any]) -> None:
        self.tags.setdefault(tag, []).extend(statuses)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def timeline_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/api/v1/timelines/tag/")]

    def answer(self, recorded: Recorded) -> Reply:
        scripted = self.next_scripted(recorded)
        if scripted is not None and scripted.body is not None:
            return scripted
        status, body, headers = self._normal(recorded)
        if scripted is not None:
            return Reply(scripted.status, body, {**headers, **scripted.headers}, scripted.delay)
        return Reply(status, body, headers)

    def _normal(self, recorded: Recorded) -> tuple[int, bytes, dict[str, str]]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(self.rate_remaining),
            "X-RateLimit-Reset": "2026-11-20T09:05:00.000Z",
        }
        path, query = recorded.path, recorded.query
        if path == "/api/v2/instance":
            return 200, json.dumps(self.instance).encode(), headers
        if path.startswith("/api/v1/timelines/tag/"):
            tag = unquote(path.rsplit("/", 1)[1]).lower()
            page = paginate(self.tags.get(tag, []), query)
            if page:
                base = self.url(path)
                headers["Link"] = (
                    f'<{base}?max_id={page[-1]["id"]}>; rel="next", '
                    f'<{base}?min_id={page[0]["id"]}>; rel="prev"'
                )
            return 200, json.dumps(page).encode(), headers
        if path == "/api/v2/search":
            found: list[dict[str, Any]] = []
            if recorded.headers.get("authorization") == f"Bearer {self.token}":
                words = query.get("q", "").replace('"', "").split(" language:")[0].lower()
                found = [s for s in self.searchable if words in s["content"].lower()]
                if "min_id" in query:
                    found = [s for s in found if id_key(s["id"]) > id_key(query["min_id"])]
                found.sort(key=lambda s: id_key(s["id"]), reverse=True)
                offset = int(query.get("offset", "0"))
                found = found[offset : offset + int(query.get("limit", "20"))]
            body = {"accounts": [], "statuses": found, "hashtags": []}
            return 200, json.dumps(body).encode(), headers
        return 404, b'{"error":"Record not found"}', headers


def id_key(status_id: str) -> tuple[int, str]:
    return len(status_id), status_id


def paginate(statuses: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Mastodon's `paginate_by_id`: min_id → ascending above it, limited, then reversed."""
    limit = min(int(query.get("limit", "20")), 40)
    ordered = sorted(statuses, key=lambda s: id_key(s["id"]))
    if "max_id" in query:
        ordered = [s for s in ordered if id_key(s["id"]) < id_key(query["max_id"])]
    if "min_id" in query:
        above = [s for s in ordered if id_key(s["id"]) > id_key(query["min_id"])]
        return list(reversed(above[:limit]))
    if "since_id" in query:
        ordered = [s for s in ordered if id_key(s["id"]) > id_key(query["since_id"])]
    return list(reversed(ordered[-limit:])) if ordered else []


def _handler_for(server: MastodonServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            recorded = Recorded(
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                headers={name.lower(): value for name, value in self.headers.items()},
            )
            reply = server.answer(recorded)
            if reply.delay and server.stopping.wait(reply.delay):
                return
            body = reply.body or b""
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def status(
    n: int,
    text: str = "Weet iemand hoe laat de #bieb opengaat?",
    *,
    acct: str = "sanne",
    fields: list[dict[str, Any]] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A variation of the real sample status: status number `n` of a local account."""
    made = copy.deepcopy(GARGRON)
    status_id = str(BASE_ID + n)
    made.update(
        id=status_id,
        created_at=(datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(seconds=n))
        .isoformat()
        .replace("+00:00", "Z"),
        uri=f"https://mastodon.social/users/{acct}/statuses/{status_id}",
        url=f"https://mastodon.social/@{acct}/{status_id}",
        content=f"<p>{html.escape(text)}</p>",
        language="nl",
    )
    made["account"].update(acct=acct, username=acct, display_name=acct.title())
    if fields is not None:
        made["account"]["fields"] = fields
    made.update(changes)
    return made


def boost(n: int, original: dict[str, Any], *, acct: str = "booster") -> dict[str, Any]:
    """A reblog of `original` as the timeline shows it: an empty wrapper holding the original."""
    wrapper = status(n, "", acct=acct, content="", reblog=original)
    wrapper["uri"] = f"https://mastodon.social/users/{acct}/statuses/{wrapper['id']}/activity"
    return wrapper


def instance(server: MastodonServer, client: httpx.Client, **kwargs: Any) -> MastodonInstance:
    kwargs.setdefault("now", lambda: FIXED_NOW)
    if kwargs.get("token"):
        kwargs.setdefault("token_env", "MASTODON_TOKEN")
    return MastodonInstance(server.url(), client=client, **kwargs)


def hashtag(
    server: MastodonServer, client: httpx.Client, tag: str = "bieb", **kwargs: Any
) -> MastodonHashtagSource:
    return MastodonHashtagSource(instance(server, client, **kwargs), tag)


def cursor_at(n: int) -> str:
    return json.dumps({"min_id": str(BASE_ID + n)})


# --- statuses to posts ----------------------------------------------------------------------------


def test_the_embedded_samples_are_the_shared_ones() -> None:
    samples = SHARED / "samples"
    if not samples.is_dir():
        pytest.skip("shared/samples is not beside the repo")
    assert json.loads((samples / "mastodon-status.json").read_text()) == GARGRON
    streaming = json.loads((samples / "mastodon-streaming-update.json").read_text())
    assert streaming == json.loads(STREAMING_SAMPLE)


def test_the_real_status_becomes_a_post_with_its_html_as_text() -> None:
    post = status_to_post(GARGRON, local_domain="mastodon.social")

    assert post.id == "mastodon:https://mastodon.social/users/Gargron/statuses/103270115826048975"
    assert post.source == "mastodon"
    assert post.url == "https://mastodon.social/@Gargron/103270115826048975"
    assert post.text == (
        '"I lost my inheritance with one wrong digit on my sort code"\n'
        "https://www.theguardian.com/money/2019/dec/07/"
        "i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"
    )
    assert post.created_at == datetime(2019, 12, 8, 3, 48, 33, 901000, tzinfo=UTC)
    assert post.lang == "en"
    assert post.author is not None
    assert post.author.handle == "@Gargron@mastodon.social"  # a local account gets the domain
    assert post.author.name == "Eugen"
    assert post.author.followers == 322930
    assert post.author.location is None  # Patreon and Homepage are no places
    assert post.engagement is not None
    assert (post.engagement.likes, post.engagement.reposts, post.engagement.replies) == (11, 6, 5)
    assert post.reply_to is None


def test_the_lives_in_profile_field_of_the_streaming_sample_becomes_the_location() -> None:
    post = status_to_post(TOBTOBXX, local_domain="mastodon.social")

    assert post.author is not None
    assert post.author.location == "Switzerland (CET: UTC+1 or CEST: UTC+2)"
    assert post.author.handle == "@tobtobxx@fosstodon.org"  # a remote acct keeps its domain
    assert post.text == (
        "And now I can't exit the inner nvim because I mapped escape to the parent vim instance 😂"
    )
    assert post.id == "mastodon:https://fosstodon.org/users/tobtobxx/statuses/108913983628474640"
    assert post.reply_to is None  # it is a reply, but Mastodon gives only the parent's local id


def test_paragraphs_and_line_breaks_stay_lines_and_the_content_warning_comes_first() -> None:
    made = status(
        1, spoiler_text="Klacht", content="<p>Regel één<br>regel &amp; twee</p><p>Drie</p>"
    )

    assert status_to_post(made, local_domain="x").text == "Klacht\nRegel één\nregel & twee\nDrie"


@pytest.mark.parametrize(
    "name",
    ["📍 Lives in:", "Woont in", "LOCATIE", "Location", "Woonplaats", "📍", "🏠 woonplaats:"],
)
def test_field_names_that_look_like_a_location(name: str) -> None:
    assert is_location_label(name)


@pytest.mark.parametrize("name", ["Homepage", "Patreon", "🔑 GPG  key:", "🌍", "Pronouns"])
def test_field_names_that_are_not_a_location(name: str) -> None:
    assert not is_location_label(name)


def test_the_location_is_the_first_location_field_as_text() -> None:
    fields = [
        {"name": "Website", "value": '<a href="https://x.nl">x.nl</a>', "verified_at": None},
        {"name": "Woont in", "value": "<span>Amersfoort</span> &amp; Leusden", "verified_at": None},
        {"name": "Location", "value": "Utrecht", "verified_at": None},
    ]

    assert profile_location(fields) == "Amersfoort & Leusden"
    assert profile_location([{"name": "Locatie", "value": "  "}]) is None
    assert profile_location(None) is None


# --- hashtag timeline: paging ---------------------------------------------------------------------


def test_the_first_fetch_takes_one_page_of_the_newest_statuses_oldest_first(
    client: httpx.Client,
) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 61)))
        batch = hashtag(server, client).fetch(None)

    (request,) = server.timeline_requests()
    assert request.path == "/api/v1/timelines/tag/bieb"
    assert request.query == {"limit": "40"}
    assert [p.id.rsplit("/", 1)[1] for p in batch.posts] == [
        str(BASE_ID + n) for n in range(21, 61)
    ]
    assert batch.cursor == cursor_at(60)
    assert (batch.skipped, batch.more) == (0, False)


def test_later_fetches_page_forward_with_min_id_across_three_pages_until_one_is_empty(
    client: httpx.Client,
) -> None:
    with MastodonServer() as server:
        source = hashtag(server, client)
        server.add("bieb", status(0))
        first = source.fetch(None)
        server.add("bieb", *(status(n) for n in range(1, 86)))
        second = source.fetch(first.cursor)
        third = source.fetch(second.cursor)

    requests = server.timeline_requests()
    assert [r.query for r in requests[1:5]] == [
        {"limit": "40", "min_id": str(BASE_ID + 0)},
        {"limit": "40", "min_id": str(BASE_ID + 40)},
        {"limit": "40", "min_id": str(BASE_ID + 80)},
        {"limit": "40", "min_id": str(BASE_ID + 85)},  # the empty page that ends the read
    ]
    assert first.cursor == cursor_at(0)
    numbers = [int(p.id.rsplit("/", 1)[1]) - BASE_ID for p in second.posts]
    assert numbers == list(range(1, 86))  # every page sorted: oldest to newest, no gaps
    assert second.cursor == cursor_at(85)
    assert second.more is False
    assert third.posts == [] and third.cursor == cursor_at(85)
    assert requests[5].query == {"limit": "40", "min_id": str(BASE_ID + 85)}


def test_a_restart_resumes_from_the_stored_cursor(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 11)))
        stored = cursor_at(7)  # what the store kept from the last run before the restart
        fresh = hashtag(server, client)  # a new process: new source, new instance
        batch = fresh.fetch(stored)

    assert server.requests[0].path == "/api/v2/instance"
    assert server.timeline_requests()[0].query == {"limit": "40", "min_id": str(BASE_ID + 7)}
    assert [p.url for p in batch.posts] == [
        f"https://mastodon.social/@sanne/{BASE_ID + n}" for n in (8, 9, 10)
    ]
    assert batch.cursor == cursor_at(10)


def test_an_unreadable_cursor_starts_afresh() -> None:
    assert read_cursor("not json", "k") is None
    assert read_cursor('{"etag": "x"}', "k") is None
    assert read_cursor(cursor_at(3), "k") == str(BASE_ID + 3)


def test_the_page_cap_says_more(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 101)))
        source = MastodonHashtagSource(instance(server, client), "bieb")
        source.max_pages = 2
        batch = source.fetch(cursor_at(0))

    assert len(batch.posts) == 80
    assert batch.cursor == cursor_at(80)
    assert batch.more is True


def test_a_reblog_of_a_seen_status_is_not_a_new_post(client: httpx.Client, tmp_path: Path) -> None:
    original = status(1, "Nieuwe openingstijden bij de #bieb")
    with MastodonServer() as server:
        source = hashtag(server, client)
        server.add("bieb", original)
        first = source.fetch(None)
        server.add("bieb", boost(2, original), status(3), boost(4, original, acct="another"))
        second = source.fetch(first.cursor)

    (seen,) = first.posts
    boosted, other = second.posts  # the second boost in the same batch is dropped
    assert boosted.id == seen.id  # the original's uri: the store already has this post
    assert boosted.author is not None and boosted.author.handle == "@sanne@mastodon.social"
    assert boosted.text == seen.text and boosted.url == seen.url
    assert second.cursor == cursor_at(4)

    store = Store(f"sqlite:///{tmp_path / 'listener.db'}")
    try:
        assert store.save_batch(source.key, first.cursor, [decided(p) for p in first.posts])
        saved = store.save_batch(source.key, second.cursor, [decided(p) for p in second.posts])
        assert saved.new_posts == 1  # only status 3
        assert store.known_post_ids([other.id, seen.id]) == {other.id, seen.id}
    finally:
        store.close()


def decided(post: Post) -> Decided:
    decision = {"id": post.id, "org": None, "branch": None, "urgency": "none", "score": 0.0}
    return Decided(post=post, decision=decision)


def test_a_malformed_status_is_skipped_and_counted_and_the_cursor_passes_it(
    client: httpx.Client,
) -> None:
    no_uri = status(12)
    del no_uri["uri"]
    bad_date = status(13, created_at="gisteren")
    no_account = status(14, account=None)
    first_page = [status(7), "not a status", {"no": "id"}, status(6)]
    with MastodonServer() as server:
        server.add("bieb", status(11), no_uri, bad_date, no_account, status(15))
        source = hashtag(server, client)
        source.instance.info(source.key)
        server.script(Reply(body=json.dumps(first_page).encode()))
        batch = source.fetch(cursor_at(0))

    assert [p.url for p in batch.posts] == [
        f"https://mastodon.social/@sanne/{BASE_ID + n}" for n in (6, 7, 11, 15)
    ]
    assert batch.skipped == 5
    assert batch.cursor == cursor_at(15)


def test_the_posts_follow_the_post_schema(client: httpx.Client) -> None:
    schema = post_schema()
    with MastodonServer() as server:
        server.add("bieb", GARGRON, TOBTOBXX, status(1), boost(2, status(0, spoiler_text="cw")))
        batch = hashtag(server, client).fetch(None)

    assert len(batch.posts) == 4
    for post in batch.posts:
        data = post.to_dict()
        jsonschema.validate(data, schema)
        assert Post.from_dict(data) == post


# --- instance access ------------------------------------------------------------------------------


def test_hashtags_needing_a_login_without_a_token_are_a_permanent_error(
    client: httpx.Client,
) -> None:
    with MastodonServer() as server:
        feeds = server.instance["configuration"]["timelines_access"]
        feeds["hashtag_feeds"] = {"local": "authenticated", "remote": "authenticated"}
        server.add("bieb", status(1))
        with pytest.raises(SourceError) as caught:
            hashtag(server, client).fetch(None)
        host = urlsplit(server.url()).netloc

    assert caught.value.transient is False
    assert str(caught.value) == (
        f"{host}: hashtag timelines need a login on this instance "
        "(timelines_access = authenticated): set token_env"
    )
    assert server.timeline_requests() == []


def test_with_a_token_login_only_hashtags_are_read_with_it_and_the_instance_asked_once(
    client: httpx.Client,
) -> None:
    with MastodonServer() as server:
        feeds = server.instance["configuration"]["timelines_access"]
        feeds["hashtag_feeds"] = {"local": "public", "remote": "authenticated"}
        server.add("bieb", status(1))
        server.add("bibliotheek", status(2))
        shared = instance(server, client, token=TOKEN)
        for tag in ("bieb", "bibliotheek", "bieb"):
            MastodonHashtagSource(shared, tag).fetch(None)

    assert [r.path for r in server.requests].count("/api/v2/instance") == 1
    assert {r.headers["authorization"] for r in server.timeline_requests()} == {f"Bearer {TOKEN}"}


def test_disabled_hashtag_feeds_are_a_permanent_error(client: httpx.Client) -> None:
    with MastodonServer() as server:
        feeds = server.instance["configuration"]["timelines_access"]
        feeds["hashtag_feeds"] = {"local": "disabled", "remote": "disabled"}
        with pytest.raises(SourceError) as caught:
            hashtag(server, client, token=TOKEN).fetch(None)

    assert caught.value.transient is False
    assert "disabled" in str(caught.value)


def test_an_instance_without_timelines_access_or_v2_instance_is_read_as_public(
    client: httpx.Client,
) -> None:
    with MastodonServer() as server:
        del server.instance["configuration"]["timelines_access"]  # before 4.5
        server.add("bieb", status(1))
        assert len(hashtag(server, client).fetch(None).posts) == 1
        server.script(Reply(status=404, body=b'{"error":"Record not found"}'))  # before 4.0
        source = hashtag(server, client)
        assert len(source.fetch(None).posts) == 1
        assert source.instance.domain == "127.0.0.1"  # local handles fall back to the host


# --- errors ---------------------------------------------------------------------------------------


def fetch_error(server: MastodonServer, client: httpx.Client, *replies: Reply) -> SourceError:
    server.add("bieb", status(1))
    source = hashtag(server, client, timeout=timedelta(seconds=0.3))
    source.instance.info(source.key)  # ask the instance before scripting the timeline's answers
    server.script(*replies)
    with pytest.raises(SourceError) as caught:
        source.fetch(cursor_at(0))
    return caught.value


def test_a_429_with_retry_after_is_transient_and_carries_it(client: httpx.Client) -> None:
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(429, b"{}", {"Retry-After": "120"}))

    assert (error.transient, error.retry_after) == (True, 120.0)


def test_a_429_without_retry_after_waits_until_the_rate_limit_resets(
    client: httpx.Client,
) -> None:
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-11-20T09:04:30.000Z"}
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(429, b'{"error":"Too many requests"}', reset))

    assert (error.transient, error.retry_after) == (True, 270.0)
    assert "Too many requests" in str(error)


def test_a_429_without_any_hint_is_transient_without_retry_after(client: httpx.Client) -> None:
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(429, b"", {"X-RateLimit-Reset": ""}))

    assert (error.transient, error.retry_after) == (True, None)


@pytest.mark.parametrize("code", [500, 502, 503])
def test_a_server_error_is_transient(client: httpx.Client, code: int) -> None:
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(code, b"<html>oops</html>"))

    assert error.transient is True
    assert f"HTTP {code}" in str(error)


def test_a_timeout_is_transient(client: httpx.Client) -> None:
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(delay=5))

    assert error.transient is True


def test_a_refused_connection_is_transient(client: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = MastodonHashtagSource(MastodonInstance(f"http://127.0.0.1:{port}", client=client), "x")

    with pytest.raises(SourceError) as caught:
        source.fetch(None)

    assert caught.value.transient is True


@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b'{"statuses": ', b'{"a": 1}'])
def test_a_body_that_is_not_a_list_of_statuses_is_a_transient_error(
    client: httpx.Client, body: bytes
) -> None:
    with MastodonServer() as server:
        error = fetch_error(server, client, Reply(200, body))

    assert error.transient is True
    assert "JSON" in str(error) or "not a list" in str(error)


@pytest.mark.parametrize(
    ("code", "token", "hint"),
    [
        (401, None, "needs a login"),
        (401, TOKEN, "MASTODON_TOKEN was refused"),
        (403, TOKEN, "read:statuses"),
        (422, None, "needs a login"),  # public preview off before 4.5
    ],
)
def test_auth_failures_are_permanent_and_say_what_to_do(
    client: httpx.Client, code: int, token: str | None, hint: str
) -> None:
    body = b'{"error":"This method requires an authenticated user"}'
    with MastodonServer() as server:
        source = hashtag(server, client, token=token)
        source.instance.info(source.key)
        server.script(Reply(code, body))
        with pytest.raises(SourceError) as caught:
            source.fetch(None)

    assert caught.value.transient is False
    assert hint in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_404_for_a_tag_is_an_empty_batch(client: httpx.Client) -> None:
    with MastodonServer() as server:
        source = hashtag(server, client)
        source.instance.info(source.key)
        server.script(Reply(404, b'{"error":"Record not found"}'))
        batch = source.fetch(cursor_at(3))

    assert batch.posts == [] and batch.skipped == 0
    assert batch.cursor == cursor_at(3)


def test_a_transient_error_after_some_pages_keeps_the_pages_read(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 61)))
        source = hashtag(server, client)
        source.instance.info(source.key)
        server.script(Reply(), Reply(429, b"{}", {"Retry-After": "60"}))
        batch = source.fetch(cursor_at(0))

    assert len(batch.posts) == 40
    assert batch.cursor == cursor_at(40)
    assert batch.more is False


def test_paging_stops_when_the_rate_limit_is_used_up(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 61)))
        server.rate_remaining = 0
        batch = hashtag(server, client).fetch(cursor_at(0))

    assert len(server.timeline_requests()) == 1
    assert batch.cursor == cursor_at(40)


# --- statuses search and building -----------------------------------------------------------------


def config(server: MastodonServer, **instance: Any) -> MainFile:
    return MainFile.model_validate(
        {
            "sources": {
                "mastodon": {
                    "interval": "2m",
                    "instances": [
                        {"url": server.url(), "hashtags": ["#Bieb", "bibliotheek", "bieb"]}
                        | instance
                    ],
                }
            }
        }
    )


def test_build_makes_a_hashtag_source_per_tag_and_no_search_without_a_token(
    client: httpx.Client, tmp_path: Path
) -> None:
    with MastodonServer() as server:
        host = urlsplit(server.url()).netloc
        no_env = config(server)
        missing = config(server, token_env="MASTODON_TOKEN")
        plain = build_sources(no_env, [BRAND, LOCAL], ORGS, tmp_path, client, env={})
        unset = build_sources(missing, [BRAND], ORGS, tmp_path, client, env={})

    assert [s.key for s in plain] == [
        f"mastodon:{host}:tag:bieb",
        f"mastodon:{host}:tag:bibliotheek",
    ]
    assert [s.key for s in unset] == [s.key for s in plain]
    assert {s.name for s in plain} == {"mastodon"}
    assert {s.interval for s in plain} == {timedelta(minutes=2)}


def test_statuses_search_runs_only_with_a_token_and_sends_it(
    client: httpx.Client, tmp_path: Path
) -> None:
    hourly = Search(id="eemland-brand", org="eemland", kind="brand", interval="1h")
    elsewhere = Search(id="bsky-only", org="eemland", kind="brand", sources=["bluesky"])
    with MastodonServer() as server:
        host = urlsplit(server.url()).netloc
        server.searchable = [
            status(1, "Bibliotheek Eemland is vandaag dicht"),
            status(2, "Koffie bij Bieb Eemland"),
            status(3, "Iets anders"),
        ]
        main = config(server, token_env="MASTODON_TOKEN")
        env = {"MASTODON_TOKEN": TOKEN}
        sources = build_sources(main, [hourly, LOCAL, elsewhere], ORGS, tmp_path, client, env=env)
        by_key = {s.key: s for s in sources}
        search = by_key[f"mastodon:{host}:search:eemland-brand"]
        first = search.fetch(None)
        server.searchable.append(status(4, "bibliotheek eemland: nieuwe tentoonstelling"))
        second = search.fetch(first.cursor)

    assert list(by_key) == [
        f"mastodon:{host}:tag:bieb",
        f"mastodon:{host}:tag:bibliotheek",
        f"mastodon:{host}:search:eemland-brand",
        f"mastodon:{host}:search:eemland-local",
    ]
    assert isinstance(search, MastodonSearchSource)
    assert search.interval == timedelta(hours=1)
    searches = [r for r in server.requests if r.path == "/api/v2/search"]
    assert {r.headers["authorization"] for r in searches} == {f"Bearer {TOKEN}"}
    assert [r.query for r in searches[:2]] == [
        {"q": '"Bibliotheek Eemland"', "type": "statuses", "limit": "40"},
        {"q": '"Bieb Eemland"', "type": "statuses", "limit": "40"},
    ]
    assert searches[2].query["min_id"] == str(BASE_ID + 2)
    assert [p.text for p in first.posts] == [
        "Bibliotheek Eemland is vandaag dicht",
        "Koffie bij Bieb Eemland",
    ]
    assert [p.text for p in second.posts] == ["bibliotheek eemland: nieuwe tentoonstelling"]
    assert second.cursor == cursor_at(4)


def test_search_pages_with_offset_until_a_short_page(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.searchable = [status(n, f"de bieb {n}") for n in range(1, 91)]
        source = MastodonSearchSource(instance(server, client, token=TOKEN), "s", ["de bieb"])
        batch = source.fetch(cursor_at(0))

    queries = [r.query for r in server.requests if r.path == "/api/v2/search"]
    assert [q.get("offset") for q in queries] == [None, "40", "80"]
    assert {q["min_id"] for q in queries} == {str(BASE_ID)}
    assert len(batch.posts) == 90
    assert batch.cursor == cursor_at(90)


def test_search_phrases_follow_the_kind_of_search() -> None:
    assert search_phrases(BRAND, ORGS) == ["Bibliotheek Eemland", "Bieb Eemland"]
    assert search_phrases(LOCAL, ORGS) == ["de bieb"]
    with pytest.raises(ValueError, match="unknown organisation"):
        search_phrases(Search(id="x", org="nope", kind="brand"), ORGS)


def test_the_token_never_shows_in_repr(client: httpx.Client) -> None:
    shared = MastodonInstance("mastodon.nl", client=client, token=TOKEN)

    assert TOKEN not in repr(shared)
    assert shared.base_url == "https://mastodon.nl"


def test_a_deleted_status_at_the_cursor_leaves_no_gap(client: httpx.Client) -> None:
    with MastodonServer() as server:
        server.add("bieb", *(status(n) for n in range(1, 11) if n != 7))  # 7 was deleted
        batch = hashtag(server, client).fetch(cursor_at(7))

    numbers = [int(p.id.rsplit("/", 1)[1]) - BASE_ID for p in batch.posts]
    assert numbers == [8, 9, 10]
