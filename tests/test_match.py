"""Match: names, aliases, handles and terms, folded and fuzzy; exclusions and other senses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listener.config.model import Organisation, Search
from listener.match import SearchMatcher, Text, handle_keys, mentions, normal_handle
from listener.post import Author, Post

ORG = Organisation(
    id="eemland",
    name="Bibliotheek Eemland",
    aliases=["Bieb Eemland"],
    handles=["@bibliotheekeemland", "eemlandbieb.bsky.social", "@bieb@mastodon.nl"],
)
BRAND = Search(id="brand", org="eemland", kind="brand", exclude=["vacature"])
LOCAL = Search(id="local", kind="local", terms=["de bieb", "bibliotheek"])
LOCAL_ALL = Search(
    id="local", kind="local", terms=["de bieb", "de bibliotheek", "bieb", "bibliotheek", "library"]
)


def post(
    text: str, *, handle: str | None = None, source: str = "bluesky", lang: str | None = None
) -> Post:
    return Post(
        id="p",
        source=source,
        text=text,
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        lang=lang,
        author=Author(handle=handle),
    )


def match(search: Search, text: str, **kwargs: str) -> tuple[bool, list[str], list[str]]:
    matcher = SearchMatcher(search, ORG if search.org else None)
    result = matcher.match(post(text, **kwargs), Text.of(text))
    return result.matched, result.evidence, result.near_misses


@pytest.mark.parametrize(
    "text",
    [
        "Vandaag naar Bibliotheek Eemland geweest",
        "VANDAAG NAAR BIBLIOTHEEK EEMLAND",
        "naar de bibliothéék-Eemland!",
        "dank @BibliotheekEemland voor de hulp",
        "#BibliotheekEemland is top",
        "Bieb Eemland heeft nieuwe boeken",
        "zie eemlandbieb.bsky.social",
    ],
)
def test_a_brand_search_finds_names_aliases_and_handles_however_written(text: str) -> None:
    matched, evidence, _ = match(BRAND, text)
    assert matched, evidence
    assert "(exact)" in evidence[0] or "text mentions @BibliotheekEemland" in evidence[0]


def test_a_misspelt_name_matches_fuzzily_with_its_score() -> None:
    matched, evidence, _ = match(BRAND, "Bibliotheek Eemlnd is dicht")
    assert matched
    assert "'bibliotheek eemlnd' → name 'Bibliotheek Eemland' (fuzzy" in evidence[0]


def test_a_word_just_too_far_from_the_name_is_a_near_miss_not_a_match() -> None:
    matched, _, near = match(BRAND, "Bibliotheek Eemlnad is dicht")
    assert not matched
    assert near == [
        "search brand: 'bibliotheek eemlnad' is like name 'Bibliotheek Eemland' "
        "(fuzzy 86, needs 88)"
    ]


@pytest.mark.parametrize(
    "other", ["Bibliotheek Eemnes", "Bibliotheek Eemsdelta", "Bibliotheek Emmen"]
)
def test_a_shared_generic_word_does_not_make_another_library_match(other: str) -> None:
    matched, _, near = match(BRAND, f"{other} is dicht")
    assert not matched
    assert near == []


def test_a_misspelt_hashtag_matches_the_name_written_as_one_word() -> None:
    matched, evidence, _ = match(BRAND, "#BibliotheekEemlnd is top")
    assert matched
    assert "'bibliotheekeemlnd' → name 'Bibliotheek Eemland' (fuzzy 97)" in evidence[0]


def test_short_terms_match_only_exactly() -> None:
    search = Search(id="s", kind="local", terms=["bieb"])
    assert match(search, "de bieb is dicht")[0]
    assert not match(search, "de biebel is dicht")[0]
    assert not match(search, "bieber fever")[0]


def test_an_exclusion_rejects_the_post_and_says_why() -> None:
    matched, evidence, _ = match(BRAND, "Vacature bij Bibliotheek Eemland")
    assert not matched
    assert evidence[-1] == "search brand: rejected, excluded by 'vacature'"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("mijn Steam bibliotheek is leeg", "steam"),
        ("welke Python bibliotheek gebruik je", "python"),
        ("mijn Spotify bibliotheek is weg", "spotify"),
    ],
)
def test_a_local_search_rejects_other_senses_of_the_word(text: str, cue: str) -> None:
    matched, evidence, _ = match(LOCAL, text)
    assert not matched
    assert evidence[-1] == f"search local: rejected, another sense of the word ('{cue}')"


def test_brand_matches_are_not_affected_by_sense_cues() -> None:
    assert match(BRAND, "Bibliotheek Eemland start een gaming-avond met Steam")[0]


def test_source_and_language_filters_apply() -> None:
    search = Search(id="s", kind="local", terms=["de bieb"], sources=["mastodon"], languages=["nl"])
    matcher = SearchMatcher(search, None)
    assert matcher.applies_to(post("x", source="mastodon", lang="nl-NL"))
    assert matcher.applies_to(post("x", source="mastodon", lang=None))
    assert not matcher.applies_to(post("x", source="bluesky", lang="nl"))
    assert matcher.applies_to(post("x", source="bluesky", lang="nl"), fetched_by="mastodon")
    assert not matcher.applies_to(post("x", source="mastodon", lang="en"))


@pytest.mark.parametrize(
    "text",
    [
        "vraagje voor @bieb@mastodon.nl: open?",
        "vraagje voor @Bieb@Mastodon.nl.",
        "cc @eemlandbieb",
        "cc @eemlandbieb.bsky.social",
    ],
)
def test_a_mention_of_a_handle_matches_on_any_platform(text: str) -> None:
    matched, evidence, _ = match(BRAND, text)
    assert matched, evidence
    assert "text mentions @" in evidence[0]


@pytest.mark.parametrize(
    "text", ["de bieb is dicht", "@bieb is dicht", "mail bieb@mastodon.nl", "@bieb@mastodon.social"]
)
def test_a_short_account_name_is_not_a_mention_of_the_handle(text: str) -> None:
    assert not match(BRAND, text)[0]


def test_handles_are_compared_whole_or_by_a_distinctive_account_name() -> None:
    assert normal_handle("@BiebEemland") == "biebeemland"
    assert handle_keys("biebeemland.bsky.social") == {"biebeemland.bsky.social", "biebeemland"}
    assert handle_keys("@bieb@mastodon.nl") == {"bieb@mastodon.nl"}
    assert mentions("hoi @a_b en @c@d.nl, mail e@f.nl.") == ["a_b", "c@d.nl"]


@pytest.mark.parametrize(
    "text",
    [
        "Gamemiddag in de bieb voor kinderen",
        "Foto's van de opening van de bibliotheek",
        "Kan ik e-books van de bibliotheek op mijn Kindle lezen?",
        "Cursus software in de bieb",
    ],
)
def test_a_library_s_own_activities_are_not_taken_for_another_sense(text: str) -> None:
    assert match(LOCAL, text)[0]


def test_a_search_can_add_its_own_sense_cues() -> None:
    search = Search(id="s", kind="local", terms=["de bieb"], sense_cues=["De Bieb FM"])
    matched, evidence, _ = match(search, "luister naar De Bieb FM vanavond")
    assert not matched
    assert evidence[-1] == "search s: rejected, another sense of the word ('De Bieb FM')"
    assert match(search, "de bieb is dicht")[0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "mijn Lightroom-bibliotheek is corrupt",
            "'Lightroom-bibliotheek' is a kind of bibliotheek",
        ),
        ("Opa's bibliotheek uitgezocht", "'Opa's bibliotheek': someone's own"),
        ("Mijn eigen bibliotheek op zolder", "'eigen bibliotheek': someone's own"),
        ("PS5 library is zo leeg", "'PS5 library' is a kind of library"),
        ("The Midnight Library uit", "'Midnight Library' is a name"),
        ("We noemen de logeerkamer 'bibliotheek'", "'bibliotheek' in quotes"),
    ],
)
def test_the_words_around_a_generic_term_show_another_sense(text: str, reason: str) -> None:
    matched, evidence, _ = match(LOCAL_ALL, text)
    assert not matched
    assert evidence[-1] == f"search local: rejected, another sense of the word ({reason})"


@pytest.mark.parametrize(
    "text",
    [
        "de bibliotheek is dicht",
        "Bibliotheek dicht vandaag",
        "the library in Amersfoort is closed",
        "the new library is great",
        "Visited today: library, archive and museum",
        "mijn bieb is weer dicht",
    ],
)
def test_the_public_library_is_not_taken_for_another_sense(text: str) -> None:
    assert match(LOCAL_ALL, text)[0]


def test_a_place_or_library_name_before_the_word_is_the_public_library() -> None:
    matcher = SearchMatcher(LOCAL_ALL, None, is_name=lambda w: w.lower() in {"leusden", "coda"})
    for text in ("Leusden library is great", "Brand in de CODA-bieb"):
        assert matcher.match(post(text), Text.of(text)).matched, text


def test_an_acronym_alias_counts_only_in_capitals() -> None:
    oba = Organisation(id="oba", name="Openbare Bibliotheek Amsterdam", aliases=["OBA"])
    matcher = SearchMatcher(Search(id="b", org="oba", kind="brand"), oba)
    assert matcher.match(post("de OBA is dicht"), Text.of("de OBA is dicht")).matched
    assert not matcher.match(post("Oba! Amanhã"), Text.of("Oba! Amanhã")).matched


def test_a_handle_is_found_exactly_however_loose_the_fuzzy_setting() -> None:
    loose = Search(id="brand", org="eemland", kind="brand", fuzzy=60)
    matched, evidence, _ = match(loose, "de bibliotheek is dicht")
    assert not matched, evidence  # 'bibliotheek' is 76 like 'bibliotheekeemland'
    assert match(loose, "groet aan #bibliotheekeemland")[0]


def test_a_post_is_tried_only_on_the_terms_its_rarest_words_lead_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    towns = ["Leusden", "Amersfoort", "Baarn", "Soest", "Bunschoten", "Nijkerk", "Woudenberg"]
    terms = [f"{kind} {town}" for town in towns for kind in ("bibliotheek", "Taalhuis")]
    matcher = SearchMatcher(Search(id="many", kind="local", terms=terms), None, near_misses=False)
    runs: list[object] = []
    real = matcher.evaluator.run
    monkeypatch.setattr(
        matcher.evaluator, "run", lambda node, *a: runs.append(node) or real(node, *a)
    )

    text = "ik ga vandaag naar de bibliotheek en het taalhuis"
    assert not matcher.match(post(text), Text.of(text)).matched
    assert runs == []  # 'bibliotheek' is in every other term: it leads to none of them
    text = "bibliotheek Leusden is dicht, taalhuis Nijkerk ook"
    result = matcher.match(post(text), Text.of(text))
    assert result.matched and len(runs) == 4  # the two terms with 'leusden', two with 'nijkerk'
    text = "bibliotheek Leusdn is dicht"  # a typo in the rarest word still leads to its term
    assert matcher.match(post(text), Text.of(text)).matched
