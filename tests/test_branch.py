"""Which branch: the names that point at one, and `BranchResolver.choose` through
`Classifier.decide`.

The branches of the test setup stand at the coordinates the packaged gazetteer gives their place
(Eemhuis at the centre of Amersfoort, Schothorst at the district Schothorst), so every distance
here is computed from the data, and the first tests check that the places relied on are there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from geopy.distance import geodesic

from listener.branch import OWN_BRANCH_KM, branch_names, common_word, searchable
from listener.config import Config, load_config
from listener.geo.gazetteer import Place, default_gazetteer
from listener.pipeline import Classifier, Decision
from listener.post import Author, Geo, Post
from tests.support.configs import ROOT, write_setup


def place(name: str, province: str | None = None) -> Place:
    """The gazetteer's place of that name (in that province, for a shared name)."""
    found = default_gazetteer().candidates(name)
    return next(p for p in found if province is None or p.admin1 == province)


def km(a: Place, lat: float, lon: float) -> float:
    return geodesic((a.lat, a.lon), (lat, lon)).km


def branch(id_: str, name: str, town: str, at: Place, radius_km: float) -> str:
    return (
        f'  {{ id = "{id_}", name = "{name}", town = "{town}", '
        f"lat = {at.lat}, lon = {at.lon}, radius_km = {radius_km} }},"
    )


def queries() -> str:
    """Three organisations: Eemland (two branches in Amersfoort, one in Leusden, one in the
    village Hooglanderveen), Kennemerwaard (Alkmaar and Bergen NH), Gelderland Zuid (Berg en Dal
    and Groesbeek); a brand search for each and the generic 'de bieb'."""
    return "\n".join(
        [
            "[[organisations]]",
            'id = "eemland"',
            'name = "Bibliotheek Eemland"',
            'aliases = ["Bieb Eemland"]',
            "branches = [",
            branch("eemhuis", "Eemhuis", "Amersfoort", place("Amersfoort"), 5),
            branch("schothorst", "Bibliotheek Schothorst", "Amersfoort", place("Schothorst"), 2),
            branch("leusden", "Bibliotheek Leusden", "Leusden", place("Leusden"), 2.5),
            branch(
                "hooglanderveen",
                "Bibliotheek Hooglanderveen",
                "Hooglanderveen",
                place("Hooglanderveen"),
                2,
            ),
            "]",
            "",
            "[[organisations]]",
            'id = "kennemerwaard"',
            'name = "Bibliotheek Kennemerwaard"',
            "branches = [",
            branch("alkmaar", "Bibliotheek Alkmaar", "Alkmaar", place("Alkmaar"), 3),
            branch("bergen", "Bibliotheek Bergen", "Bergen", place("Bergen", "Noord-Holland"), 3),
            "]",
            "",
            "[[organisations]]",
            'id = "gelderland-zuid"',
            'name = "Bibliotheek Gelderland Zuid"',
            "branches = [",
            branch(
                "berg-en-dal", "Bibliotheek Berg en Dal", "Berg en Dal", place("Berg en Dal"), 2
            ),
            branch("groesbeek", "Bibliotheek Groesbeek", "Groesbeek", place("Groesbeek"), 2),
            "]",
            "",
            *(
                f'[[searches]]\nid = "{org}-brand"\norg = "{org}"\nkind = "brand"\n'
                for org in ("eemland", "kennemerwaard", "gelderland-zuid")
            ),
            "[[searches]]",
            'id = "de-bieb"',
            'kind = "local"',
            'terms = ["de bieb", "bieb", "bibliotheek"]',
            "",
        ]
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(write_setup(tmp_path_factory.mktemp("setup"), queries=queries()))


@pytest.fixture(scope="module")
def classifier(config: Config) -> Classifier:
    return Classifier(config)


def post(text: str, *, profile: str | None = None, geo: tuple[float, float] | None = None) -> Post:
    return Post(
        id="p",
        source="bluesky",
        text=text,
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        author=Author(handle="someone", location=profile),
        geo=Geo(*geo) if geo else None,
    )


def decide(
    classifier: Classifier,
    text: str,
    *,
    profile: str | None = None,
    geo: tuple[float, float] | None = None,
) -> Decision:
    return classifier.decide(post(text, profile=profile, geo=geo))


# -- the data these tests rely on --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gemeente"),
    [
        ("Amersfoort", "Amersfoort"),
        ("Schothorst", "Amersfoort"),
        ("Hooglanderveen", "Amersfoort"),
        ("Soesterkwartier", "Amersfoort"),
        ("Calveen", "Amersfoort"),
        ("Randenbroek", "Amersfoort"),
        ("Leusden", "Leusden"),
        ("Alkmaar", "Alkmaar"),
        ("Berg en Dal", "Berg en Dal"),
        ("Groesbeek", "Berg en Dal"),
    ],
)
def test_the_places_these_tests_use_are_in_the_data(name: str, gemeente: str) -> None:
    assert place(name).gemeente == gemeente


