"""A small YouTube Data API v3 `search.list` on 127.0.0.1, for the YouTube source.

`GET /search` with the key in `X-Goog-Api-Key` (or `key=`) answers a `youtube#searchListResponse`
of the videos given (newest first) published at or after `publishedAfter` and, with `location`
and `locationRadius` (km), recorded within that circle; `maxResults` at a time with
`nextPageToken`. A wrong key gets Google's 400 "API key not valid" error. `google_error` builds
the other documented error bodies (quotaExceeded, forbidden, ...) for scripted replies.

    with YouTubeServer([video("v1", "De bieb", "2026-09-25T12:00:00Z", near=(52.15, 5.39))]) as s:
        ...
        assert s.requests[0].params["location"] == "52.155,5.3875"
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from tests.support.jsonapi_server import JsonApiServer, Recorded, Reply

API_KEY = "AIzaSyTest-youtube-api-key-0123456789"


def video(
    video_id: str,
    title: str,
    published_at: str,
    *,
    description: str = "",
    channel_id: str = "UCbiebeemland0000000000",
    channel_title: str = "Bibliotheek Eemland",
    near: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """A video the server knows: its search result, and where it was recorded (or None)."""
    return {
        "result": {
            "kind": "youtube#searchResult",
            "etag": f"etag-{video_id}",
            "id": {"kind": "youtube#video", "videoId": video_id},
            "snippet": {
                "publishedAt": published_at,
                "channelId": channel_id,
                "title": title,
                "description": description,
                "thumbnails": {
                    "default": {
                        "url": f"https://i.ytimg.com/vi/{video_id}/default.jpg",
                        "width": 120,
                        "height": 90,
                    }
                },
                "channelTitle": channel_title,
                "liveBroadcastContent": "none",
                "publishTime": published_at,
            },
        },
        "near": near,
    }


def google_error(code: int, reason: str, message: str, domain: str = "youtube") -> dict[str, Any]:
    """Google's JSON error body, as the YouTube Data API documents it."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


KEY_INVALID = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "errors": [
            {
                "message": "API key not valid. Please pass a valid API key.",
                "domain": "global",
                "reason": "badRequest",
            }
        ],
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "youtube.googleapis.com"},
            }
        ],
    }
}


class YouTubeServer(JsonApiServer):
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(
        self, videos: list[dict[str, Any]] | None = None, *, api_key: str = API_KEY
    ) -> None:
        self.videos = videos or []
        self.api_key = api_key
        super().__init__()

    def respond(self, recorded: Recorded) -> Reply:
        key = recorded.headers.get("x-goog-api-key") or recorded.params.get("key")
        if key != self.api_key:
            return Reply(status=400, body=KEY_INVALID)
        if recorded.path != "/search":
            return Reply(status=404, body=google_error(404, "notFound", "Not Found", "global"))
        params = recorded.params
        found = self.videos
        if after := params.get("publishedAfter"):
            since = _time(after)
            found = [v for v in found if _time(v["result"]["snippet"]["publishedAt"]) >= since]
        if "location" in params:
            lat, lon = (float(part) for part in params["location"].split(","))
            radius = float(params["locationRadius"].removesuffix("km"))
            found = [v for v in found if v["near"] and _km(v["near"], (lat, lon)) <= radius]
        start = int(params.get("pageToken", "page0").removeprefix("page"))
        size = int(params.get("maxResults", "5"))
        page = [v["result"] for v in found[start : start + size]]
        body: dict[str, Any] = {
            "kind": "youtube#searchListResponse",
            "etag": "etag-list",
            "regionCode": params.get("regionCode", "NL"),
            "pageInfo": {"totalResults": len(found), "resultsPerPage": size},
            "items": page,
        }
        if start + size < len(found):
            body["nextPageToken"] = f"page{start + size}"
        return Reply(body=body)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))
