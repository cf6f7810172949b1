"""Score: labels, points with reasons, and the level they add up to (default settings)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listener.post import Author, Engagement, Post
from listener.urgency.score import level_for, score_post


def post(text: str, followers: int | None = None, engagement: Engagement | None = None) -> Post:
    return Post(
        id="p",
        source="bluesky",
        text=text,
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        author=Author(followers=followers),
        engagement=engagement,
    )


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("de bieb in Leusden is wéér dicht 😡", ["outage", "complaint"]),
        ("Weet iemand hoe laat de bieb opengaat?", ["question"]),
        ("Heerlijke middag in de bieb, dank jullie wel 💚", ["praise"]),
        ("Ik ben niet blij met de nieuwe openingstijden", ["complaint"]),
        ("Brand in de bibliotheek, iedereen is naar buiten", ["safety"]),
        ("Bel me op 06-12345678 over mijn pas", ["privacy"]),
        ("mijn mail is jan.jansen@example.nl", ["privacy"]),
        ("Gewoon een mededeling over de bieb", []),
        ("Kan ik morgen mijn boeken ophalen", ["question"]),
        ("Top, dank je. Waar is de ingang", ["question", "praise"]),
        ("Alweer kan ik niet inloggen, de app werkt gewoon niet", ["outage", "complaint"]),
        ("Iemand bedreigd bij de bieb, politie is er nu", ["safety"]),
    ],
)
def test_labels_come_from_the_lexicon(text: str, labels: list[str]) -> None:
    assert score_post(post(text)).labels == labels


def test_every_point_has_a_reason() -> None:
    urgency = score_post(post("de bieb is weer dicht 😡", followers=5000))
    assert urgency.reasons == [
        "outage: 'dicht' +45",
        "complaint: 'weer dicht', '😡' +10",
        "reach: 5,000 followers +10",
    ]
    assert urgency.score == 65
    assert urgency.level == "high"


def test_a_safety_incident_is_critical_on_its_own() -> None:
    assert score_post(post("Brand in de bibliotheek!")).level == "critical"


def test_a_reported_data_leak_is_critical_on_its_own() -> None:
    assert score_post(post("De bieb mailde iedereen in de cc, een datalek")).level == "critical"


def test_privacy_reasons_never_contain_the_value_found() -> None:
    urgency = score_post(post("mijn nummer is 06-12345678"))
    assert urgency.reasons == ["privacy: phone number posted publicly +40"]
    assert "12345678" not in " ".join(urgency.reasons)


def test_engagement_adds_points_up_to_a_cap() -> None:
    small = score_post(post("de wifi is kapot", engagement=Engagement(likes=30)))
    big = score_post(post("de wifi is kapot", engagement=Engagement(likes=10**6, reposts=10**6)))
    assert 45 < small.score < big.score == 55


def test_negated_praise_is_not_praise() -> None:
    assert "praise" not in score_post(post("niet super, de wifi")).labels


@pytest.mark.parametrize(
    ("score", "level"), [(0, "low"), (19.9, "low"), (20, "normal"), (45, "high"), (70, "critical")]
)
def test_levels_have_default_floors(score: float, level: str) -> None:
    assert level_for(score) == level
