"""The gazetteer: packaged data, exact and fuzzy names, context rules, same-named places.

Every name asserted here is in shared/data/nl-be-places.tsv (and so in the packaged file); the
first tests check that, so a data change shows up as a data failure, not as a matching bug.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.geo.gazetteer import (
    REGION_KINDS,
    Gazetteer,
    PlaceMention,
    default_gazetteer,
    load_abbreviations,
)
from listener.text import words

REPO = Path(__file__).resolve().parent.parent
SHARED_TSV = REPO.parent / "shared" / "data" / "nl-be-places.tsv"
PACKAGED = REPO / "listener" / "geo" / "data" / "places.tsv.gz"
BUILD_SCRIPT = REPO / "scripts" / "build_gazetteer.py"
ABBREVIATIONS = REPO / "listener" / "geo" / "data" / "abbreviations.tsv"

AMERSFOORT = 2759821
AMSTERDAM = 2759794
ROTTERDAM = 2747891
UTRECHT = 2745912
DORDRECHT = 2756669
LEUSDEN = 2751687
DEN_BOSCH = 2747351
BERGEN_NH = 2759154
BERGEN_L = 2759155
HENGELO_OV = 2754394
HENGELO_GLD = 2754395


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return default_gazetteer()


def names(mentions: list[PlaceMention]) -> list[str]:
    return [m.place.name for m in mentions]


# -- the data ----------------------------------------------------------------------------------


def test_the_packaged_file_holds_the_dutch_and_flemish_places() -> None:
    loaded = Gazetteer.load()  # how fast: bench/startup.py
    assert len(loaded.places) > 10_000
    assert {p.country for p in loaded.places} == {"NL", "BE"}


def test_the_default_gazetteer_is_loaded_once_per_process() -> None:
    assert default_gazetteer() is default_gazetteer()


def test_the_packaged_file_is_what_the_build_script_writes(tmp_path: Path) -> None:
    if not SHARED_TSV.exists():
        pytest.skip("shared/data is not beside the repo")
    spec = importlib.util.spec_from_file_location("build_gazetteer", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.build(SHARED_TSV, tmp_path / "places.tsv.gz")
    assert (tmp_path / "places.tsv.gz").read_bytes() == PACKAGED.read_bytes()


def test_load_reads_a_file_given_by_path() -> None:
    loaded = Gazetteer.load(PACKAGED)
    assert loaded.find_in_text("de bieb in Leusden")[0].place.geonameid == LEUSDEN


@pytest.mark.parametrize(
    "name",
    [
        "Amersfoort",
        "Leusden",
        "Best",
        "Made",
        "Bergen op Zoom",
        "Den Bosch",
        "'s-Hertogenbosch",
        "Kanaleneiland",
        "Lunetten",
        "Hengelo",
        "Bergen",
        "Mechelen",
        "Zwolle",
        "Lent",
        "Born",
        "Echt",
        "Ede",
        "Alkmaar",
        "Venlo",
        "Zutphen",
        "Achterveld",
        "Soest",
        "Hooglanderveen",
        "Groningen",
        "Amsterdam",
        "Een",
        "Melden",
    ],
)
def test_the_names_these_tests_use_are_in_the_data(gazetteer: Gazetteer, name: str) -> None:
    assert gazetteer.candidates(name)


def test_leidsche_rijn_and_vathorst_are_not_in_the_data(gazetteer: Gazetteer) -> None:
    # GeoNames has no such PPLX rows; the districts tests use Kanaleneiland and Lunetten instead.
    assert gazetteer.candidates("Leidsche Rijn") == []
    assert gazetteer.candidates("Vathorst") == []


def test_a_municipality_row_folds_into_the_town_of_the_same_name(gazetteer: Gazetteer) -> None:
    [amersfoort] = gazetteer.candidates("Amersfoort")
    assert amersfoort.geonameid == AMERSFOORT
    assert amersfoort.feature_code == "PPL"


def test_a_municipality_without_a_town_of_its_name_is_a_place_of_its_own(
    gazetteer: Gazetteer,
) -> None:
    [municipality] = gazetteer.candidates("Leidschendam-Voorburg")
    assert municipality.feature_code == "ADM2"
    assert municipality.geonameid < 0  # minus the CBS number


# -- exact names -------------------------------------------------------------------------------


def test_it_finds_the_place_a_post_names(gazetteer: Gazetteer) -> None:
    text = "de bieb in Leusden is wéér dicht 😡"
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == LEUSDEN
    assert mention.written == "Leusden"
    assert mention.score == 100
    assert words(text)[mention.start] == "leusden"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("vandaag naar Den Bosch", "Den Bosch"),
        ("vandaag naar den bosch", "den bosch"),
        ("vandaag naar 's-Hertogenbosch", "s-Hertogenbosch"),
    ],
)
def test_it_finds_multi_word_names_and_alternate_names(
    gazetteer: Gazetteer, text: str, written: str
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == DEN_BOSCH
    assert mention.written == written


def test_the_longest_name_wins_and_mentions_do_not_overlap(gazetteer: Gazetteer) -> None:
    text = "Van Bergen op Zoom naar Amersfoort"
    found = gazetteer.find_in_text(text)
    assert names(found) == ["Bergen op Zoom", "Amersfoort"]
    assert [m.start for m in found] == [1, 5]


def test_districts_are_places(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Kanaleneiland is dicht")
    assert (mention.place.name, mention.place.feature_code) == ("Kanaleneiland", "PPLX")
    [mention] = gazetteer.find_in_text("lunetten heeft geen bieb meer")
    assert mention.place.name == "Lunetten"


def test_start_counts_the_words_of_the_folded_text(gazetteer: Gazetteer) -> None:
    text = "Wéér dicht!! 😡 #bieb in A'foort... nee: in Leusden"
    afoort, leusden = gazetteer.find_in_text(text)
    assert words(text)[afoort.start : afoort.start + 2] == ["a", "foort"]
    assert words(text)[leusden.start] == "leusden"


# -- fuzzy names -------------------------------------------------------------------------------


def test_a_misspelt_name_is_matched_fuzzily(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Leusen is dicht")
    assert mention.place.geonameid == LEUSDEN
    assert 88 <= mention.score < 100
    assert mention.written == "Leusen"
    [mention] = gazetteer.find_in_text("de bieb in Amesfoort")
    assert mention.place.geonameid == AMERSFOORT
    assert 88 <= mention.score < 100


def test_amersfort_is_found_as_the_alternate_name_geonames_lists(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Amersfort")
    assert mention.place.geonameid == AMERSFOORT


@pytest.mark.parametrize(
    "text",
    [
        "het moet beter te worden",  # Woerden
        "dat boek heb ik Gisteren gelezen",  # Giteren
        "we zijn naar de Winkels geweest",  # Winkel
        "ik ben in gedachten",
        "Leusen is ook een mooie naam",  # a misspelling at the start of a sentence
    ],
)
def test_a_common_word_or_a_word_without_place_context_is_never_fuzzy_matched(
    gazetteer: Gazetteer, text: str
) -> None:
    assert gazetteer.find_in_text(text) == []


# -- names that are also common words ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ik vind het best leuk",
        "Best jammer dat de bieb dicht is",
        "dat heb ik zelf gemaakt",
        "mede mogelijk gemaakt door de gemeente",
        "I made this at the library, best day ever",
        "het is echt heel erg",
        "ze leest graag in de winkel",
        "bij de bibliotheek, best goed geholpen",
        "in de hoek van het centrum",
        "op vakantie in Engeland",
        "made in Holland",
        "de bieb best vaak dicht",
        "de bieb meer open graag",
    ],
)
def test_common_words_are_not_taken_for_places_without_place_context(
    gazetteer: Gazetteer, text: str
) -> None:
    assert gazetteer.find_in_text(text) == []


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("de bieb in Best is dicht", "Best"),
        ("de bieb in best is dicht", "Best"),
        ("Bieb Best heeft nieuwe openingstijden", "Best"),
        ("Vandaag in Made geweest", "Made"),
        ("De lezing is in Made, niet in Breda", "Made"),
        ("Gisteren was de bieb van Best vol", "Best"),
    ],
)
def test_common_word_names_are_taken_with_a_preposition_library_word_or_capital(
    gazetteer: Gazetteer, text: str, place: str
) -> None:
    assert names(gazetteer.find_in_text(text))[0] == place


def test_words_in_links_handles_and_addresses_are_ignored(gazetteer: Gazetteer) -> None:
    text = "volgens @leusden_fan (https://leusden.nl/bieb, info@leusden.nl, www.leusden.nl) dicht"
    assert gazetteer.find_in_text(text) == []
    assert names(gazetteer.find_in_text("@leusden_fan zegt: bieb in Amersfoort")) == ["Amersfoort"]


# -- same-named places -------------------------------------------------------------------------


def test_hengelo_without_a_qualifier_is_the_bigger_one_and_marked_ambiguous(
    gazetteer: Gazetteer,
) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Hengelo")
    assert mention.place.geonameid == HENGELO_OV
    assert mention.ambiguous
    assert mention.alternatives == 1


@pytest.mark.parametrize(
    "text", ["de bieb in Hengelo (Gld)", "de bieb in Hengelo Gelderland", "Hengelo (gld)"]
)
def test_hengelo_with_a_gelderland_qualifier_is_the_one_in_gelderland(
    gazetteer: Gazetteer, text: str
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == HENGELO_GLD


def test_a_qualifier_that_chose_the_place_is_reported(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Hengelo Gelderland")
    assert mention.qualifier == "Gelderland"
    assert mention.ambiguous


@pytest.mark.parametrize(
    ("text", "geonameid"),
    [
        ("naar de bieb in Bergen", BERGEN_NH),
        ("naar de bieb in Bergen NH", BERGEN_NH),
        ("naar de bieb in Bergen (NH)", BERGEN_NH),
        ("naar de bieb in Bergen (L)", BERGEN_L),
        ("naar de bieb in Bergen Limburg", BERGEN_L),
    ],
)
def test_bergen_is_read_by_its_qualifier_or_else_as_bergen_noord_holland(
    gazetteer: Gazetteer, text: str, geonameid: int
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == geonameid


def test_plain_bergen_counts_the_other_places_of_that_name(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("naar de bieb in Bergen")
    # Bergen (L), and Mons, whose Dutch name is Bergen.
    assert (mention.ambiguous, mention.alternatives) == (True, 2)


def test_a_dutch_place_is_preferred_over_a_bigger_belgian_one(gazetteer: Gazetteer) -> None:
    countries = {p.country for p in gazetteer.candidates("Mechelen")}
    assert countries == {"NL", "BE"}
    [mention] = gazetteer.find_in_text("de bieb in Mechelen")
    assert mention.place.country == "NL"


# -- profile locations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "place"),
    [
        ("Amersfoort", "Amersfoort"),
        ("amersfoort", "Amersfoort"),
        ("Utrecht, NL", "Utrecht"),
        ("Amersfoort 🇳🇱", "Amersfoort"),
        ("wonend in Zwolle", "Zwolle"),
        ("Best", "Best"),
        ("Leusen", "Leusden"),
        ("Den Bosch / Utrecht", "'s-Hertogenbosch"),
        ("Bergen (NH.)", "Bergen"),
    ],
)
def test_a_profile_location_names_a_place(gazetteer: Gazetteer, location: str, place: str) -> None:
    mention = gazetteer.lookup(location)
    assert mention is not None
    assert mention.place.name == place


@pytest.mark.parametrize(
    "location",
    ["he/him 🌈", "the internet", "", "   ", "Living my best life", "Made in Holland", "🌍"],
)
def test_a_profile_location_that_names_no_place_gives_none(
    gazetteer: Gazetteer, location: str
) -> None:
    assert gazetteer.lookup(location) is None


def test_a_profile_qualifier_is_reported(gazetteer: Gazetteer) -> None:
    mention = gazetteer.lookup("Utrecht, NL")
    assert mention is not None
    assert mention.qualifier == "NL"


def test_a_qualifier_may_follow_in_or_in_de_for_a_shared_name(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Bergen in Limburg")
    assert mention.place.geonameid == BERGEN_L
    assert mention.qualifier == "Limburg"


@pytest.mark.parametrize(
    ("text", "geonameid"),
    [
        ("de bieb in Hengelo in de Achterhoek", HENGELO_GLD),
        ("de bieb in Hengelo (Achterhoek)", HENGELO_GLD),
        ("de bieb in Hengelo Twente", HENGELO_OV),
    ],
)
def test_a_region_that_lies_in_one_province_qualifies_as_that_province(
    gazetteer: Gazetteer, text: str, geonameid: int
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == geonameid


def test_every_reading_of_a_shared_name_is_kept_best_first(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in Hengelo")
    assert [p.geonameid for p in mention.readings] == [HENGELO_OV, HENGELO_GLD]
    [mention] = gazetteer.find_in_text("de bieb in Hengelo Gelderland")  # chosen by qualifier
    assert mention.place.geonameid == HENGELO_GLD
    assert [p.geonameid for p in mention.readings] == [HENGELO_OV, HENGELO_GLD]


# -- names that are also common words (the list) ---------------------------------------


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("de bieb in Lent", "Lent"),
        ("de bieb in Born", "Born"),
        ("de bieb in Echt", "Echt"),
        ("de bieb in Ede", "Ede"),
        ("de bieb in Best", "Best"),
        ("de bieb in Made", "Made"),
    ],
)
def test_a_common_word_place_after_a_place_preposition_is_a_place(
    gazetteer: Gazetteer, text: str, place: str
) -> None:
    assert names(gazetteer.find_in_text(text)) == [place]


@pytest.mark.parametrize(
    "text",
    [
        "Lent begins next week",
        "I was born and raised here",
        "echt waar, de bieb is dicht",
        "mede dankzij de bieb",
        "made my day",
    ],
)
def test_a_common_word_place_without_support_is_no_place(gazetteer: Gazetteer, text: str) -> None:
    assert gazetteer.find_in_text(text) == []


# -- abbreviations and spellings ---------------------------------------------------------------


def test_the_abbreviation_table_has_rows_and_each_names_its_place_by_name_and_id() -> None:
    rows = load_abbreviations()
    assert len(rows) >= 10
    for row in rows:  # Gazetteer() raises for a row whose id and name do not agree
        assert row.support in {"always", "context", "cue"}
    loaded = Gazetteer.load(abbreviations=ABBREVIATIONS)
    assert loaded.find_in_text("naar A'foort")[0].place.geonameid == AMERSFOORT


def test_the_abbreviation_table_adds_only_spellings_the_data_lacks(tmp_path: Path) -> None:
    header = tmp_path / "none.tsv"
    header.write_text("written\tplace\tgeonameid\tsupport\n", encoding="utf-8")
    without = Gazetteer.load(abbreviations=header)
    rows = load_abbreviations()
    assert [row.written for row in rows if without.candidates(row.written)] == []
    folded = [" ".join(words(row.written)) for row in rows]
    assert len(folded) == len(set(folded)), "two rows fold to the same name"


def test_an_abbreviation_whose_place_does_not_match_its_id_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "bad.tsv"
    table.write_text(
        f"written\tplace\tgeonameid\tsupport\nAdam\tRotterdam\t{AMSTERDAM}\talways\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="abbreviation 'Adam': no place 'Rotterdam'"):
        Gazetteer.load(abbreviations=table)


@pytest.mark.parametrize(
    ("text", "geonameid"),
    [
        ("de bieb in A'foort", AMERSFOORT),
        ("de bieb in A-foort", AMERSFOORT),
        ("de bieb in Afoort", AMERSFOORT),
        ("gisteren in A'dam", AMSTERDAM),
        ("gisteren in Adam", AMSTERDAM),
        ("Mokum ❤️", AMSTERDAM),  # a GeoNames alternate name
        ("de bieb in R'dam", ROTTERDAM),
        ("Rdam centrum", ROTTERDAM),
        ("de bieb in Utreg", UTRECHT),
        ("terug naar Dordt", DORDRECHT),  # a GeoNames alternate name
        ("vandaag naar Den Bosch", DEN_BOSCH),  # a GeoNames alternate name
        ("vandaag naar 's-Hertogenbosch", DEN_BOSCH),
    ],
)
def test_abbreviations_and_other_spellings_find_their_place(
    gazetteer: Gazetteer, text: str, geonameid: int
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == geonameid
    assert mention.score == 100


def test_an_apostrophe_abbreviation_is_written_as_it_appeared(gazetteer: Gazetteer) -> None:
    [mention] = gazetteer.find_in_text("de bieb in A'foort is dicht")
    assert mention.written == "A'foort"


@pytest.mark.parametrize("text", ["ik sprak Adam gisteren", "Adam zegt dat de bieb dicht is"])
def test_adam_is_a_first_name_unless_a_place_preposition_precedes_it(
    gazetteer: Gazetteer, text: str
) -> None:
    assert gazetteer.find_in_text(text) == []


# -- negation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "negation"),
    [
        ("niet die in Leusden", "niet"),
        ("Niet in Leusden!", "Niet"),
        ("not the one in Leusden", "not"),
        ("geen Leusden", "geen"),
        ("nooit in Leusden geweest", "nooit"),
    ],
)
def test_a_place_after_a_negation_in_the_same_clause_is_negated(
    gazetteer: Gazetteer, text: str, negation: str
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.geonameid == LEUSDEN
    assert mention.negation == negation


def test_only_the_place_before_maar_is_negated(gazetteer: Gazetteer) -> None:
    leusden, amersfoort = gazetteer.find_in_text("niet in Leusden maar in Amersfoort")
    assert leusden.negation == "niet"
    assert amersfoort.negation is None


@pytest.mark.parametrize(
    "text",
    [
        "niet open, de bieb in Leusden",  # punctuation ends the clause
        "niet in Utrecht, wel in Leusden",
        "geen bieb in Leusden",  # 'bieb' is no small word: this is about Leusden
        "de bieb in Leusden is niet open",  # the negation comes after
        "ik ben niet naar de bieb in Leusden geweest",
        "niet met de auto naar Leusden",  # too far: 'met' is no small word
    ],
)
def test_a_negation_outside_the_clause_or_not_right_before_the_place_does_not_negate_it(
    gazetteer: Gazetteer, text: str
) -> None:
    leusden = [m for m in gazetteer.find_in_text(text) if m.place.geonameid == LEUSDEN]
    assert len(leusden) == 1
    assert leusden[0].negation is None


def test_a_negated_profile_place_is_not_the_profile_location(gazetteer: Gazetteer) -> None:
    mention = gazetteer.lookup("Amersfoort, niet Leusden")
    assert mention is not None and mention.place.geonameid == AMERSFOORT
    assert gazetteer.lookup("niet Leusden") is None


# -- regions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("Twente", "region"),
        ("Veluwe", "region"),
        ("Randstad", "region"),
        ("Achterhoek", "region"),
        ("Noord-Holland", "province"),
        ("Gelderland", "province"),
        ("Brabant", "province"),
        ("Nederland", "country"),
        ("Spanje", "abroad"),
    ],
)
def test_a_profile_location_naming_a_region_is_a_region_not_a_place(
    gazetteer: Gazetteer, location: str, kind: str
) -> None:
    assert gazetteer.lookup(location) is None
    region = gazetteer.region(location)
    assert region is not None
    assert (region.written, region.kind) == (location, kind)


def test_noord_holland_is_the_province_not_the_hamlet_noord(gazetteer: Gazetteer) -> None:
    assert gazetteer.candidates("Noord")  # there are hamlets called Noord
    assert gazetteer.lookup("Noord-Holland") is None
    scan = gazetteer.scan("de bieb in Noord-Holland")
    assert scan.places == []
    assert [r.written for r in scan.regions] == ["Noord-Holland"]


def test_a_province_that_is_also_a_city_is_the_city(gazetteer: Gazetteer) -> None:
    assert "utrecht" in REGION_KINDS
    mention = gazetteer.lookup("Utrecht")
    assert mention is not None and mention.place.geonameid == UTRECHT
    assert gazetteer.region("Utrecht") is None


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("de bieb in Twente is dicht", ["Twente"]),
        ("een dagje op de veluwe", ["veluwe"]),
        ("ik gooi het boek weg", []),  # 'gooi' is a verb here: no capital, no preposition
        ("zie https://twente.nl/bieb", []),
    ],
)
def test_regions_in_running_text_need_a_capital_or_a_preposition(
    gazetteer: Gazetteer, text: str, regions: list[str]
) -> None:
    assert [r.written for r in gazetteer.scan(text).regions] == regions


def test_a_region_is_never_fuzzy_matched_to_a_place(gazetteer: Gazetteer) -> None:
    assert gazetteer.lookup("Twente") is None
    assert gazetteer.find_in_text("de bieb in Twente") == []


# -- contrastive negation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "negation", "other"),
    [
        ("Niet de bieb in Leusden maar die in Hooglanderveen", "Niet", "Hooglanderveen"),
        ("niet de bieb in Leusden, die in Hooglanderveen", "niet", "Hooglanderveen"),
        ("Niet de bieb in Leusden, ik bedoel die in Amersfoort", "Niet", "Amersfoort"),
        ("not the library in Leusden but the one in Amersfoort", "not", "Amersfoort"),
    ],
)
def test_a_negation_before_the_library_word_negates_the_place_when_the_sentence_turns(
    gazetteer: Gazetteer, text: str, negation: str, other: str
) -> None:
    leusden, turned_to = gazetteer.find_in_text(text)
    assert (leusden.place.geonameid, leusden.negation) == (LEUSDEN, negation)
    assert (turned_to.place.name, turned_to.negation) == (other, None)


@pytest.mark.parametrize(
    "text",
    [
        "ik ben niet naar de bieb in Leusden geweest",  # no turn to another place
        "de bieb in Leusden is niet open maar dicht",  # the negation comes after the place
        "niet de bieb in Leusden. Maar die in Amersfoort",  # the turn is in another sentence
        "de bieb in Amersfoort is niet open, maar die in Leusden wel",  # 'maar' ends the reach
    ],
)
def test_a_negation_without_a_turn_after_the_place_does_not_negate_it(
    gazetteer: Gazetteer, text: str
) -> None:
    [leusden] = [m for m in gazetteer.find_in_text(text) if m.place.geonameid == LEUSDEN]
    assert leusden.negation is None


@pytest.mark.parametrize(
    "text",
    [
        "Ik snap niet waarom de bieb in Leusden zo vroeg dicht gaat, maar goed.",
        "Geen idee waarom de bieb in Leusden dicht is, maar wel balen",
    ],
)
def test_a_turn_that_names_no_other_place_does_not_negate_the_place_before_it(
    gazetteer: Gazetteer, text: str
) -> None:
    # The module doc: a negation earlier in the sentence, 'and the sentence then turns to
    # another place'. Here it turns to no place: the post is about the bieb in Leusden.
    [leusden] = gazetteer.find_in_text(text)
    assert leusden.place.geonameid == LEUSDEN
    assert leusden.negation is None


# -- 'een' and 'te' ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "alles in één gebouw, handig",
        "de lezing was in een volle zaal",
        "In één gebouw: bieb en muziekschool",
        "Een mooie dag in de bieb",  # a capital opening the sentence is no support
    ],
)
def test_een_after_a_preposition_is_the_article_not_the_village(
    gazetteer: Gazetteer, text: str
) -> None:
    assert gazetteer.find_in_text(text) == []


@pytest.mark.parametrize("text", ["we wonen in Een", "vandaag naar Een, bij Norg"])
def test_een_with_a_capital_after_a_preposition_is_the_village(
    gazetteer: Gazetteer, text: str
) -> None:
    [een, *_] = gazetteer.find_in_text(text)
    assert een.place.name == "Een"
    assert een.place.admin1 == "Drenthe"


@pytest.mark.parametrize(
    "text", ["zonder het te melden", "het is niet te melden", "vergeten het boek te verlengen"]
)
def test_a_word_after_te_in_lower_case_is_an_infinitive_not_a_place(
    gazetteer: Gazetteer, text: str
) -> None:
    assert gazetteer.find_in_text(text) == []


@pytest.mark.parametrize(
    ("text", "name"), [("de bieb te Leusden", "Leusden"), ("de bieb te Melden", "Melden")]
)
def test_a_place_after_te_with_a_capital_is_a_place(
    gazetteer: Gazetteer, text: str, name: str
) -> None:
    [mention] = gazetteer.find_in_text(text)
    assert mention.place.name == name


@pytest.mark.parametrize(
    ("text", "town"),
    [
        ("Lezing over de Domtoren in de bieb", "Utrecht"),
        ("Uitzicht op de Euromast vanuit de bibliotheek", "Rotterdam"),
        ("11-11! Zelfs de bieb heeft een Krabbegat-vlag", "Bergen op Zoom"),
    ],
)
def test_a_landmark_names_its_town(text: str, town: str) -> None:
    assert [m.place.name for m in default_gazetteer().find_in_text(text)] == [town]


# -- words with their offsets: the per-run tokenizer is the per-character one ------------------

TRICKY = "abcXYZ019 .,!?#@'-/:\n\téÉßﬁ½😡\u0301\u200bİøÖĳĲ中ـ\u00a0…’\u3000ǈﬀ㎏"


def _tokens_char_by_char(text: str) -> list[object]:
    """The words of `fold(text)` found the plain way: every character folded as `fold` would,
    each folded piece kept with the index of its character, and a word a maximal stretch of
    pieces that are not a space, ending where the next space piece's character stands."""
    from itertools import groupby

    from listener.geo.gazetteer import _LINK, _fold_char, _word

    links = [m.span() for m in _LINK.finditer(text)]
    pieces = [(i, p) for i, ch in enumerate(text) for p in _fold_char(ch)] + [(len(text), " ")]
    out: list[object] = []
    for spaced, stretch in groupby(enumerate(pieces), key=lambda item: item[1][1] == " "):
        if spaced:
            continue
        run = list(stretch)
        after = pieces[run[-1][0] + 1][0]  # the character of the space piece that ends it
        previous_end = out[-1].end if out else 0  # type: ignore[attr-defined]
        folded = "".join(p for _, (_, p) in run)
        out.append(_word(text, folded, run[0][1][0], after, links, previous_end))
    return out


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40))
def test_the_words_of_a_text_are_those_read_one_character_at_a_time(text: str) -> None:
    from listener.geo.gazetteer import _tokens

    assert _tokens(text) == _tokens_char_by_char(text)


