"""Locating posts: coordinates, then places in the text, then the profile; branches by area.

Every place name used here is in the packaged gazetteer (tests/test_gazetteer.py checks the names
it relies on); distances are computed from the data, never typed in.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from geopy.distance import geodesic

from listener.geo.areas import load_area
from listener.geo.gazetteer import Gazetteer, PlaceMention, default_gazetteer
from listener.geo.locate import Area, AreaIndex, BranchHit, Located, locate, place, prepare
from listener.post import Author, Geo, Post

AMERSFOORT = Area("eemland", "amersfoort-centrum", "Amersfoort Centrum", 52.1561, 5.3878, 5)
LEUSDEN = Area("eemland", "leusden", "Leusden", 52.1290, 5.4300, 3)
ZWOLLE = Area("stadkamer", "zwolle", "Zwolle Centrum", 52.5125, 6.0944, 4)
AREAS = AreaIndex((AMERSFOORT, LEUSDEN, ZWOLLE))


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


def test_without_nearest_a_place_outside_every_area_is_not_measured(
    gazetteer: Gazetteer,
) -> None:
    asked: list[tuple[float, float]] = []

    class Counting(AreaIndex):
        def nearest(self, lat: float, lon: float) -> BranchHit | None:
            asked.append((lat, lon))
            return super().nearest(lat, lon)

    areas = Counting((AMERSFOORT, LEUSDEN, ZWOLLE))
    prepared = prepare(post("geen idee", profile="Utrecht, NL"), gazetteer)
    located = place(prepared, areas, nearest=False)
    assert located.branch is None and asked == []
    assert located.evidence[0] == (
        "profile location 'Utrecht, NL' → Utrecht, in none of the 3 branch areas"
    )
    assert "km from nearest branch amersfoort-centrum" in place(prepared, areas).evidence[0]
    assert len(asked) == 1
    inside = place(prepare(post("de bieb in Leusden"), gazetteer), areas, nearest=False)
    assert branch_id(inside) == "leusden"  # inside an area nothing changes


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


def test_without_areas_a_post_is_still_located(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Leusden"), AreaIndex(()), gazetteer)
    assert located.location is not None
    assert located.branch is None and located.nearest is None
    assert located.evidence[0] == "text names Leusden (exact); no branch areas to compare with"


def test_the_nearest_branch_is_kept_even_when_the_point_is_inside_another(
    gazetteer: Gazetteer,
) -> None:
    located = locate(post("de bieb in Zwolle"), AREAS, gazetteer)
    assert located.nearest is not None and located.branch is not None
    assert located.nearest.area is ZWOLLE


# -- same-named places -------------------------------------------------------------------------


def test_an_ambiguous_place_without_other_evidence_is_read_by_size_and_says_so(
    gazetteer: Gazetteer,
) -> None:
    located = locate(post("de bieb in Bergen"), AREAS, gazetteer)
    assert (
        "Bergen: took Bergen (Noord-Holland), nothing else named nearby, so the Dutch reading "
        "of the highest rank and size; 2 other places share the name"
    ) in located.evidence


def test_a_qualifier_says_it_chose_the_reading(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Hengelo Gelderland"), AREAS, gazetteer)
    assert (
        "Hengelo: took Hengelo (Gelderland), by the qualifier 'Gelderland'; "
        "1 other place shares the name"
    ) in located.evidence


def test_another_place_named_in_the_text_chooses_the_reading_nearest_to_it(
    gazetteer: Gazetteer,
) -> None:
    located = locate(post("de bieb in Bergen, vlakbij Venlo"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.label() == "Bergen (Limburg)"
    assert (
        "Bergen: took Bergen (Limburg), nearest to Venlo named in the text; "
        "2 other places share the name"
    ) in located.evidence


def test_the_issues_example_bergen_near_alkmaar_names_its_reason(gazetteer: Gazetteer) -> None:
    located = locate(post("Van Alkmaar naar de bieb in Bergen"), AREAS, gazetteer)
    assert (
        "Bergen: took Bergen (Noord-Holland), nearest to Alkmaar named in the text; "
        "2 other places share the name"
    ) in located.evidence


def test_the_profile_location_chooses_the_reading_nearest_to_it(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Hengelo", profile="Zutphen"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.how == "text"
    assert located.location.mention.place.label() == "Hengelo (Gelderland)"
    assert (
        "Hengelo: took Hengelo (Gelderland), nearest to the profile location Zutphen; "
        "1 other place shares the name"
    ) in located.evidence


def test_the_post_coordinates_choose_the_reading_of_a_name_in_the_text(
    gazetteer: Gazetteer,
) -> None:
    gld = next(p for p in gazetteer.candidates("Hengelo") if p.admin1 == "Gelderland")
    located = locate(post("de bieb in Hengelo", geo=(gld.lat, gld.lon)), AREAS, gazetteer)
    assert (
        "Hengelo: took Hengelo (Gelderland), nearest to the post coordinates; "
        "1 other place shares the name"
    ) in located.evidence


def test_evidence_far_from_every_reading_leaves_the_reading_by_size(gazetteer: Gazetteer) -> None:
    [bergen, *_] = gazetteer.candidates("Bergen")
    assert place_km(gazetteer, "Groningen", Area("x", "x", "x", bergen.lat, bergen.lon, 1)) > 50
    located = locate(post("de bieb in Bergen", profile="Groningen"), AREAS, gazetteer)
    assert any(
        line.startswith("Bergen: took Bergen (Noord-Holland), nothing else named nearby")
        for line in located.evidence
    )


# -- negation ----------------------------------------------------------------------------------


def test_a_negated_place_is_not_evidence_and_the_profile_locates_the_post(
    gazetteer: Gazetteer,
) -> None:
    located = locate(post("niet die in Leusden", profile="Amersfoort"), AREAS, gazetteer)
    assert located.location is not None and located.location.how == "profile"
    assert branch_id(located) == "amersfoort-centrum"
    assert "'Leusden' is negated: not used" in located.evidence


def test_the_place_after_maar_is_used_and_the_negated_one_is_not(gazetteer: Gazetteer) -> None:
    located = locate(post("niet in Leusden maar in Amersfoort"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.name == "Amersfoort"
    assert branch_id(located) == "amersfoort-centrum"
    assert "'Leusden' is negated: not used" in located.evidence


@pytest.mark.parametrize("text", ["not the one in Leusden", "geen Leusden", "niet in Leusden"])
def test_a_post_naming_only_a_negated_place_is_not_located(gazetteer: Gazetteer, text: str) -> None:
    located = locate(post(text), AREAS, gazetteer)
    assert located.location is None
    assert located.evidence == [
        "no coordinates, no place named in the text, no usable profile location",
        "'Leusden' is negated: not used",
    ]


def test_a_negated_place_does_not_choose_the_reading_of_another(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Bergen, niet in Venlo"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.label() == "Bergen (Noord-Holland)"


# -- abbreviations -----------------------------------------------------------------------------


def test_an_abbreviation_finds_its_branch_and_shows_what_was_written(
    gazetteer: Gazetteer,
) -> None:
    located = locate(post("de bieb in A'foort is dicht"), AREAS, gazetteer)
    assert branch_id(located) == "amersfoort-centrum"
    assert located.location is not None
    assert located.location.description == "text names 'A'foort' → Amersfoort (exact)"


# -- regions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "line"),
    [
        ("Twente", "profile location 'Twente' is a region, too coarse for a branch"),
        ("Veluwe", "profile location 'Veluwe' is a region, too coarse for a branch"),
        ("Randstad", "profile location 'Randstad' is a region, too coarse for a branch"),
        (
            "Noord-Holland",
            "profile location 'Noord-Holland' is a province, too coarse for a branch",
        ),
        ("Gelderland", "profile location 'Gelderland' is a province, too coarse for a branch"),
        ("Nederland", "profile location 'Nederland' is a country, too coarse for a branch"),
        (
            "Living in Twente",
            "profile location 'Living in Twente' names the region 'Twente', "
            "too coarse for a branch",
        ),
        ("Spanje", "profile location 'Spanje' is abroad: no branch there"),
    ],
)
def test_a_region_in_the_profile_is_too_coarse_to_place_the_post(
    gazetteer: Gazetteer, profile: str, line: str
) -> None:
    located = locate(post("waarom is de bieb dicht?", profile=profile), AREAS, gazetteer)
    assert located.location is None
    assert line in located.evidence


def test_a_region_in_the_text_is_too_coarse_to_place_the_post(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Twente is dicht"), AREAS, gazetteer)
    assert located.location is None
    assert "text names the region 'Twente', too coarse for a branch" in located.evidence


def test_a_region_in_the_text_leaves_the_profile_to_place_the_post(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb op de Veluwe", profile="Amersfoort"), AREAS, gazetteer)
    assert located.location is not None and located.location.how == "profile"
    assert "text names the region 'Veluwe', too coarse for a branch" in located.evidence


def test_a_place_with_a_region_qualifier_is_read_in_that_province(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Hengelo in de Achterhoek"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.label() == "Hengelo (Gelderland)"


# -- the online geocoder -----------------------------------------------------------------------


class FakeGeocoder:
    """Answers from a dict and records what it was asked."""

    def __init__(self, answers: dict[str, tuple[float, float]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, location: str) -> PlaceMention | None:
        self.asked.append(location)
        if location not in self.answers:
            return None
        lat, lon = self.answers[location]
        place = replace(default_gazetteer().candidates("Leusden")[0], name=location)
        place = replace(place, lat=lat, lon=lon)
        return PlaceMention(place, location, 100.0, False, 0, 0)


def test_the_geocoder_places_a_profile_location_the_gazetteer_does_not_know(
    gazetteer: Gazetteer,
) -> None:
    geocode = FakeGeocoder({"Qwertyville": (52.13, 5.43)})
    located = locate(
        post("waarom is de bieb dicht?", profile="Qwertyville"), AREAS, gazetteer, geocode
    )
    assert geocode.asked == ["Qwertyville"]
    assert located.location is not None and located.location.how == "profile"
    assert located.location.description == (
        "profile location 'Qwertyville' → Qwertyville (geocoder)"
    )
    assert branch_id(located) == "leusden"


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ("waarom is de bieb dicht?", "Amersfoort"),  # the gazetteer knows it
        ("waarom is de bieb dicht?", "Twente"),  # a region the gazetteer knows
        ("de bieb in Leusden is dicht", "Ergens Onbekend"),  # the text places the post
    ],
)
def test_the_geocoder_is_asked_only_when_nothing_else_can_place_the_post(
    gazetteer: Gazetteer, text: str, profile: str
) -> None:
    geocode = FakeGeocoder({})
    locate(post(text, profile=profile), AREAS, gazetteer, geocode)
    assert geocode.asked == []


def test_a_profile_location_the_geocoder_cannot_find_says_so(gazetteer: Gazetteer) -> None:
    geocode = FakeGeocoder({})
    located = locate(post("waarom dicht?", profile="Ergens Onbekend"), AREAS, gazetteer, geocode)
    assert located.location is None
    assert "profile location 'Ergens Onbekend': not found by the geocoder either" in (
        located.evidence
    )


# -- polygon areas -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def polygons(tmp_path_factory: pytest.TempPathFactory) -> AreaIndex:
    here = tmp_path_factory.mktemp("queries")
    leusden = Area(
        "eemland", "leusden", "Leusden", 52.1325, 5.4319, 3, load_area("gemeente:Leusden", here)
    )
    return AreaIndex((leusden, ZWOLLE))


def test_a_place_inside_a_municipality_area_finds_its_branch(
    gazetteer: Gazetteer, polygons: AreaIndex
) -> None:
    # Achterveld lies in the municipality of Leusden, well outside a 3 km radius of the branch.
    achterveld = gazetteer.candidates("Achterveld")[0]
    assert achterveld.gemeente == "Leusden"
    located = locate(post("de bieb in Achterveld"), polygons, gazetteer)
    assert branch_id(located) == "leusden"
    assert located.branch is not None and located.branch.distance_km > 3
    assert located.evidence[0].endswith("km from branch leusden (its polygon area)")


def test_a_place_outside_a_municipality_area_says_how_far_outside(
    gazetteer: Gazetteer, polygons: AreaIndex
) -> None:
    located = locate(post("de bieb in Utrecht"), polygons, gazetteer)
    assert located.branch is None
    assert located.evidence[0].startswith("text names Utrecht (exact), ")
    assert "km from nearest branch leusden: " in located.evidence[0]
    assert located.evidence[0].endswith("km outside its polygon area")


def test_a_profile_qualifier_says_it_chose_the_reading(gazetteer: Gazetteer) -> None:
    located = locate(post("waarom is de bieb dicht?", profile="Bergen, Limburg"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.label() == "Bergen (Limburg)"
    assert (
        "Bergen: took Bergen (Limburg), by the qualifier 'Limburg'; 2 other places share the name"
        in (located.evidence)
    )


def test_a_name_shared_with_a_hamlet_next_door_is_not_reported_as_ambiguous(
    gazetteer: Gazetteer,
) -> None:
    # 'Leusden' is also an alternate name of Leusden-Zuid, a few km away: the same place here.
    assert len(gazetteer.candidates("Leusden")) > 1
    located = locate(post("gisteren in Utrecht, vandaag in Leusden"), AREAS, gazetteer)
    assert located.location is not None and located.location.mention is not None
    assert located.location.mention.place.name == "Leusden"
    assert not any(line.startswith("Leusden: took") for line in located.evidence)


def test_a_place_abroad_in_the_text_is_no_branch_area(gazetteer: Gazetteer) -> None:
    located = locate(post("de bieb in Spanje was beter"), AREAS, gazetteer)
    assert located.location is None
    assert "text names 'Spanje', abroad: no branch there" in located.evidence


# -- the place right after the library word ----------------------------------------------------


@pytest.fixture(scope="module")
def amsterdam(gazetteer: Gazetteer) -> AreaIndex:
    """One branch area, around Amsterdam: the 'first in a branch area' rule would take it."""
    [centre] = gazetteer.candidates("Amsterdam")
    return AreaIndex((Area("oba", "oosterdok", "OBA Oosterdok", centre.lat, centre.lon, 5),))


def text_place(located: Located) -> str | None:
    if located.location is None or located.location.mention is None:
        return None
    return located.location.mention.place.name


@pytest.mark.parametrize(
    "text",
    [
        "De bieb in het Forum in Groningen blijft de mooiste, sorry Amsterdam",
        "Amsterdam is leuk maar de bieb in Groningen",
    ],
)
def test_the_place_right_after_the_library_word_wins_over_a_place_in_a_branch_area(
    gazetteer: Gazetteer, amsterdam: AreaIndex, text: str
) -> None:
    assert gazetteer.candidates("Forum") == []  # the building is no place
    located = locate(post(text), amsterdam, gazetteer)
    assert text_place(located) == "Groningen"
    assert located.branch is None
    assert any(
        line.startswith("text names 2 places")
        and line.endswith("took Groningen, the one after the library word")
        for line in located.evidence
    )


@pytest.mark.parametrize(
    "text",
    [
        "Groningen blijft de mooiste, sorry Amsterdam",  # no library word at all
        "Amsterdam is leuk maar Groningen ook",
    ],
)
def test_without_a_library_word_the_first_place_in_a_branch_area_wins(
    gazetteer: Gazetteer, amsterdam: AreaIndex, text: str
) -> None:
    located = locate(post(text), amsterdam, gazetteer)
    assert text_place(located) == "Amsterdam"
    assert branch_id(located) == "oosterdok"


@pytest.mark.parametrize(
    "text",
    [
        "Ik mis de bieb, Groningen is zo anders dan Amsterdam",  # a comma ends the clause
        "Ik mis de bieb (Groningen) en Amsterdam",  # so does a bracket
        "de bieb is dicht dus ik ga naar Groningen of Amsterdam",  # more than 5 words on
    ],
)
def test_a_place_in_another_clause_or_too_far_from_the_library_word_is_not_after_it(
    gazetteer: Gazetteer, amsterdam: AreaIndex, text: str
) -> None:
    located = locate(post(text), amsterdam, gazetteer)
    assert text_place(located) == "Amsterdam"
    assert (
        "text names 2 places (Groningen, Amsterdam); took Amsterdam, the first in a branch area"
        in located.evidence
    )


def test_the_place_after_the_library_word_in_the_same_clause_is_taken(
    gazetteer: Gazetteer, amsterdam: AreaIndex
) -> None:
    located = locate(
        post("Ik mis de bieb in Groningen, zo anders dan Amsterdam"), amsterdam, gazetteer
    )
    assert text_place(located) == "Groningen"


# -- a town abroad -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kennemerland(gazetteer: Gazetteer) -> AreaIndex:
    bergen = next(p for p in gazetteer.candidates("Bergen") if p.admin1 == "Noord-Holland")
    [alkmaar] = gazetteer.candidates("Alkmaar")
    return AreaIndex(
        (
            Area("kw", "bergen", "Bibliotheek Bergen", bergen.lat, bergen.lon, 3),
            Area("kw", "alkmaar", "Bibliotheek Alkmaar", alkmaar.lat, alkmaar.lon, 3),
        )
    )


@pytest.mark.parametrize(
    ("text", "abroad"),
    [
        ("Op vakantie in Bergen (Noorwegen), de bieb hier is prachtig", "Noorwegen"),
        ("Op vakantie in Bergen in Norway, de bieb hier is prachtig", "Norway"),
    ],
)
def test_a_town_qualified_as_abroad_places_nothing_and_the_profile_does_not_stand_in(
    gazetteer: Gazetteer, kennemerland: AreaIndex, text: str, abroad: str
) -> None:
    located = locate(post(text, profile="Alkmaar"), kennemerland, gazetteer)
    assert located.location is None
    assert located.branch is None
    assert "'Bergen' is abroad here: not used" in located.evidence
    assert f"text names '{abroad}', abroad: no branch there" in located.evidence


@pytest.mark.parametrize(
    "text",
    [
        "Op vakantie in Bergen, de bieb hier is prachtig",
        "de bieb in Bergen, volgend jaar naar Noorwegen",  # the country is not right after it
    ],
)
def test_a_town_not_qualified_as_abroad_is_the_dutch_one(
    gazetteer: Gazetteer, kennemerland: AreaIndex, text: str
) -> None:
    located = locate(post(text, profile="Alkmaar"), kennemerland, gazetteer)
    assert located.location is not None and located.location.how == "text"
    assert located.location.mention is not None
    assert located.location.mention.place.label() == "Bergen (Noord-Holland)"
    assert branch_id(located) == "bergen"
    assert not any("abroad here" in line for line in located.evidence)


def test_a_country_abroad_without_a_town_leaves_the_profile_to_place_the_post(
    gazetteer: Gazetteer,
) -> None:
    located = locate(
        post("Op vakantie in Spanje, mis de bieb", profile="Leusden"), AREAS, gazetteer
    )
    assert located.location is not None and located.location.how == "profile"
    assert branch_id(located) == "leusden"
    assert "text names 'Spanje', abroad: no branch there" in located.evidence
