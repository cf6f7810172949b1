"""A small Reddit on 127.0.0.1: the OAuth token endpoint and listings, for the Reddit source.

- `POST /api/v1/access_token` with the app's id and secret as basic auth and
  `grant_type=client_credentials` answers `{"access_token": "token-1", "token_type": "bearer",
  "expires_in": 86400, "scope": "*"}` (numbered tokens); wrong credentials get a 401.
- `GET /search`, `GET /r/<sub>/new` and any other path in `listings` answer a Listing of the
  posts given for that path (newest first), `limit` at a time, continuing after the fullname in
  `after`, with Reddit's `X-Ratelimit-*` headers. A request without a current bearer token gets
  a 401; `revoke_tokens()` makes the tokens handed out so far invalid, and with
  `accept_tokens = False` new ones are refused too.

    with RedditServer({"/r/Amersfoort/new": [link("t3_b", ...), link("t3_a", ...)]}) as server:
        ...
        assert server.requests[1].params["after"] == "t3_b"
"""

from __future__ import annotations

import base64
from typing import Any

from tests.support.jsonapi_server import JsonApiServer, Recorded, Reply

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "s3cret-reddit-client-secret"


def link(
    name: str,
    title: str,
    *,
    created_utc: float = 1_790_000_000.0,
    subreddit: str = "Amersfoort",
    selftext: str = "",
    author: str = "lezer",
    score: int = 3,
    num_comments: int = 1,
) -> dict[str, Any]:
    """A listing child of kind t3 with the fields the source reads (and a few it does not)."""
    short = name.removeprefix("t3_")
    return {
        "kind": "t3",
        "data": {
            "id": short,
            "name": name,
            "title": title,
            "selftext": selftext,
            "author": author,
            "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}",
            "created_utc": created_utc,
            "permalink": f"/r/{subreddit}/comments/{short}/post/",
            "url": f"https://www.reddit.com/r/{subreddit}/comments/{short}/post/",
            "score": score,
            "ups": score,
            "num_comments": num_comments,
            "over_18": False,
        },
    }


class RedditServer(JsonApiServer):
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self,
        listings: dict[str, list[Any]] | None = None,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        expires_in: int = 86400,
    ) -> None:
        self.listings = listings or {}
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.accept_tokens = True  # False: hand out tokens that the listings then refuse
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.ratelimit = {"X-Ratelimit-Used": "1", "X-Ratelimit-Remaining": "599.0"}
        self.ratelimit["X-Ratelimit-Reset"] = "300"
        super().__init__()

    @property
    def token_url(self) -> str:
        return self.url("/api/v1/access_token")

    def revoke_tokens(self) -> None:
        """Make every token handed out so far invalid (as if it expired early)."""
        self.valid.clear()

    def respond(self, recorded: Recorded) -> Reply:
        if recorded.path == "/api/v1/access_token":
            return self._token(recorded)
        if recorded.headers.get("authorization", "").removeprefix("bearer ") not in self.valid:
            return Reply(status=401, body={"message": "Unauthorized", "error": 401})
        if recorded.path not in self.listings:
            return Reply(status=404, body={"message": "Not Found", "error": 404})
        children = self.listings[recorded.path]
        start = 0
        if after := recorded.params.get("after"):
            names = [child["data"]["name"] for child in children]
            start = names.index(after) + 1 if after in names else len(children)
        limit = int(recorded.params.get("limit", "25"))
        page = children[start : start + limit]
        more = start + limit < len(children)
        body = {
            "kind": "Listing",
            "data": {
                "after": page[-1]["data"]["name"] if more and page else None,
                "dist": len(page),
                "modhash": None,
                "geo_filter": "",
                "children": page,
                "before": None,
            },
        }
        return Reply(body=body, headers=dict(self.ratelimit))

    def _token(self, recorded: Recorded) -> Reply:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if (
            recorded.method != "POST"
            or recorded.headers.get("authorization") != f"Basic {expected}"
        ):
            return Reply(status=401, body={"message": "Unauthorized", "error": 401})
        if recorded.form.get("grant_type") != "client_credentials":
            return Reply(body={"error": "unsupported_grant_type"})
        token = f"token-{len(self.issued) + 1}"
        self.issued.append(token)
        if self.accept_tokens:
            self.valid.add(token)
        return Reply(
            body={
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": "*",
            }
        )
