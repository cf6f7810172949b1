"""Locating posts: coordinates, then places in the text, then the profile; branches by distance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from geopy.distance import geodesic

from listener.geo.gazetteer import Gazetteer, default_gazetteer
from listener.geo.locate import Area, Located, locate
from listener.post import Author, Geo, Post

AMERSFOORT = Area("eemland", "amersfoort-centrum", "Amersfoort Centrum", 52.1561, 5.3878, 5)
LEUSDEN = Area("eemland", "leusden", "Leusden", 52.1290, 5.4300, 3)
ZWOLLE = Area("stadkamer", "zwolle", "Zwolle Centrum", 52.5125, 6.0944, 4)
AREAS = (AMERSFOORT, LEUSDEN, ZWOLLE)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return default_gazetteer()


def post(text: str, *, profile: str | None = None, geo: tuple[float, float] | None = None) -> Post:
    return Post(
        id="1",
        source="test",
        text=text,
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        author=Author(handle="someone", location=profile),
        geo=Geo(*geo) if geo else None,
    )


def place_km(gazetteer: Gazetteer, name: str, area: Area) -> float:
    place = gazetteer.candidates(name)[0]
    return geodesic((place.lat, place.lon), (area.lat, area.lon)).km


def branch_id(located: Located) -> str | None:
    return located.branch.area.branch_id if located.branch else None


def test_a_place_named_in_the_text_finds_its_branch(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Leusden is wéér dicht 😡"), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.how == "text"
    assert located.location.description == "text names Leusden (exact)"
    assert branch_id(located) == "leusden"
    km = place_km(gazetteer, "Leusden", LEUSDEN)
    assert located.evidence[0] == (
        f"text names Leusden (exact), {km:.1f} km from branch leusden (radius 3 km)"
    )


def test_distances_are_geodesic_kilometres(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Zwolle"), AREAS, gazetteer)
    assert located.branch is not None
    assert located.branch.distance_km == pytest.approx(place_km(gazetteer, "Zwolle", ZWOLLE))


def test_post_coordinates_win_over_the_text(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Zwolle", geo=(52.1300, 5.4310)), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.how == "coordinates"
    assert located.location.description == "post coordinates 52.13,5.431"
    assert branch_id(located) == "leusden"
    assert "text names Zwolle (exact): not used, the post coordinates win" in located.evidence


def test_the_text_wins_over_the_profile(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Zwolle is dicht", profile="Amersfoort"), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.how == "text"
    assert branch_id(located) == "zwolle"
    assert "profile location 'Amersfoort' → Amersfoort: not used, the text wins" in (
        located.evidence
    )


def test_the_profile_locates_a_post_whose_text_names_no_place(gazetteer: Gazetteer) -> None:
    located = locate(post("waarom is de bieb dicht?", profile="Amersfoort 🇳🇱"), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.how == "profile"
    assert located.location.description == "profile location 'Amersfoort 🇳🇱' → Amersfoort"
    assert branch_id(located) == "amersfoort-centrum"


def test_a_profile_that_names_no_place_leaves_the_post_unlocated(gazetteer: Gazetteer) -> None:
    located = locate(post("waarom is de bieb dicht?", profile="he/him 🌈"), AREAS, gazetteer)
    assert located.location is None
    assert located.branch is None and located.nearest is None
    assert located.evidence == [
        "no coordinates, no place named in the text, no usable profile location"
    ]


def test_handles_and_links_do_not_locate_a_post(gazetteer: Gazetteer) -> None:
    text = "volgens @leusden_fan is het dicht, zie https://leusden.nl/bieb"
    assert locate(post(text), AREAS, gazetteer).location is None


def test_the_first_text_place_that_lies_in_a_branch_area_wins(gazetteer: Gazetteer) -> None:
    located = locate(post("gisteren in Utrecht, vandaag in Leusden"), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.mention is not None
    assert located.location.mention.place.name == "Leusden"
    assert (
        "text names 2 places (Utrecht, Leusden); took Leusden, the first in a branch area"
        in located.evidence
    )


def test_the_first_text_place_wins_when_none_lies_in_a_branch_area(gazetteer: Gazetteer) -> None:
    located = locate(post("van Utrecht naar Groningen"), AREAS, gazetteer)
    assert located.location is not None
    assert located.location.mention is not None
    assert located.location.mention.place.name == "Utrecht"
    assert located.branch is None


def test_a_point_in_two_areas_goes_to_the_nearest_branch(gazetteer: Gazetteer) -> None:
    # Leusden lies inside Leusden's 3 km and Amersfoort's 5 km.
    assert place_km(gazetteer, "Leusden", AMERSFOORT) < AMERSFOORT.radius_km
    located = locate(post("de bieb in Leusden"), AREAS, gazetteer)
    assert branch_id(located) == "leusden"
    assert any(
        line.startswith("also inside branch amersfoort-centrum") for line in located.evidence
    )


def test_a_place_outside_every_radius_has_no_branch_but_a_nearest(gazetteer: Gazetteer) -> None:
    located = locate(post("geen idee", profile="Utrecht, NL"), AREAS, gazetteer)
    assert located.branch is None
    assert located.nearest is not None
    assert located.nearest.area is AMERSFOORT
    km = place_km(gazetteer, "Utrecht", AMERSFOORT)
    assert located.evidence[0] == (
        f"profile location 'Utrecht, NL' → Utrecht, {km:.1f} km from nearest branch "
        "amersfoort-centrum (radius 5 km): outside"
    )


def test_a_place_just_outside_a_radius_is_a_near_miss(gazetteer: Gazetteer) -> None:
    km = place_km(gazetteer, "Soest", AMERSFOORT)
    assert AMERSFOORT.radius_km < km <= 2 * AMERSFOORT.radius_km
    located = locate(post("de bieb in Soest"), AREAS, gazetteer)
    assert located.branch is None
    assert located.near_misses == [
        f"{km:.1f} km from branch amersfoort-centrum: {km - 5:.1f} km outside its 5 km radius"
    ]


def test_a_misspelt_place_says_it_was_matched_fuzzily(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Leusen is dicht"), AREAS, gazetteer)
    assert branch_id(located) == "leusden"
    assert located.location is not None
    assert located.location.description.startswith("text names 'Leusen' → Leusden (fuzzy 9")


def test_an_ambiguous_place_says_which_reading_it_took(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Bergen"), AREAS, gazetteer)
    assert "Bergen: took Bergen (Noord-Holland), 2 other places share the name" in (
        located.evidence
    )


def test_a_qualifier_says_it_chose_the_reading(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Hengelo Gelderland"), AREAS, gazetteer)
    assert (
        "Hengelo: took Hengelo (Gelderland) by the qualifier 'Gelderland', "
        "1 other place shares the name"
    ) in located.evidence


def test_without_areas_a_post_is_still_located(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Leusden"), [], gazetteer)
    assert located.location is not None
    assert located.branch is None and located.nearest is None
    assert located.evidence[0] == "text names Leusden (exact); no branch areas to compare with"
