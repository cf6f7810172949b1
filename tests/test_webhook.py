"""The inbound webhook: POST /ingest on the daemon's HTTP port, against a real server on
127.0.0.1 with httpx as the client."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlmodel import Session, select

from listener.config.model import WebhookSource
from listener.httpserver import HttpServer
from listener.post import Post
from listener.sources import SourceUnavailable
from listener.sources.webhook import IngestEndpoint, build, sign
from listener.store import Decided, PostRow, Store
from tests.support.configs import ROOT
from tests.support.schemas import post_schema

TOKEN = "tok-3f9a1c0d8e7b6a5f4e3d2c1b"
SECRET = "sec-9b8a7f6e5d4c3b2a1f0e9d8c"
ENV = {"LISTENER_WEBHOOK_TOKEN": TOKEN, "LISTENER_WEBHOOK_SECRET": SECRET}
POST_SCHEMA = ROOT.parent / "shared" / "schemas" / "post.schema.json"


def post(n: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"facebook:{n}",
        "source": "facebook",
        "text": f"bericht {n}: de bieb in Leusden is vandaag dicht?",
        "created_at": "2026-11-20T12:00:00Z",
        "url": f"https://facebook.com/posts/{n}",
        "author": {"handle": "lezer", "name": "Een Lezer", "location": "Leusden"},
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def body(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()


def jsonl(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


class Recorder:
    """A fake `ingest`: records every batch; every post is new unless it was seen before."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[Post]] = []
        self.seen: set[str] = set()
        self.fail = fail

    def __call__(self, posts: list[Post]) -> int:
        if self.fail:
            raise RuntimeError(f"database is locked while saving {posts[0].text!r}")
        self.batches.append(posts)
        new = {p.id for p in posts} - self.seen
        self.seen |= new
        return len(new)


class Webhook:
    """A running HttpServer with /ingest, and an httpx client pointed at it."""

    def __init__(self, server: HttpServer, client: httpx.Client, recorder: Recorder) -> None:
        self.server = server
        self.client = client
        self.recorder = recorder

    def post(
        self,
        content: bytes,
        *,
        token: str | None = TOKEN,
        signature: str | None = None,
        content_type: str = "application/json",
        path: str = "/ingest",
    ) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if signature is not None:
            headers["X-Listener-Signature"] = signature
        return self.client.post(path, content=content, headers=headers)


Start = Callable[..., Webhook]


@pytest.fixture
def start() -> Iterator[Start]:
    running: list[tuple[HttpServer, httpx.Client]] = []

    def _start(
        env: dict[str, str] | None = None,
        ingest: Callable[[list[Post]], int] | None = None,
        max_bytes: int = 1_000_000,
        **server_options: Any,
    ) -> Webhook:
        recorder = Recorder()
        endpoint = IngestEndpoint(
            WebhookSource(enabled=True, max_bytes=max_bytes),
            ENV if env is None else env,
            ingest or recorder,
        )
        server = HttpServer("127.0.0.1", 0, {("*", "/ingest"): endpoint.handle}, **server_options)
        server.start()
        client = httpx.Client(base_url=server.url, timeout=5)
        running.append((server, client))
        return Webhook(server, client, recorder)

    yield _start
    for server, client in running:
        client.close()
        server.stop()


@pytest.fixture
def hook(start: Start) -> Webhook:
    return start()


# --- authentication ---------------------------------------------------------------------------


def test_a_post_with_the_right_bearer_token_is_accepted(hook: Webhook) -> None:
    response = hook.post(body(post(1)))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"accepted": 1, "new": 1}
    assert [[p.id for p in batch] for batch in hook.recorder.batches] == [["facebook:1"]]


@pytest.mark.parametrize("token", ["wrong-token", TOKEN[:-1], TOKEN + "x", None])
def test_a_wrong_or_missing_token_gets_401_and_nothing_is_ingested(
    hook: Webhook, token: str | None
) -> None:
    response = hook.post(body(post(1)), token=token)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["error"]
    assert hook.recorder.batches == []


def test_a_body_signed_with_the_secret_is_accepted_without_a_token(hook: Webhook) -> None:
    content = body(post(1), post(2))

    response = hook.post(content, token=None, signature=sign(SECRET, content))

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "new": 2}


def test_a_signature_is_accepted_when_only_the_secret_is_configured(start: Start) -> None:
    hook = start(env={"LISTENER_WEBHOOK_SECRET": SECRET})
    content = body(post(1))

    assert hook.post(content, token=None, signature=sign(SECRET, content)).status_code == 200
    refused = hook.post(content, token=TOKEN)  # no token is configured: a bearer proves nothing
    assert refused.status_code == 401
    assert "Bearer" not in refused.json()["error"]
    assert "X-Listener-Signature: sha256=" in refused.json()["error"]


