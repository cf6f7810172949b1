"""A small X API v2 recent search on 127.0.0.1, for the X source.

`GET /2/tweets/search/recent` with `Authorization: Bearer <token>` answers the posts given
(newest first, as v2 post objects) whose id is above `since_id`, `max_results` at a time, with
`meta.next_token` while more remain (the token is kept with the request's since_id, as X does),
`includes.users` and `includes.places` for the posts on the page, and X's `x-rate-limit-*`
headers. A wrong token gets X's 401 problem body. The query itself is not interpreted.

    with XServer([tweet("30", "De bieb is dicht"), tweet("20", ...)], users=[user("1", ...)]) as s:
        ...
        assert s.requests[0].params["since_id"] == "10"
"""

from __future__ import annotations

from typing import Any

from tests.support.jsonapi_server import JsonApiServer, Recorded, Reply

BEARER = "AAAAAAAAAAAAAAAAAAAAAtest-x-bearer-token"


def tweet(
    ident: str,
    text: str,
    *,
    author_id: str = "100",
    created_at: str = "2026-09-25T12:00:00.000Z",
    lang: str = "nl",
    **extra: Any,
) -> dict[str, Any]:
    """A v2 post object with the fields the source asks for."""
    return {
        "id": ident,
        "text": text,
        "author_id": author_id,
        "created_at": created_at,
        "lang": lang,
        "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 1, "quote_count": 0},
        **extra,
    }


def user(ident: str, username: str, *, location: str | None = None) -> dict[str, Any]:
    """A v2 user object (user.fields=username,name,location,public_metrics)."""
    found: dict[str, Any] = {
        "id": ident,
        "username": username,
        "name": username.title(),
        "public_metrics": {"followers_count": 42, "following_count": 7, "tweet_count": 99},
    }
    if location is not None:
        found["location"] = location
    return found


class XServer(JsonApiServer):
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self,
        tweets: list[dict[str, Any]] | None = None,
        *,
        users: list[dict[str, Any]] | None = None,
        places: list[dict[str, Any]] | None = None,
        bearer: str = BEARER,
    ) -> None:
        self.tweets = tweets or []
        self.users = users or []
        self.places = places or []
        self.bearer = bearer
        self.ratelimit = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "449"}
        self.ratelimit["x-rate-limit-reset"] = "1790000900"
        super().__init__()

    def respond(self, recorded: Recorded) -> Reply:
        if recorded.headers.get("authorization") != f"Bearer {self.bearer}":
            return Reply(
                status=401,
                body={
                    "title": "Unauthorized",
                    "type": "about:blank",
                    "status": 401,
                    "detail": "Unauthorized",
                },
            )
        if recorded.path != "/2/tweets/search/recent":
            return Reply(status=404, body={"title": "Not Found Error", "status": 404})
        since_id = int(recorded.params.get("since_id", "0"))
        matching = [t for t in self.tweets if int(t["id"]) > since_id]
        start = int(recorded.params.get("next_token", "p0").removeprefix("p"))
        size = int(recorded.params.get("max_results", "10"))
        page = matching[start : start + size]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"] = page[0]["id"]
            meta["oldest_id"] = page[-1]["id"]
        if start + size < len(matching):
            meta["next_token"] = f"p{start + size}"
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
            authors = {t.get("author_id") for t in page}
            place_ids = {t.get("geo", {}).get("place_id") for t in page}
            body["includes"] = {
                "users": [u for u in self.users if u["id"] in authors],
                "places": [p for p in self.places if p["id"] in place_ids],
            }
        return Reply(body=body, headers=dict(self.ratelimit))