def test_bergen_noord_holland_is_in_the_data_and_bergen_is_also_a_word() -> None:
    assert place("Bergen", "Noord-Holland").gemeente == "Bergen (NH.)"
    assert default_gazetteer().find_in_text("ik kan die boeken nergens meer bergen") == []


# -- branch_names and searchable ---------------------------------------------------------------

NAMES = """\
[[organisations]]
id = "eemland"
name = "Bibliotheek Eemland"
aliases = ["Bibliotheek Amersfoort"]
branches = [
  { id = "eemhuis", name = "Bibliotheek Eemhuis", lat = 52.155, lon = 5.3875 },
  { id = "leusden", name = "Bibliotheek Eemland Leusden", lat = 52.1325, lon = 5.43194 },
  { id = "vathorst", name = "Bibliotheek Amersfoort Vathorst", lat = 52.19, lon = 5.41 },
  { id = "hoofd", name = "Bibliotheek Eemland", lat = 52.155, lon = 5.3875 },
  { id = "ede", name = "Bieb Ede", lat = 52.04, lon = 5.66 },
]

[[organisations]]
id = "utrecht"
name = "Bibliotheek Utrecht"
aliases = ["Bibliotheek Neude"]
branches = [
  { id = "neude", name = "Bibliotheek Neude", lat = 52.0927, lon = 5.1188 },
  { id = "lunetten", name = "Bibliotheek Lunetten", lat = 52.0618, lon = 5.1347 },
  { id = "oost", name = "Bibliotheek Oost", lat = 52.09, lon = 5.14 },
]
"""


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(write_setup(tmp_path_factory.mktemp("names"), queries=NAMES))


@pytest.fixture(scope="module")
def example() -> Config:
    return load_config(ROOT / "config.example.toml")


def test_a_branch_is_named_by_its_distinctive_words(named: Config) -> None:
    names = branch_names(named.organisations["eemland"])
    assert names["eemhuis"] == "eemhuis"  # 'Bibliotheek Eemhuis' without the generic word
    assert names["leusden"] == "leusden"  # without the organisation's name


def test_the_words_of_an_alias_are_removed_from_a_branch_name(named: Config) -> None:
    names = branch_names(named.organisations["eemland"])
    assert names["vathorst"] == "vathorst"  # 'Bibliotheek Amersfoort' is an alias
    assert "amersfoort vathorst" not in names


def test_an_alias_that_is_also_a_branch_still_names_that_branch(named: Config) -> None:
    # 'Bibliotheek Neude' is an alias and a branch: removing the alias would leave nothing.
    assert branch_names(named.organisations["utrecht"]) == {
        "neude": "neude",
        "lunetten": "lunetten",
        "oost": "oost",
    }


def test_a_branch_with_nothing_distinctive_or_only_short_words_has_no_name(
    named: Config,
) -> None:
    names = branch_names(named.organisations["eemland"])
    assert "hoofd" not in names.values()  # 'Bibliotheek Eemland' is the organisation's name
    assert "ede" not in names.values()  # 'Ede' is three letters
    assert names == {"eemhuis": "eemhuis", "leusden": "leusden", "vathorst": "vathorst"}


def test_the_example_configs_branches_are_named_as_a_webcare_employee_names_them(
    example: Config,
) -> None:
    assert branch_names(example.organisations["coda"]) == {
        "centrale": "centrale",  # 'Centrale Bibliotheek'
        "de maten": "de-maten",
        "ugchelen": "ugchelen",
        "zevenhuizen": "zevenhuizen",
        "dok zuid": "dok-zuid",
    }
    assert branch_names(example.organisations["eemland"])["eemhuis"] == "amersfoort"


@pytest.mark.parametrize("name", ["eemhuis", "dok zuid", "neude", "zevenhuizen"])
def test_a_distinctive_branch_name_is_searchable_by_itself(name: str) -> None:
    assert searchable(name)