def test_a_tampered_body_with_the_original_signature_is_rejected(hook: Webhook) -> None:
    original = body(post(1))
    tampered = body(post(1, text="iets heel anders"))

    response = hook.post(tampered, token=None, signature=sign(SECRET, original))

    assert response.status_code == 401
    assert hook.recorder.batches == []


def test_a_signature_made_with_another_secret_is_rejected(hook: Webhook) -> None:
    content = body(post(1))
    assert hook.post(content, token=None, signature=sign("not-it", content)).status_code == 401
    assert hook.post(content, token=None, signature="sha256=zz").status_code == 401
    assert hook.post(content, token=None, signature="md5=" + "0" * 32).status_code == 401


@pytest.mark.parametrize(
    "env",
    [{}, {"LISTENER_WEBHOOK_TOKEN": ""}, {"LISTENER_WEBHOOK_TOKEN": "  ", "OTHER": "x"}],
)
def test_with_neither_token_nor_secret_the_webhook_is_unavailable(env: dict[str, str]) -> None:
    settings = WebhookSource(enabled=True)

    with pytest.raises(SourceUnavailable) as raised:
        build(settings, searches=[], organisations={}, base_dir=Path("."), client=None, env=env)
    assert str(raised.value) == "webhook: set LISTENER_WEBHOOK_TOKEN or LISTENER_WEBHOOK_SECRET"
    with pytest.raises(SourceUnavailable):
        IngestEndpoint(settings, env, Recorder())


def test_build_returns_no_polled_sources_when_a_credential_is_set() -> None:
    for env in ({"LISTENER_WEBHOOK_TOKEN": TOKEN}, {"LISTENER_WEBHOOK_SECRET": SECRET}):
        sources = build(
            WebhookSource(enabled=True),
            searches=[],
            organisations={},
            base_dir=Path("."),
            client=None,
            env=env,
        )
        assert sources == []


def test_the_environment_variable_names_come_from_the_settings() -> None:
    settings = WebhookSource(token_env="HOOK_TOKEN", hmac_secret_env="HOOK_SECRET")
    with pytest.raises(SourceUnavailable, match="set HOOK_TOKEN or HOOK_SECRET"):
        IngestEndpoint(settings, ENV, Recorder())
    IngestEndpoint(settings, {"HOOK_SECRET": SECRET}, Recorder())


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "ids"),
    [
        (json.dumps(post(1)).encode(), "application/json", ["facebook:1"]),
        (
            body(post(1), post(2), post(3)),
            "application/json",
            ["facebook:1", "facebook:2", "facebook:3"],
        ),
        (jsonl(post(1), post(2)), "application/x-ndjson", ["facebook:1", "facebook:2"]),
        (
            jsonl(post(1)) + b"\n\n" + jsonl(post(2)),
            "application/x-ndjson; charset=utf-8",
            ["facebook:1", "facebook:2"],
        ),
    ],
    ids=["one object", "an array", "jsonl", "jsonl with blank lines"],
)
def test_one_object_an_array_and_jsonl_are_each_accepted_as_one_batch(
    hook: Webhook, content: bytes, content_type: str, ids: list[str]
) -> None:
    response = hook.post(content, content_type=content_type)

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(ids), "new": len(ids)}
    assert len(hook.recorder.batches) == 1  # ingest is called once, with every post
    assert [p.id for p in hook.recorder.batches[0]] == ids


def test_posts_keep_their_own_source_and_every_field(hook: Webhook) -> None:
    sent = post(7, lang="nl", geo={"lat": 52.13, "lon": 5.43}, engagement={"likes": 3})

    assert hook.post(body(sent)).status_code == 200

    (received,) = hook.recorder.batches[0]
    assert received.source == "facebook"
    assert received.geo is not None and received.geo.lat == 52.13
    assert received.to_dict()["author"]["location"] == "Leusden"


def test_sent_and_ingested_posts_validate_against_the_post_schema(hook: Webhook) -> None:
    schema = post_schema()
    sent = [post(1), post(2, lang="nl", geo={"lat": 52.1, "lon": 5.4}, reply_to="facebook:1")]
    for item in sent:
        jsonschema.validate(item, schema)

    assert hook.post(body(*sent)).status_code == 200

    for received in hook.recorder.batches[0]:
        jsonschema.validate(received.to_dict(), schema)
    with pytest.raises(jsonschema.ValidationError):  # what the webhook refuses, so does the schema
        jsonschema.validate(post(3, source=None), schema)


