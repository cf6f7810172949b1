"""The decision for one post: which search, organisation and branch, and what gets alerted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.config import Config, load_config
from listener.pipeline import CONSOLE_FALLBACK, Classifier
from listener.post import Author, Geo, Post
from tests.support.configs import ROOT


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_config(ROOT / "config.example.toml"))


def post(
    text: str, *, location: str | None = None, handle: str = "someone", geo: Geo | None = None
) -> Post:
    return Post(
        id="p",
        source="bluesky",
        text=text,
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        author=Author(handle=handle, location=location),
        geo=geo,
    )


def test_a_post_about_nothing_gets_a_decision_with_no_organisation(classifier: Classifier) -> None:
    decision = classifier.decide(post("Lekker weer vandaag"))
    assert decision.to_json() == {
        "id": "p",
        "org": None,
        "branch": None,
        "query": None,
        "urgency": "none",
        "score": 0.0,
        "labels": [],
        "distance_km": None,
        "evidence": [],
    }


def test_a_brand_match_wins_over_a_local_one(classifier: Classifier) -> None:
    decision = classifier.decide(post("Bibliotheek Eemland: de bieb in Leusden is dicht"))
    assert (decision.org, decision.branch, decision.query) == (
        "eemland",
        "leusden",
        "eemland-brand",
    )


def test_a_local_search_needs_a_place_in_a_branch_area(classifier: Classifier) -> None:
    far = classifier.decide(post("de bieb is dicht", location="Zwolle"))
    assert far.org is None
    assert "search de-bieb: rejected, not located in any branch's area" in far.evidence
    near = classifier.decide(post("de bieb is dicht", location="Leusden"))
    assert (near.org, near.branch) == ("eemland", "leusden")


def test_the_text_wins_over_the_profile(classifier: Classifier) -> None:
    decision = classifier.decide(post("de bieb in Zwolle is mooi", location="Leusden"))
    assert decision.org is None


def test_coordinates_win_over_the_text(classifier: Classifier) -> None:
    at_amersfoort = Geo(52.1552, 5.3869)
    decision = classifier.decide(post("de bieb in Zwolle is dicht", geo=at_amersfoort))
    assert (decision.org, decision.branch) == ("eemland", "amersfoort")


def test_the_organisations_own_posts_are_never_its_alerts(classifier: Classifier) -> None:
    decision = classifier.decide(
        post("De bibliotheek in Leusden is morgen open", handle="bibliotheekeemland.bsky.social")
    )
    assert decision.org is None
    assert "posted by eemland's own account: not an alert for eemland" in decision.evidence


def test_a_look_alike_account_is_not_the_organisations_own(classifier: Classifier) -> None:
    decision = classifier.decide(
        post("De bibliotheek in Leusden is dicht", handle="bibliotheekeemland.fan.bsky.social")
    )
    assert decision.org == "eemland"


def test_a_town_with_several_branches_leaves_the_branch_unknown(classifier: Classifier) -> None:
    decision = classifier.decide(post("de bieb in Apeldoorn is dicht"))
    assert (decision.org, decision.branch, decision.distance_km) == ("coda", None, None)
    assert "Apeldoorn has 4 branches of coda and nothing tells which: branch unknown" in (
        decision.evidence
    )
    one_branch = classifier.decide(post("de bieb in Ugchelen is dicht"))
    assert (one_branch.org, one_branch.branch) == ("coda", "ugchelen")


def test_an_alert_goes_to_the_routed_receivers_or_the_console(classifier: Classifier) -> None:
    p = post("de bieb in Leusden is wéér dicht 😡")
    decision = classifier.decide(p)
    alert = classifier.alert_for(p, decision, active={"console", "webcare-slack"})
    assert alert is not None
    assert list(alert.receivers) == ["webcare-slack", "console"]
    assert alert.message.where == "Bibliotheek Eemland / Bibliotheek Leusden"
    fallback = classifier.alert_for(p, decision, active=set())
    assert fallback is not None and list(fallback.receivers) == [CONSOLE_FALLBACK]


def test_no_route_means_no_alert(tmp_path: Path) -> None:
    from tests.support.configs import write_setup

    config: Config = load_config(write_setup(tmp_path))
    strict = config.routes[0].model_copy(update={"min_level": "critical"})
    classifier = Classifier(replace(config, routes=[strict]))
    p = post("Bibliotheek Eemland heeft nieuwe boeken")
    decision = classifier.decide(p)
    assert decision.org == "eemland" and decision.urgency == "low"
    assert classifier.alert_for(p, decision) is None


def test_personal_data_in_a_post_is_masked_in_its_alert(classifier: Classifier) -> None:
    p = post("de bieb in Leusden heeft mijn pas, bel me op 06-12345678 of jan.jansen@example.nl")
    decision = classifier.decide(p)
    assert "privacy" in decision.labels
    alert = classifier.alert_for(p, decision)
    assert alert is not None
    text = alert.message.post.text
    assert "12345678" not in text and "jan.jansen" not in text
    assert "[phone number]" in text and "bel me op" in text
    assert not any("12345678" in r or "jan.jansen" in r for r in alert.message.reasons)
    assert "12345678" in p.text  # the post itself is not changed
