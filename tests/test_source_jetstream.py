"""The Jetstream source, against a local websocket server that replays real wire captures."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from listener.config.model import JetstreamSource as JetstreamSettings
from listener.config.model import MainFile
from listener.post import Post
from listener.sources import Batch, SourceError, build_sources
from listener.sources.jetstream import JetstreamSource, build, subscribe_url
from tests.support.schemas import post_schema

# Real wire captures from wss://jetstream1.us-east.bsky.network/subscribe, copied verbatim from
# shared/samples/jetstream-{post,delete,account}.json (SOURCES.md section 1b says where each
# line comes from).
POST_SAMPLE = (
    '{"did":"did:plc:dclwtltrt2ggsryagfzk7dp4","time_us":1783175888090631,"kind":"commit",'
    '"commit":{"rev":"3mptbypcq372f","operation":"create","collection":"app.bsky.feed.post",'
    '"rkey":"3mptbyoeyc22k","record":{"$type":"app.bsky.feed.post",'
    '"createdAt":"2026-07-04T14:38:06.240Z","embed":{"$type":"app.bsky.embed.external",'
    '"external":{"description":"YouTube video by Reuters","thumb":{"$type":"blob","ref":'
    '{"$link":"bafkreias7oxbr6swsuggccmtnqpoeami4jza5x4w3urltn6gzhqf4k6k2e"},'
    '"mimeType":"image/jpeg","size":119635},"title":"What does America\'s 250th anniversary '
    'mean to Native Americans?","uri":"https://www.youtube.com/watch?v=V5lDo-jw8mA"}},'
    '"facets":[{"features":[{"$type":"app.bsky.richtext.facet#link",'
    '"uri":"https://www.youtube.com/watch?v=V5lDo-jw8mA"}],"index":{"byteEnd":31,"byteStart":0}}],'
    '"langs":["en"],"text":"www.youtube.com/watch?v=V5lD..."},'
    '"cid":"bafyreiapzyf65cmq55jklpnrihiygze2jmmdqvvkwqeiomd72pbp2iazuu"}}'
)
DELETE_SAMPLE = (
    '{"did":"did:plc:3xnadku4kemqnycbweqnvgzx","time_us":1779719009153272,"kind":"commit",'
    '"commit":{"rev":"3mmoojpae7c2e","operation":"delete","collection":"org.hypercerts.claim.'
    'activity","rkey":"3mmontn3gnc2e"}}'
)
ACCOUNT_SAMPLE = (
    '{"did":"did:plc:g4ut2w5755qxi3fe7mfs72p4","time_us":1779719010272410,"kind":"account",'
    '"account":{"active":true,"did":"did:plc:g4ut2w5755qxi3fe7mfs72p4","seq":30340180351,'
    '"time":"2026-05-25T14:23:29.950Z"}}'
)
SAMPLE_DID = "did:plc:dclwtltrt2ggsryagfzk7dp4"
SAMPLE_RKEY = "3mptbyoeyc22k"
SAMPLE_TIME_US = 1783175888090631

T0 = 1783176000000000  # time_us of the variations below
REWIND = timedelta(seconds=2)
REWIND_US = 2_000_000
WAIT = 5.0  # the most any condition may take; they normally hold within milliseconds

_REPO = Path(__file__).resolve().parents[1]


def sample(**changes: Any) -> dict[str, Any]:
    """The real post capture as a dict, with top-level or `commit` fields changed."""
    data: dict[str, Any] = json.loads(POST_SAMPLE)
    for name, value in changes.items():
        if name in ("did", "time_us", "kind"):
            data[name] = value
        else:
            data["commit"][name] = value
    return data


def post_msg(n: int, *, text: str | None = None, cid: str | None = None, **record: Any) -> str:
    """A post create like the real capture: rkey `post<n>`, time_us T0 + n."""
    data = sample(time_us=T0 + n, rkey=f"post{n:04d}", cid=cid or f"bafycid{n}")
    data["commit"]["record"] = {
        "$type": "app.bsky.feed.post",
        "createdAt": "2026-07-04T14:40:00.000Z",
        "langs": ["nl"],
        "text": f"post {n} over de bieb" if text is None else text,
        **record,
    }
    return json.dumps(data)


def rkey_of(post: Post) -> str:
    return post.id.rsplit("/", 1)[1]


# --- a local Jetstream --------------------------------------------------------------------------


@dataclass
class Conn:
    """What the server does on one connection: wait for `gate` (if any), send `messages`, then
    hold the connection open, close it cleanly, or drop the TCP connection without a close."""

    messages: list[str | bytes] = field(default_factory=list)
    then: Literal["hold", "close", "drop"] = "hold"
    gate: threading.Event | None = None


class JetstreamServer:
    """A websocket server on 127.0.0.1 that plays one `Conn` script per connection, in order
    (then holds further connections open, silent), and records each connection's query."""

    def __init__(self, *scripts: Conn) -> None:
        self._scripts = deque(scripts)
        self.queries: list[dict[str, list[str]]] = []
        self.sent = 0
        self.closed = 0
        self._cond = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self._server = serve(self._handle, "127.0.0.1", 0)
        port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/subscribe"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._cond:  # open every gate so no handler waits for ever
            for script in self._scripts:
                if script.gate is not None:
                    script.gate.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join(WAIT)

    def wait(self, predicate: Callable[[], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), "the server never got there"

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        with self._cond:
            self.queries.append(parse_qs(urlsplit(ws.request.path).query))
            script = self._scripts.popleft() if self._scripts else Conn()
            self._cond.notify_all()
        try:
            if script.gate is not None:
                script.gate.wait(WAIT)
            for message in script.messages:
                ws.send(message)
                with self._cond:
                    self.sent += 1
                    self._cond.notify_all()
            if script.then == "close":
                ws.close()
            elif script.then == "drop":
                ws.socket.shutdown(socket.SHUT_RDWR)
                ws.socket.close()
            else:
                for _ in ws:  # until the client (or the server's shutdown) closes it
                    pass
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self._cond:
                self.closed += 1
                self._cond.notify_all()


def unused_url() -> str:
    """A ws:// URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/subscribe"


class Poller:
    """Polls a source as the daemon does: hands back the cursor it stored from the last batch."""

    def __init__(self, source: JetstreamSource, cursor: str | None = None) -> None:
        self.source = source
        self.cursor = cursor
        self.posts: list[Post] = []

    def poll(self) -> Batch:
        batch = self.source.fetch(self.cursor)
        if batch.cursor is not None:
            self.cursor = batch.cursor
        self.posts.extend(batch.posts)
        return batch


@pytest.fixture
def make_source() -> Iterator[Callable[..., JetstreamSource]]:
    made: list[JetstreamSource] = []

    def make(*instances: str, **kwargs: Any) -> JetstreamSource:
        kwargs.setdefault("rewind", REWIND)
        kwargs.setdefault("backoff_base", 0.01)
        kwargs.setdefault("backoff_max", 0.05)
        kwargs.setdefault("rng", random.Random(7))
        source = JetstreamSource(instances, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()
        assert not source.running


def until(source: JetstreamSource, predicate: Callable[[], bool]) -> None:
    assert source.wait_for(predicate, WAIT), f"the source never got there: {source.stats()}"


def started(source: JetstreamSource, cursor: str | None = None) -> Poller:
    """A poller whose first fetch (which starts the socket thread) has returned nothing yet."""
    poller = Poller(source, cursor)
    first = poller.poll()
    assert first.posts == [] and first.cursor is None
    return poller


# --- posts ----------------------------------------------------------------------------------


def test_a_real_post_message_becomes_a_post_that_follows_the_schema(
    make_source: Callable[..., JetstreamSource],
) -> None:
    gate = threading.Event()
    with JetstreamServer(Conn([POST_SAMPLE], gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 1)
        batch = poller.poll()

    (post,) = batch.posts
    assert post.id == f"bluesky:at://{SAMPLE_DID}/app.bsky.feed.post/{SAMPLE_RKEY}"
    assert post.source == "jetstream"
    assert post.text == "www.youtube.com/watch?v=V5lD..."
    assert post.created_at == datetime(2026, 7, 4, 14, 38, 6, 240000, tzinfo=UTC)
    assert post.lang == "en"
    assert post.url == f"https://bsky.app/profile/{SAMPLE_DID}/post/{SAMPLE_RKEY}"
    assert post.author is not None
    assert post.author.handle == SAMPLE_DID
    assert post.author.followers is None
    assert post.reply_to is None
    assert post.geo is None and post.engagement is None
    assert json.loads(batch.cursor or "") == {"time_us": SAMPLE_TIME_US}
    assert batch.skipped == 0 and batch.more is False
    jsonschema.Draft202012Validator(post_schema()).validate(post.to_dict())
    assert Post.from_dict(post.to_dict()) == post


def test_a_reply_points_at_its_parent_by_its_bluesky_id(
    make_source: Callable[..., JetstreamSource],
) -> None:
    parent = "at://did:plc:parent/app.bsky.feed.post/3kparent"
    reply = {"root": {"uri": parent, "cid": "bafyroot"}, "parent": {"uri": parent, "cid": "x"}}
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(1, reply=reply, langs=[])], gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 1)
        (post,) = poller.poll().posts

    assert post.reply_to == f"bluesky:{parent}"
    assert post.lang is None


def test_deletes_account_events_updates_and_other_collections_are_ignored(
    make_source: Callable[..., JetstreamSource],
) -> None:
    like = sample(collection="app.bsky.feed.like", rkey="3like")
    update = sample(operation="update")
    identity = {"did": SAMPLE_DID, "time_us": T0, "kind": "identity", "identity": {"seq": 1}}
    post_delete = sample(operation="delete", time_us=T0 + 1)
    del post_delete["commit"]["record"], post_delete["commit"]["cid"]
    messages: list[str | bytes] = [
        DELETE_SAMPLE,
        ACCOUNT_SAMPLE,
        json.dumps(like),
        json.dumps(update),
        json.dumps(identity),
        json.dumps(post_delete),
        post_msg(2),
    ]
    gate = threading.Event()
    with JetstreamServer(Conn(messages, gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == len(messages))
        batch = poller.poll()

    assert [rkey_of(post) for post in batch.posts] == ["post0002"]
    assert batch.skipped == 0
    assert source.malformed == 0
    assert source.posts == 1


def test_a_duplicated_event_yields_one_post(make_source: Callable[..., JetstreamSource]) -> None:
    gate = threading.Event()
    messages: list[str | bytes] = [post_msg(1), post_msg(1), post_msg(2), post_msg(1)]
    with JetstreamServer(Conn(messages, gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 4)
        batch = poller.poll()

    assert [rkey_of(post) for post in batch.posts] == ["post0001", "post0002"]
    assert source.duplicates == 2
    assert json.loads(batch.cursor or "") == {"time_us": T0 + 2}


def test_an_event_replayed_after_a_reconnect_is_not_delivered_twice(
    make_source: Callable[..., JetstreamSource],
) -> None:
    gate, later = threading.Event(), threading.Event()
    scripts = (
        Conn([post_msg(1), post_msg(2)], then="close", gate=gate),
        Conn([post_msg(2), post_msg(3)], gate=later),  # the rewound seconds, then new ones
    )
    with JetstreamServer(*scripts) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 2)
        before = poller.poll()
        later.set()
        until(source, lambda: source.received == 4)
        after = poller.poll()

    assert [rkey_of(post) for post in before.posts] == ["post0001", "post0002"]
    assert [rkey_of(post) for post in after.posts] == ["post0003"]
    assert source.duplicates == 1


def test_the_first_connection_resumes_rewind_before_the_stored_cursor(
    make_source: Callable[..., JetstreamSource],
) -> None:
    with JetstreamServer() as server:
        source = make_source(server.url)
        started(source, json.dumps({"time_us": SAMPLE_TIME_US}))
        server.wait(lambda: len(server.queries) == 1)

    assert server.queries[0] == {
        "wantedCollections": ["app.bsky.feed.post"],
        "cursor": [str(SAMPLE_TIME_US - REWIND_US)],
    }


def test_without_a_stored_cursor_it_starts_live(
    make_source: Callable[..., JetstreamSource],
) -> None:
    with JetstreamServer() as server:
        source = make_source(server.url)
        started(source, None)
        server.wait(lambda: len(server.queries) == 1)

    assert server.queries[0] == {"wantedCollections": ["app.bsky.feed.post"]}


@pytest.mark.parametrize("then", ["close", "drop"])
def test_a_dropped_connection_resumes_on_the_next_instance_rewind_before_the_last_event(
    make_source: Callable[..., JetstreamSource], then: Literal["close", "drop"]
) -> None:
    gate = threading.Event()
    first = JetstreamServer(Conn([post_msg(1), post_msg(2)], then=then, gate=gate))
    # The next instance replays the rewound seconds (post 2 again) and goes on.
    second = JetstreamServer(Conn([post_msg(2), post_msg(3)]))
    with first, second:
        source = make_source(first.url, second.url)
        poller = started(source, json.dumps({"time_us": T0}))
        gate.set()
        until(source, lambda: source.received == 4)
        batch = poller.poll()
        assert source.reconnects == 1
        assert source.instance == second.url

    assert first.queries[0]["cursor"] == [str(T0 - REWIND_US)]
    assert len(second.queries) == 1
    assert second.queries[0]["cursor"] == [str(T0 + 2 - REWIND_US)]
    assert second.queries[0]["wantedCollections"] == ["app.bsky.feed.post"]
    assert [rkey_of(post) for post in batch.posts] == ["post0001", "post0002", "post0003"]
    assert json.loads(batch.cursor or "") == {"time_us": T0 + 3}


def test_with_one_instance_it_reconnects_to_the_same_one(
    make_source: Callable[..., JetstreamSource],
) -> None:
    gate = threading.Event()
    scripts = (Conn([post_msg(1)], then="drop", gate=gate), Conn([post_msg(2)]))
    with JetstreamServer(*scripts) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 2)
        batch = poller.poll()

    assert [query.get("cursor") for query in server.queries] == [None, [str(T0 + 1 - REWIND_US)]]
    assert [rkey_of(post) for post in batch.posts] == ["post0001", "post0002"]


def test_a_silent_connection_is_taken_as_stalled_and_replaced(
    make_source: Callable[..., JetstreamSource],
) -> None:
    with JetstreamServer(Conn([])) as stalled, JetstreamServer(Conn([post_msg(1)])) as live:
        source = make_source(stalled.url, live.url, idle_timeout=0.1)
        poller = started(source)
        until(source, lambda: source.received == 1)
        batch = poller.poll()
        assert source.last_error is not None and "no message for 0.1s" in source.last_error
        assert source.instance == live.url

    assert [rkey_of(post) for post in batch.posts] == ["post0001"]


# --- a slow consumer ------------------------------------------------------------------------


def test_a_full_queue_drops_the_oldest_posts_and_never_blocks_the_socket(
    make_source: Callable[..., JetstreamSource], caplog: pytest.LogCaptureFixture
) -> None:
    total, size = 250, 100
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(n) for n in range(total)], gate=gate)) as server:
        source = make_source(server.url, queue_size=size)
        poller = started(source)
        gate.set()
        # No fetch while the server sends: every message is read all the same.
        server.wait(lambda: server.sent == total)
        until(source, lambda: source.received == total)
        assert source.stats()["queued"] == size
        with caplog.at_level(logging.WARNING, logger="listener.sources.jetstream"):
            batch = poller.poll()

    assert source.dropped == total - size
    assert [rkey_of(post) for post in batch.posts] == [
        f"post{n:04d}" for n in range(total - size, total)
    ]
    assert batch.more is False
    assert json.loads(batch.cursor or "") == {"time_us": T0 + total - 1}
    assert any("dropped the 150 oldest posts" in record.message for record in caplog.records)


def test_a_long_queue_is_drained_in_batches(make_source: Callable[..., JetstreamSource]) -> None:
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(n) for n in range(5)], gate=gate)) as server:
        source = make_source(server.url, batch=2)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 5)
        batches = [poller.poll() for _ in range(3)]

    assert [len(batch.posts) for batch in batches] == [2, 2, 1]
    assert [batch.more for batch in batches] == [True, True, False]
    assert [json.loads(batch.cursor or "")["time_us"] for batch in batches] == [
        T0 + 1,
        T0 + 3,
        T0 + 4,
    ]
    assert [rkey_of(post) for post in poller.posts] == [f"post{n:04d}" for n in range(5)]


def test_a_batch_the_daemon_did_not_save_is_delivered_again(
    make_source: Callable[..., JetstreamSource],
) -> None:
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(1), post_msg(2)], gate=gate)) as server:
        source = make_source(server.url)
        started(source)
        gate.set()
        until(source, lambda: source.received == 2)
        first = source.fetch(None)
        again = source.fetch(None)  # the store kept its old cursor: the save failed
        confirmed = source.fetch(again.cursor)

    assert [rkey_of(post) for post in first.posts] == ["post0001", "post0002"]
    assert again.posts == first.posts
    assert again.cursor == first.cursor
    assert confirmed.posts == [] and confirmed.cursor is None


# --- malformed messages -----------------------------------------------------------------------


def test_malformed_messages_are_skipped_and_counted(
    make_source: Callable[..., JetstreamSource],
) -> None:
    no_text = json.loads(post_msg(3))
    del no_text["commit"]["record"]["text"]
    no_record = json.loads(post_msg(4))
    del no_record["commit"]["record"]
    messages: list[str | bytes] = [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"kind": "commit", "did": SAMPLE_DID}),  # no time_us
        json.dumps(no_text),
        json.dumps(no_record),
        b"\x28\xb5\x2f\xfd\x00\xff",  # a zstd frame: we never ask for compression
        post_msg(5),
    ]
    gate = threading.Event()
    with JetstreamServer(Conn(messages, gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == len(messages))
        batch = poller.poll()
        after = poller.poll()

    assert [rkey_of(post) for post in batch.posts] == ["post0005"]
    assert batch.skipped == 6
    assert source.malformed == 6
    assert after.skipped == 0


def test_a_post_with_an_unreadable_created_at_keeps_the_time_jetstream_saw_it(
    make_source: Callable[..., JetstreamSource],
) -> None:
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(1, createdAt="yesterday")], gate=gate)) as server:
        source = make_source(server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 1)
        (post,) = poller.poll().posts

    assert post.created_at == datetime.fromtimestamp((T0 + 1) / 1_000_000, tz=UTC)


# --- failures and shutdown -------------------------------------------------------------------


def test_a_fetch_raises_a_transient_error_when_no_instance_was_reachable(
    make_source: Callable[..., JetstreamSource],
) -> None:
    source = make_source(unused_url(), unused_url())
    poller = started(source)
    until(source, lambda: source.reconnects >= 2)

    with pytest.raises(SourceError) as caught:
        poller.poll()

    assert caught.value.transient is True
    assert "no instance reachable" in str(caught.value)
    assert not source.connected


def test_a_fetch_after_failures_that_reached_an_instance_only_logs(
    make_source: Callable[..., JetstreamSource], caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    with JetstreamServer(Conn([post_msg(1)], gate=gate)) as server:
        source = make_source(unused_url(), server.url)
        poller = started(source)
        gate.set()
        until(source, lambda: source.received == 1)
        with caplog.at_level(logging.WARNING, logger="listener.sources.jetstream"):
            batch = poller.poll()

    assert [rkey_of(post) for post in batch.posts] == ["post0001"]
    assert any("failed connects since the last fetch" in r.message for r in caplog.records)


def test_close_ends_the_thread_promptly(make_source: Callable[..., JetstreamSource]) -> None:
    with JetstreamServer() as server:
        source = make_source(server.url, close_timeout=2.0)
        started(source)
        until(source, lambda: source.connected)
        assert source.running

        began = time.monotonic()
        source.close()
        took = time.monotonic() - began

        assert not source.running
        assert took < 1.0
        server.wait(lambda: server.closed == 1)
    assert source.fetch(None).posts == []  # closed: nothing more, and no new thread
    assert not source.running


def test_close_during_a_long_back_off_ends_the_thread_promptly(
    make_source: Callable[..., JetstreamSource],
) -> None:
    source = make_source(unused_url(), backoff_base=30.0, backoff_max=30.0)
    started(source)
    until(source, lambda: source.reconnects == 1)  # now waiting 15 to 30 seconds

    began = time.monotonic()
    source.close()

    assert time.monotonic() - began < 1.0
    assert not source.running


# --- configuration -----------------------------------------------------------------------------


def test_the_subscribe_url_asks_for_posts_and_keeps_the_instance_query() -> None:
    assert subscribe_url("jetstream1.us-east.bsky.network", None) == (
        "wss://jetstream1.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post"
    )
    assert subscribe_url("wss://js.example/subscribe?maxMessageSizeBytes=9&cursor=1", 42) == (
        "wss://js.example/subscribe?maxMessageSizeBytes=9"
        "&wantedCollections=app.bsky.feed.post&cursor=42"
    )
    with pytest.raises(ValueError, match="bad instance URL"):
        subscribe_url("https://jetstream1.us-east.bsky.network/subscribe", None)


def test_build_makes_one_source_from_the_settings(tmp_path: Path) -> None:
    settings = JetstreamSettings.model_validate(
        {"enabled": True, "instances": ["ws://127.0.0.1:1/subscribe"], "rewind": "3s"}
    )
    (source,) = build(
        settings, searches=[], organisations={}, base_dir=tmp_path, client=None, env={}
    )

    assert (source.key, source.name) == ("jetstream", "jetstream")
    assert source.interval == timedelta(seconds=5)
    assert source.rewind_us == 3_000_000
    assert source.queue_size == 10_000
    assert not source.running  # nothing connects before the first fetch


def test_build_sources_makes_it_only_when_enabled(tmp_path: Path) -> None:
    off = MainFile.model_validate({"sources": {"jetstream": {}}})
    on = MainFile.model_validate({"sources": {"jetstream": {"enabled": True}}})

    assert build_sources(off, [], {}, tmp_path, env={}) == []
    (source,) = build_sources(on, [], {}, tmp_path, env={})
    assert isinstance(source, JetstreamSource)
    assert source.instances[0] == "wss://jetstream1.us-east.bsky.network/subscribe"