def test_a_repeated_post_is_accepted_but_not_new(hook: Webhook) -> None:
    assert hook.post(body(post(1))).json() == {"accepted": 1, "new": 1}
    assert hook.post(body(post(1), post(2))).json() == {"accepted": 2, "new": 1}


def test_an_empty_array_is_accepted_and_nothing_is_ingested(hook: Webhook) -> None:
    assert hook.post(b"[]").json() == {"accepted": 0, "new": 0}
    assert hook.recorder.batches == []


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (
            body(post(0), post(1), post(2), post(3, text=None), post(4)),
            "application/json",
            "post 3: text: required field missing",
        ),
        (
            jsonl(post(1), post(2), post(3, source=None)),
            "application/x-ndjson",
            "line 3: source: required field missing",
        ),
        (
            body(post(0), post(1, source="")),
            "application/json",
            "post 1: source: must not be empty",
        ),
        (
            json.dumps(post(1, created_at="gisteren")).encode(),
            "application/json",
            "post: created_at: not an ISO 8601 date-time: 'gisteren'",
        ),
        (
            body(post(0), ["not", "a", "post"]),
            "application/json",
            "post 1: a post must be a JSON object",
        ),
        (jsonl(post(1)) + b'{"id": \n', "application/x-ndjson", "line 2 is not JSON"),
    ],
    ids=["array", "jsonl", "empty source", "bad date", "not an object", "jsonl not json"],
)
def test_a_bad_post_among_good_ones_gets_400_naming_it_and_nothing_is_ingested(
    hook: Webhook, content: bytes, content_type: str, error: str
) -> None:
    response = hook.post(content, content_type=content_type)

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert hook.recorder.batches == []


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (b"this is not json", "application/json", "body is not JSON: Expecting value"),
        (b'{"id": "x", ', "application/json", "body is not JSON"),
        (
            jsonl(post(1), post(2)),
            "application/json",
            "body is not JSON: Extra data at line 2 column 1; for one post per line send "
            "Content-Type: application/x-ndjson",
        ),
        (b"", "application/json", "body is empty"),
        (b'"a string"', "application/json", "body is a JSON string"),
        (b"\xff\xfe{}", "application/json", "body is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "body is not JSON"),
    ],
    ids=["text", "truncated", "jsonl as json", "empty", "string", "not utf-8", "too deep"],
)
def test_a_body_that_is_not_json_gets_400_saying_so(
    start: Start, content: bytes, content_type: str, error: str
) -> None:
    hook = start(max_bytes=1_000_000)

    response = hook.post(content, content_type=content_type)

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert hook.recorder.batches == []


# --- limits, methods and paths -----------------------------------------------------------------


def test_a_body_over_max_bytes_gets_413_and_nothing_is_ingested(start: Start) -> None:
    hook = start(max_bytes=1_000)
    small, large = body(post(1)), body(*(post(n) for n in range(20)))
    assert len(small) < 1_000 < len(large)

    assert hook.post(small).status_code == 200
    response = hook.post(large)

    assert response.status_code == 413
    assert "the limit is 1000" in response.json()["error"]
    assert len(hook.recorder.batches) == 1