@pytest.mark.parametrize(
    "name",
    ["centrum", "centrale", "de maten", "het huis", "oost", "dok", "haven", "buiten", "forum"],
)
def test_an_ordinary_word_an_article_name_or_a_short_name_is_not_searchable(name: str) -> None:
    assert not searchable(name)


def test_a_name_of_several_words_is_searched_as_a_phrase_even_of_everyday_words() -> None:
    assert common_word("haven") and common_word("oude")  # wordfreq: 4.6 and 5.2 in Dutch
    assert searchable("oude haven")
    assert not common_word("eemhuis") and not common_word("neude")


EVERYDAY = """\
[[organisations]]
id = "almere"
name = "Nieuwe Bibliotheek Almere"
branches = [
  { id = "haven", name = "Bibliotheek Almere Haven", lat = 52.3353, lon = 5.2192 },
  { id = "buiten", name = "Bibliotheek Almere Buiten", lat = 52.3917, lon = 5.2722 },
  { id = "stadhuisplein", name = "Bibliotheek Stadhuisplein", lat = 52.3713, lon = 5.2200 },
]

[[organisations]]
id = "sint-niklaas"
name = "Bib Sint-Niklaas"
branches = [
  { id = "sint-gillis-waas", name = "Bib Sint-Gillis-Waas", lat = 51.2237, lon = 4.1244 },
]

[[searches]]
id = "almere-brand"
org = "almere"
kind = "brand"
interval = "5m"

[[searches]]
id = "sint-niklaas-brand"
org = "sint-niklaas"
kind = "brand"
interval = "5m"
"""


