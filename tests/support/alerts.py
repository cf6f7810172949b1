"""A ready-made alert for the notifier tests: one post, one organisation and branch, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from listener.alert import AlertMessage
from listener.post import Author, Post

TEXT = "De bieb in Vathorst is alweer dicht?!"
AUTHOR: dict[str, Any] = {
    "handle": "jan",
    "name": "Jan Jansen",
    "location": "Amersfoort",
    "followers": 1234,
}


def make_alert(
    text: str = TEXT,
    *,
    url: str | None = "https://social.example/@jan/1",
    evidence: list[str] | None = None,
    reasons: list[str] | None = None,
    alert_id: int = 42,
    distance_km: float | None = 3.1,
    **author: Any,
) -> AlertMessage:
    """An alert about a post by Jan Jansen; any author field can be overridden by keyword."""
    post = Post(
        id="p1",
        source="mastodon",
        text=text,
        created_at=datetime(2024, 5, 1, 12, 3, tzinfo=UTC),
        url=url,
        author=Author(**(AUTHOR | author)),
    )
    return AlertMessage(
        alert_id=alert_id,
        post=post,
        org_id="eemland",
        org_name="Bibliotheek Eemland",
        branch_id="vathorst",
        branch_name="Vathorst",
        search_id="eemland-brand",
        level="critical",
        score=91.0,
        labels=["closure"],
        reasons=reasons if reasons is not None else ["closure complaint"],
        evidence=evidence if evidence is not None else ["'de bieb' + 'Vathorst' (3.1 km)"],
        distance_km=distance_km,
    )