def test_a_content_length_over_the_server_limit_gets_413_before_the_body_is_read(
    start: Start,
) -> None:
    hook = start(max_body=10_000)
    host, port = hook.server.address
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(
            b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Length: 999999999\r\n\r\n"
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk

    reply_text = reply.decode()

    assert reply_text.startswith("HTTP/1.0 413")
    assert "application/json" in reply_text
    assert reply_text.endswith('{"error": "body too large: the limit is 10000 bytes"}')
    assert hook.recorder.batches == []


def test_a_post_without_content_length_gets_411(hook: Webhook) -> None:
    def chunks() -> Iterator[bytes]:
        yield body(post(1))

    response = hook.client.post(
        "/ingest", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert response.status_code == 411
    assert hook.recorder.batches == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_any_method_but_post_gets_405(hook: Webhook, method: str) -> None:
    response = hook.client.request(method, "/ingest", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 405
    assert response.json() == {"error": "/ingest takes POST"}


def test_a_route_for_one_method_answers_405_with_allow_for_others() -> None:
    routes = {("GET", "/healthz"): lambda method, headers, body: (200, {"ok": True})}
    with HttpServer("127.0.0.1", 0, routes) as server:
        assert httpx.get(server.url + "/healthz").json() == {"ok": True}
        assert httpx.head(server.url + "/healthz").status_code == 200
        response = httpx.post(server.url + "/healthz", content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_an_unknown_path_gets_404(hook: Webhook) -> None:
    for path in ("/", "/ingest/", "/ingestion", "/healthz"):
        response = hook.post(body(post(1)), path=path)
        assert response.status_code == 404, path
        assert response.json()["error"] == f"no such path: {path}"
    assert hook.recorder.batches == []


def test_a_query_string_does_not_change_the_route(hook: Webhook) -> None:
    assert hook.post(body(post(1)), path="/ingest?from=zapier").status_code == 200


# --- storing -----------------------------------------------------------------------------------


def test_when_ingest_fails_the_caller_gets_503_and_can_retry(start: Start) -> None:
    failing = Recorder(fail=True)
    hook = start(ingest=failing)

    response = hook.post(body(post(1), post(2)))

    assert response.status_code == 503
    assert response.json() == {"error": "could not store the posts, try again"}


def test_a_handler_that_crashes_gets_500_without_its_message_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def crash(method: str, headers: object, body: bytes) -> tuple[int, dict[str, Any]]:
        raise ValueError(f"cannot handle {body!r}")

    caplog.set_level(logging.DEBUG, logger="listener")
    with HttpServer("127.0.0.1", 0, {("POST", "/boom"): crash}) as server:
        response = httpx.post(server.url + "/boom", content=b"private words")

    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert "ValueError" in caplog.text
    assert "private words" not in caplog.text


def decision() -> dict[str, Any]:
    return {"org": None, "branch": None, "urgency": "none", "score": 0.0}


def test_with_a_real_store_a_batch_is_saved_whole_or_not_at_all(
    start: Start, tmp_path: Path
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'listener.db'}")
    broken: set[str] = set()

    def ingest(posts: list[Post]) -> int:
        decided = [
            Decided(p, {"org": None} if p.id in broken else decision()) for p in posts
        ]  # a decision without its fields makes save_batch fail half-way through the batch
        return store.save_batch("webhook", None, decided).new_posts

    try:
        hook = start(ingest=ingest)
        assert hook.post(body(post(1), post(2))).json() == {"accepted": 2, "new": 2}
        assert hook.post(body(post(2), post(3))).json() == {"accepted": 2, "new": 1}

        broken.add("facebook:5")
        response = hook.post(body(post(4), post(5), post(6)))
        assert response.status_code == 503
        assert sorted(store.known_post_ids(f"facebook:{n}" for n in range(1, 7))) == [
            "facebook:1",
            "facebook:2",
            "facebook:3",
        ]  # post 4 was saved before post 5 failed, and rolled back with it

        broken.clear()
        assert hook.post(body(post(4), post(5), post(6))).json() == {"accepted": 3, "new": 3}
        with Session(store.engine) as session:
            rows = session.exec(select(PostRow)).all()
        assert sorted(row.id for row in rows) == [f"facebook:{n}" for n in range(1, 7)]
        assert {row.source for row in rows} == {"facebook"}
    finally:
        store.close()


# --- logs and lifecycle -----------------------------------------------------------------------


def test_the_token_the_secret_and_the_body_never_reach_the_logs(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="listener")
    hook = start(ingest=Recorder(fail=True))
    ok = start()
    good = body(post(1))
    bad_date = body(post(2, created_at="GEHEIM-datum"))

    ok.post(good)
    ok.post(good, token=None, signature=sign(SECRET, good))
    ok.post(good, token=TOKEN + "x", path="/ingest?token=" + TOKEN)
    ok.post(bad_date)
    ok.post(good, token=None, signature=sign(SECRET, good) + "0")
    hook.post(good)  # ingest fails, with a post's text in its message
    ok.post(jsonl(post(3)), content_type="application/json")

    logged = "\n".join(
        f"{r.getMessage()}\n{r.exc_text or ''}"
        for r in caplog.records
        if r.name.startswith("listener")
    )
    assert "ingest:" in logged and "POST /ingest" in logged  # there are logs to look at
    for secret in (TOKEN, SECRET, sign(SECRET, good)[7:]):
        assert secret not in logged
    for text in ("bieb in Leusden", "GEHEIM", "facebook:1", "lezer"):
        assert text not in logged
    assert TOKEN not in repr(ok.server.routes) and SECRET not in repr(ok.server.routes)


def test_stop_returns_promptly_and_frees_the_port(start: Start) -> None:
    hook = start()
    host, port = hook.server.address
    assert hook.post(body(post(1))).status_code == 200

    began = time.monotonic()
    hook.server.stop()

    assert time.monotonic() - began < 1.0
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://{host}:{port}/ingest", content=b"{}")
    hook.server.stop()  # a second stop is harmless