@pytest.fixture(scope="module")
def everyday(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier(load_config(write_setup(tmp_path_factory.mktemp("w"), queries=EVERYDAY)))


@pytest.mark.parametrize(
    "text",
    [
        "I have no idea what to do this weekend",  # 'have' is fuzzy 89 to 'haven'
        "Buiten is het koud, binnen is het warm",
        "De haven van Rotterdam ligt vol schepen",
        "File bij Sint-Gillis-Waas, sta al 20 minuten stil",  # the branch's town, not the bib
    ],
)
def test_a_brand_search_does_not_find_a_branch_named_by_an_everyday_word_or_a_place(
    everyday: Classifier, text: str
) -> None:
    decision = decide(everyday, text)
    assert decision.org is None, decision.evidence
    assert decision.evidence == []  # no search so much as looked at it


@pytest.mark.parametrize(
    ("text", "branch", "evidence"),
    [
        # a distinctive branch name beside everyday ones is still searched for
        (
            "Het Stadhuisplein is vandaag dicht",
            "stadhuisplein",
            "search almere-brand: text has branch 'stadhuisplein' (exact)",
        ),
        # an everyday one still picks the branch of a post about the organisation
        (
            "De Nieuwe Bibliotheek Almere in Haven is vandaag dicht",
            "haven",
            "text names branch haven ('haven')",
        ),
    ],
)
def test_branch_names_beside_everyday_ones_still_find_and_pick_their_branch(
    everyday: Classifier, text: str, branch: str, evidence: str
) -> None:
    decision = decide(everyday, text)
    assert (decision.org, decision.branch) == ("almere", branch)
    assert evidence in decision.evidence


def test_a_brand_search_finds_a_searchable_branch_name_but_not_an_ordinary_one(
    example: Config,
) -> None:
    classifier = Classifier(example)
    assert classifier.decide(post("Het Eemhuis is vandaag dicht")).org == "eemland"
    assert classifier.decide(post("dok Zuid is vandaag dicht")).org == "coda"
    assert classifier.decide(post("de centrale is vandaag dicht")).org is None


# -- the text names the branch -----------------------------------------------------------------


def test_the_branch_building_named_in_the_text_is_the_branch_in_a_town_with_several(
    classifier: Classifier,
) -> None:
    decision = decide(classifier, "Het Eemhuis in Amersfoort is vandaag dicht")
    assert (decision.org, decision.branch) == ("eemland", "eemhuis")
    assert not any(line.endswith("branch unknown") for line in decision.evidence)


def test_the_branch_building_named_in_the_text_wins_over_the_profile(
    classifier: Classifier,
) -> None:
    decision = decide(classifier, "Het Eemhuis is vandaag dicht", profile="Leusden")
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", "eemhuis", None)
    assert "text names branch eemhuis ('eemhuis')" in decision.evidence


# -- a town, a village or district -------------------------------------------------------------


def test_a_town_with_several_branches_leaves_the_branch_unknown(classifier: Classifier) -> None:
    decision = decide(classifier, "de bieb in Amersfoort is dicht")
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", None, None)
    assert (
        "Amersfoort has 2 branches of eemland and nothing tells which: branch unknown"
        in decision.evidence
    )


def test_a_profile_in_a_town_with_several_branches_leaves_the_branch_unknown(
    classifier: Classifier,
) -> None:
    decision = decide(classifier, "de bieb is dicht", profile="Amersfoort")
    assert (decision.org, decision.branch) == ("eemland", None)
    assert (
        "Amersfoort has 2 branches of eemland and nothing tells which: branch unknown"
        in decision.evidence
    )


@pytest.mark.parametrize(
    ("text", "profile"),
    [("de bieb in Leusden is dicht", None), ("de bieb is dicht", "Leusden")],
)
def test_a_town_with_one_branch_names_that_branch(
    classifier: Classifier, text: str, profile: str | None
) -> None:
    decision = decide(classifier, text, profile=profile)
    assert (decision.org, decision.branch) == ("eemland", "leusden")
    assert not any(line.endswith("branch unknown") for line in decision.evidence)


@pytest.mark.parametrize(
    ("text", "profile"),
    [("de bieb in Schothorst is dicht", None), ("de bieb is dicht", "Schothorst")],
)
def test_a_district_with_a_branch_of_its_own_takes_that_branch(
    classifier: Classifier, text: str, profile: str | None
) -> None:
    decision = decide(classifier, text, profile=profile)
    assert (decision.org, decision.branch) == ("eemland", "schothorst")


def test_a_district_with_a_branch_close_to_its_centre_takes_that_branch(
    classifier: Classifier,
) -> None:
    # Randenbroek is no branch's town, but the Eemhuis stands within OWN_BRANCH_KM of it.
    randenbroek, eemhuis = place("Randenbroek"), place("Amersfoort")
    distance = km(randenbroek, eemhuis.lat, eemhuis.lon)
    assert distance <= OWN_BRANCH_KM
    decision = decide(classifier, "de bieb in Randenbroek is dicht")
    assert (decision.org, decision.branch) == ("eemland", "eemhuis")
    assert decision.distance_km == pytest.approx(distance, abs=0.01)


@pytest.mark.parametrize(
    ("name", "nearest", "town"),
    [
        ("Soesterkwartier", "eemhuis", "Amersfoort"),
        ("Calveen", "hooglanderveen", "Hooglanderveen"),
    ],
)
def test_a_district_in_the_municipality_without_a_branch_of_its_own_leaves_it_unknown(
    classifier: Classifier, name: str, nearest: str, town: str
) -> None:
    district = place(name)
    assert district.feature_code == "PPLX" and district.gemeente == "Amersfoort"
    branches = [place(t) for t in ("Amersfoort", "Schothorst", "Hooglanderveen")]
    distances = sorted(km(district, b.lat, b.lon) for b in branches)
    assert distances[0] > OWN_BRANCH_KM
    assert km(district, place(town).lat, place(town).lon) == distances[0]
    decision = decide(classifier, f"de bieb in {name} is dicht")
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", None, None)
    assert (
        f"{name} in Amersfoort has no branch of its own ({nearest} is {distances[0]:.1f} km "
        "away): branch unknown"
    ) in decision.evidence


# -- the profile only --------------------------------------------------------------------------


def test_a_post_about_the_app_placed_by_the_profile_only_has_no_branch(
    classifier: Classifier,
) -> None:
    decision = decide(classifier, "de app van de bieb doet het weer niet", profile="Leusden")
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", None, None)
    assert (
        "about the whole organisation ('app'), placed by the profile only: branch unknown"
        in decision.evidence
    )


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ("de app van de bieb in Leusden doet het weer niet", None),  # the text places it
        ("de app van de bieb in Leusden doet het weer niet", "Amersfoort"),
        ("de bieb is weer dicht", "Leusden"),  # not about the whole organisation
    ],
)
def test_a_post_placed_by_its_text_or_not_about_the_whole_organisation_keeps_its_branch(
    classifier: Classifier, text: str, profile: str | None
) -> None:
    decision = decide(classifier, text, profile=profile)
    assert (decision.org, decision.branch) == ("eemland", "leusden")
    assert not any(line.startswith("about the whole organisation") for line in decision.evidence)