def test_a_text_scanned_twice_in_a_row_is_read_once(
    gazetteer: Gazetteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans: list[str] = []
    real = Gazetteer._scan
    monkeypatch.setattr(
        Gazetteer, "_scan", lambda self, text, **kw: scans.append(text) or real(self, text, **kw)
    )
    text = "de bieb in Leusden is dicht"
    first = gazetteer.scan(text)
    assert gazetteer.scan(text) is first and gazetteer.find_in_text(text) == first.places
    gazetteer.scan("iets anders in Amersfoort")
    assert [m.place.name for m in gazetteer.find_in_text(text)] == ["Leusden"]
    assert scans == [text, "iets anders in Amersfoort", text]


def test_a_profile_location_is_read_once_and_a_bounded_number_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import listener.geo.gazetteer as module

    gazetteer = default_gazetteer()
    monkeypatch.setattr(gazetteer, "_profiles", {})
    monkeypatch.setattr(module, "PROFILES_REMEMBERED", 2)
    scans: list[str] = []
    real = Gazetteer._scan
    monkeypatch.setattr(
        Gazetteer, "_scan", lambda self, text, **kw: scans.append(text) or real(self, text, **kw)
    )
    found = gazetteer.lookup("Leusden, NL")
    assert found is not None and found.place.name == "Leusden"
    assert gazetteer.lookup("Leusden, NL") == found and gazetteer.region("Leusden, NL") is None
    assert scans == ["Leusden, NL"]
    region = gazetteer.region("Twente")
    assert region is not None and region.written == "Twente"
    gazetteer.lookup("Zwolle")
    assert "Leusden, NL" not in gazetteer._profiles  # the oldest went first
    assert gazetteer.lookup("Leusden, NL") == found and len(gazetteer._profiles) == 2


LINKY = "abc .:/@-_wWhHtTpPsSnNlLbBeEcCoOmMiIfFrRuU019é"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(LINKY), max_size=40) | st.text(max_size=40))
def test_the_quick_look_for_links_finds_every_link_the_full_pattern_finds(text: str) -> None:
    from listener.geo.gazetteer import _LINK, _links

    assert _links(text) == [m.span() for m in _LINK.finditer(text)]


def test_links_addresses_and_handles_are_found_behind_their_hints() -> None:
    from listener.geo.gazetteer import _links

    text = "zie WWW.Bieb.NL, mail info@bieb.nl of @bieb.bsky.social; https://x en bieb.frl/a"
    assert [text[a:b] for a, b in _links(text)] == [
        "WWW.Bieb.NL,",
        "info@bieb.nl",
        "@bieb.bsky.social",
        "https://x",
        "bieb.frl/a",
    ]
    assert _links("de bieb in Leusden is dicht. Jammer!") == []
