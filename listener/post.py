"""The canonical post: what every source produces and every later stage reads.

It mirrors `post.schema.json` (shared/schemas): one JSON object per line in replay files and in
`listener classify` input. `Post.from_dict` is the one place where untrusted JSON becomes a `Post`;
it raises `PostError` with the field that is wrong, so callers can log and skip one bad post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class PostError(ValueError):
    """A post object that does not follow the canonical schema."""


@dataclass(frozen=True, slots=True)
class Author:
    handle: str | None = None
    name: str | None = None
    location: str | None = None
    followers: int | None = None


@dataclass(frozen=True, slots=True)
class Geo:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Engagement:
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None


@dataclass(frozen=True, slots=True)
class Post:
    id: str
    source: str
    text: str
    created_at: datetime
    url: str | None = None
    lang: str | None = None
    author: Author | None = None
    geo: Geo | None = None
    engagement: Engagement | None = None
    reply_to: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Post:
        """Build a post from its canonical JSON form, or raise `PostError` naming the field."""
        if not isinstance(data, dict):
            raise PostError("a post must be a JSON object")
        for key in ("id", "source", "text", "created_at"):
            if key not in data:
                raise PostError(f"{key}: required field missing")
        post_id = _string(data, "id", required=True)
        source = _string(data, "source", required=True)
        text = data["text"]
        if not isinstance(text, str):
            raise PostError("text: must be a string")
        return cls(
            id=post_id,  # type: ignore[arg-type]
            source=source,  # type: ignore[arg-type]
            text=text,
            created_at=parse_datetime(data["created_at"], "created_at"),
            url=_string(data, "url"),
            lang=_string(data, "lang"),
            author=_author(data.get("author")),
            geo=_geo(data.get("geo")),
            engagement=_engagement(data.get("engagement")),
            reply_to=_string(data, "reply_to"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form (what `from_dict` reads back)."""
        out: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "url": self.url,
            "text": self.text,
            "lang": self.lang,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "author": None,
            "geo": None,
            "engagement": None,
            "reply_to": self.reply_to,
        }
        if self.author is not None:
            out["author"] = {
                "handle": self.author.handle,
                "name": self.author.name,
                "location": self.author.location,
                "followers": self.author.followers,
            }
        if self.geo is not None:
            out["geo"] = {"lat": self.geo.lat, "lon": self.geo.lon}
        if self.engagement is not None:
            out["engagement"] = {
                "likes": self.engagement.likes,
                "reposts": self.engagement.reposts,
                "replies": self.engagement.replies,
            }
        return out


def parse_datetime(value: Any, name: str = "created_at") -> datetime:
    """ISO 8601 with an offset or Z; a naive time is taken as UTC."""
    if not isinstance(value, str):
        raise PostError(f"{name}: must be an ISO 8601 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PostError(f"{name}: not an ISO 8601 date-time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _string(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise PostError(f"{key}: required field missing")
        return None
    if not isinstance(value, str):
        raise PostError(f"{key}: must be a string")
    if required and not value:
        raise PostError(f"{key}: must not be empty")
    return value


def _count(data: dict[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PostError(f"{where}.{key}: must be a whole number >= 0")
    return value


def _author(value: Any) -> Author | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PostError("author: must be an object or null")
    for key in ("handle", "name", "location"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise PostError(f"author.{key}: must be a string")
    return Author(
        handle=value.get("handle"),
        name=value.get("name"),
        location=value.get("location"),
        followers=_count(value, "followers", "author"),
    )


def _geo(value: Any) -> Geo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PostError("geo: must be an object or null")
    try:
        lat, lon = float(value["lat"]), float(value["lon"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PostError("geo: needs numeric lat and lon") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PostError("geo: lat/lon out of range")
    return Geo(lat, lon)


def _engagement(value: Any) -> Engagement | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PostError("engagement: must be an object or null")
    return Engagement(
        likes=_count(value, "likes", "engagement"),
        reposts=_count(value, "reposts", "engagement"),
        replies=_count(value, "replies", "engagement"),
    )