@pytest.mark.parametrize("profile", ["Leusden/Amersfoort", "Leusden en Amersfoort", "Leusden e.o."])
def test_a_profile_that_covers_an_area_leaves_the_branch_unknown(
    classifier: Classifier, profile: str
) -> None:
    decision = decide(classifier, "de bieb is dicht", profile=profile)
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", None, None)
    assert f"the profile location '{profile}' covers an area: branch unknown" in decision.evidence


def test_a_profile_of_one_town_does_not_cover_an_area(classifier: Classifier) -> None:
    decision = decide(classifier, "de bieb is dicht", profile="Leusden, NL")
    assert (decision.org, decision.branch) == ("eemland", "leusden")


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("Berg en Dal", "berg-en-dal"),  # one village whose name has 'en' in it
        ("Leusden · zij/haar", "leusden"),  # one town, and pronouns with a slash
    ],
)
def test_a_profile_naming_one_town_is_no_area_even_with_en_or_a_slash_in_it(
    classifier: Classifier, profile: str, expected: str
) -> None:
    decision = decide(classifier, "de bieb is dicht", profile=profile)
    assert decision.branch == expected


# -- coordinates -------------------------------------------------------------------------------


def test_coordinates_about_halfway_between_two_branches_leave_the_branch_unknown(
    classifier: Classifier,
) -> None:
    eemhuis, leusden = place("Amersfoort"), place("Leusden")
    # 45% of the way from the Eemhuis to Leusden: inside both areas, neither clearly nearer.
    lat = eemhuis.lat + 0.45 * (leusden.lat - eemhuis.lat)
    lon = eemhuis.lon + 0.45 * (leusden.lon - eemhuis.lon)
    assert km(eemhuis, lat, lon) > 0.7 * km(leusden, lat, lon)
    decision = decide(classifier, "de bieb is dicht", geo=(lat, lon))
    assert (decision.org, decision.branch, decision.distance_km) == ("eemland", None, None)
    assert (
        "the post's coordinates are about halfway between eemhuis and leusden: branch unknown"
        in decision.evidence
    )


def test_coordinates_clearly_nearer_one_branch_take_that_branch(classifier: Classifier) -> None:
    eemhuis, leusden = place("Amersfoort"), place("Leusden")
    lat = eemhuis.lat + 0.8 * (leusden.lat - eemhuis.lat)
    lon = eemhuis.lon + 0.8 * (leusden.lon - eemhuis.lon)
    assert km(leusden, lat, lon) < 0.7 * km(eemhuis, lat, lon)
    decision = decide(classifier, "de bieb is dicht", geo=(lat, lon))
    assert (decision.org, decision.branch) == ("eemland", "leusden")
    assert not any("halfway" in line for line in decision.evidence)


# -- a branch name that is also a word, a negated branch place ---------------------------------


def test_a_branch_name_used_as_an_ordinary_word_does_not_name_the_branch(
    classifier: Classifier,
) -> None:
    decision = decide(
        classifier,
        "Bibliotheek Kennemerwaard, ik kan die boeken nergens meer bergen",
        profile="Alkmaar",
    )
    assert decision.org == "kennemerwaard"
    assert decision.branch == "alkmaar"
    assert not any("names branch bergen" in line for line in decision.evidence)


def test_a_branch_name_used_as_the_place_names_the_branch(classifier: Classifier) -> None:
    decision = decide(
        classifier, "Bibliotheek Kennemerwaard: de bieb in Bergen is dicht", profile="Alkmaar"
    )
    assert (decision.org, decision.branch) == ("kennemerwaard", "bergen")


def test_a_negated_branch_place_does_not_name_that_branch(classifier: Classifier) -> None:
    decision = decide(classifier, "de bieb in Amersfoort, niet die in Leusden")
    assert decision.org == "eemland"
    assert decision.branch is None
    assert "'Leusden' is negated: not used" in decision.evidence


@pytest.mark.parametrize(
    "text",
    [
        "Bibliotheek Eemland: niet die in Leusden, die in Hooglanderveen is dicht",
        "Niet de bieb in Leusden maar die in Hooglanderveen is dicht",
    ],
)
def test_the_branch_place_after_a_negated_one_is_the_branch(
    classifier: Classifier, text: str
) -> None:
    decision = decide(classifier, text)
    assert (decision.org, decision.branch) == ("eemland", "hooglanderveen")
    assert "'Leusden' is negated: not used" in decision.evidence
