"""The presearcher (listener.presearch): it never rules out a search a post matches, so the fast
path decides exactly as the reference path that verifies every search; and it does rule out
the searches a post cannot match."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from listener.config import load_config
from listener.match import Text
from listener.pipeline import Classifier
from listener.post import Author, Post, PostError
from listener.presearch import Presearcher, folded, fuzzy_edits, pieces
from tests.support.configs import write_setup

ROOT = Path(__file__).resolve().parents[1]


def read_posts(*names: str) -> list[Post]:
    posts = []
    for name in names:
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            try:
                posts.append(Post.from_dict(json.loads(line)))
            except (ValueError, PostError):
                continue  # the e2e file holds deliberately broken lines
    return posts


def same_decisions(config_path: Path, posts: list[Post]) -> int:
    """Decide every post on the fast and the reference path; returns how many alerted."""
    config = load_config(config_path)
    fast, reference = Classifier(config), Classifier(config, presearch=False)
    assert fast.presearcher is not None and reference.presearcher is None
    alerted = 0
    for post in posts:
        quick, full = fast.decide(post), reference.decide(post)
        assert quick.to_json() == full.to_json(), post.text
        assert fast.alert_for(post, quick) == reference.alert_for(post, full)
        assert quick.near_misses == []  # the daemon keeps none; `try` shows the reference's
        alerted += quick.org is not None
    return alerted


def test_the_fast_path_decides_the_development_corpus_as_the_reference_path() -> None:
    posts = read_posts("tests/corpus/posts.jsonl")
    assert len(posts) > 400
    assert same_decisions(ROOT / "tests" / "corpus" / "config.toml", posts) > 100


def test_the_fast_path_decides_the_demo_and_end_to_end_posts_as_the_reference_path() -> None:
    posts = read_posts("demo/posts.jsonl", "tests/data/e2e-posts.jsonl")
    assert same_decisions(ROOT / "config.example.toml", posts) > 5


QUERIES = """\
[[organisations]]
id = "eemland"
name = "Bibliotheek Eemland"
aliases = ["Bieb Eemland", "OBA"]
handles = ["@bibliotheekeemland", "@bieb@mastodon.nl"]

[[organisations.branches]]
id = "leusden"
name = "Bibliotheek Leusden"
town = "Leusden"
lat = 52.1325
lon = 5.43194
radius_km = 2.5

[[searches]]
id = "eemland-brand"
org = "eemland"
kind = "brand"
fuzzy = 85

[[searches]]
id = "de-bieb"
kind = "local"
terms = ["de bieb", "bibliotheek"]

[[searches]]
id = "wildcards"
kind = "local"
query = '(leesclub* OR "voorlees ontbijt"~2 OR 📚) AND NOT spam'

[[searches]]
id = "anything-on-reddit"
kind = "local"
query = "source:reddit OR boekenweek"
"""


@pytest.fixture
def presearch(tmp_path: Path) -> tuple[Classifier, Presearcher]:
    classifier = Classifier(load_config(write_setup(tmp_path, queries=QUERIES)))
    assert classifier.presearcher is not None
    return classifier, classifier.presearcher


def ids(classifier: Classifier, text: str) -> list[str]:
    return [matcher.search.id for matcher in classifier.candidates(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lekker weer vandaag, eerst koffie", []),
        ("De BIBLIOTHEEK in Leusden is dicht", ["de-bieb"]),
        ("naar de bieb!", ["de-bieb"]),
        ("mijn steambibliotheek is vol", []),  # a word of its own, not 'bibliotheek'
        ("Bibliotheek Eemlnad is weer dicht", ["eemland-brand", "de-bieb"]),  # a typo
        ("#BibliotheekEemland 😡", ["eemland-brand"]),
        ("vraag aan @bibliotheekeemland", ["eemland-brand"]),
        ("groet @bieb@mastodon.nl", ["eemland-brand"]),  # not "de bieb": no "de"
        ("de leesclubjes beginnen", ["wildcards"]),
        ("het voorleesontbyt is leuk", ["wildcards"]),  # two typos, words run together
        ("boeken 📚 kopen", ["wildcards"]),
    ],
)
def test_candidates_are_the_searches_a_post_can_match(
    presearch: tuple[Classifier, Presearcher], text: str, expected: list[str]
) -> None:
    classifier, _ = presearch
    found = ids(classifier, text)
    assert [i for i in found if i != "anything-on-reddit"] == expected
    assert "anything-on-reddit" in found  # holds on a field alone: verified on every post


def test_a_post_no_search_can_match_costs_no_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = QUERIES[: QUERIES.index('[[searches]]\nid = "anything-on-reddit"')]
    classifier = Classifier(load_config(write_setup(tmp_path, queries=queries)))
    made: list[str] = []
    real = Text.of
    monkeypatch.setattr(Text, "of", lambda raw: made.append(raw) or real(raw))
    when = datetime(2026, 11, 23, tzinfo=UTC)
    post = Post("t:1", "bluesky", "lekker weer", when, author=Author("a", location="Leusden"))
    assert classifier.decide(post).org is None and made == []
    classifier.decide(Post("t:2", "bluesky", "de bieb in Leusden is dicht", when))
    assert made == ["de bieb in Leusden is dicht"]


@settings(max_examples=300, deadline=None)
@given(
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=5, max_size=16),
    threshold=st.sampled_from([75, 80, 85, 88, 90, 95]),
    edits=st.lists(
        st.tuples(st.sampled_from("ids"), st.integers(0, 20), st.sampled_from("xyzqk")),
        max_size=4,
    ),
)
def test_a_word_close_enough_to_match_keeps_one_piece_whole(
    word: str, threshold: int, edits: list[tuple[str, int, str]]
) -> None:
    """The pigeonhole the fuzzy keys rest on: any word at ratio ≥ threshold contains one of
    the fuzzy_edits + 1 pieces of the term word."""
    other = word
    for op, at, letter in edits:
        at %= len(other) + 1
        if op == "i":
            other = other[:at] + letter + other[at:]
        elif op == "d" and at < len(other):
            other = other[:at] + other[at + 1 :]
        elif at < len(other):
            other = other[:at] + letter + other[at + 1 :]
    cut = pieces(word, fuzzy_edits(len(word), threshold) + 1)
    if fuzz.ratio(word, other) >= threshold:
        assert cut, "a word that can match must have pieces"
        assert any(piece in other for piece in cut), (word, other, cut)


def test_a_name_needs_all_its_words_and_a_word_near_one_of_them_is_not_enough(
    presearch: tuple[Classifier, Presearcher],
) -> None:
    classifier, _ = presearch
    assert ids(classifier, "het eemlnd is mooi") == [
        "anything-on-reddit"
    ]  # 'Eemland' alone is no name of the organisation
    assert "eemland-brand" in ids(classifier, "bieb eemlnd")


def test_the_fast_path_decides_generated_national_posts_as_the_reference_path(
    tmp_path: Path,
) -> None:
    """bench/national.py's workload: 170 organisations, 1,000 branches, a brand and a local
    search each; posts of which a few name a search term, with typos and other senses."""
    from bench import national

    config_path = national.write_setup(tmp_path)
    posts = national.posts(config_path, 400, seed=3)
    assert same_decisions(config_path, posts) > 0


def test_the_fast_path_decides_as_the_reference_path_with_many_terms_a_search(
    tmp_path: Path,
) -> None:
    """The benchmark's 5,000-term setup at a tenth: each brand search holds about fifty terms
    such as 'Taalhuis Amsterdam', so most of the ones a post's town makes possible have a
    word the post lacks."""
    from bench import national

    config_path = national.write_setup(tmp_path, branches=100, organisations=10, terms=500)
    posts = national.posts(config_path, 600, seed=5)
    assert same_decisions(config_path, posts) > 0


def test_the_word_memory_forgets_its_oldest_when_full_and_still_answers(
    presearch: tuple[Classifier, Presearcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    import listener.presearch

    classifier, presearcher = presearch
    monkeypatch.setattr(listener.presearch, "WORDS_REMEMBERED", 4)
    for text in ("een twee drie vier", "vijf zes zeven acht negen tien"):
        presearcher.candidates(text)
    last = "elf twaalf de bieb dertien veertien"
    found = ids(classifier, last)
    assert "de-bieb" in found
    assert "een" not in presearcher._words and "tien" in presearcher._words  # the oldest went
    assert set(last.split()) <= set(presearcher._words) and len(presearcher._words) <= 2 + 6
    # the tokens known to meet no need a term is looked at by go with the rest
    triggers = presearcher._triggers
    assert presearcher._silent == {
        t for t, meets in presearcher._words.items() if meets.isdisjoint(triggers)
    }
    assert presearcher._meeting == {t for t, meets in presearcher._words.items() if meets}
    assert "de-bieb" in ids(classifier, last)
    assert ids(classifier, "elf twaalf") == ids(classifier, "")  # known, silent: always-ones only


def test_a_word_of_nearly_every_post_is_not_what_a_term_is_looked_at_by(
    presearch: tuple[Classifier, Presearcher],
) -> None:
    """'de bieb' is looked at when a post has 'bieb': a post of 'de' and other words that meet
    nothing is answered by the set of such tokens, and 'de' still counts once 'bieb' is there."""
    classifier, presearcher = presearch
    assert ids(classifier, "de trein is laat") == ids(classifier, "")
    assert {"de", "trein"} <= presearcher._silent
    assert "de-bieb" in ids(classifier, "de bieb is dicht")
    assert "de-bieb" not in ids(classifier, "het bieb is dicht")


def test_a_term_is_looked_at_by_the_need_posts_meet_least_once_posts_are_counted(
    presearch: tuple[Classifier, Presearcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'Bibliotheek Eemland' needs 'bibliotheek' and 'eemland'. Before any post is counted it is
    looked at by 'eemland' (a generic word of library names is guessed commoner); once the
    counted posts name Eemland far more often than 'bibliotheek', by 'bibliotheek'."""
    import listener.presearch

    classifier, presearcher = presearch
    monkeypatch.setattr(listener.presearch, "SAMPLE_EVERY", 1)
    needs = presearcher._needs
    term = next(
        t
        for t, each in enumerate(presearcher._terms)
        if {needs[n].target for n in each.every} == {"eemland", "bibliotheek"}
    )
    by_word = {needs[n].target: n for n in presearcher._terms[term].every}
    eemland, bibliotheek = by_word["eemland"], by_word["bibliotheek"]

    def looked_at_by() -> set[int]:
        return {n for n, terms in presearcher._terms_of.items() if term in terms}

    assert looked_at_by() == {eemland, presearcher._terms[term].instead}
    post = "het is druk in eemland vandaag"
    presearcher.candidates(post)
    assert "eemland" not in presearcher._silent
    for _ in range(listener.presearch.FIRST_CHOICE):
        presearcher.candidates(post)
    assert looked_at_by() == {bibliotheek, presearcher._terms[term].instead}
    assert "eemland" in presearcher._silent  # a post naming only Eemland: one look-up again
    triggers = presearcher._triggers
    assert presearcher._silent == {
        t for t, meets in presearcher._words.items() if meets.isdisjoint(triggers)
    }
    assert presearcher._meeting == {t for t, meets in presearcher._words.items() if meets}
    assert "eemland-brand" in ids(classifier, "de bibliotheek eemland is dicht")
    assert "eemland-brand" in ids(classifier, "de bieb in eemland is dicht")
    assert ids(classifier, post) == ids(classifier, "")


def test_the_fast_path_decides_as_the_reference_path_while_its_needs_are_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every post counted and the needs chosen again after 1, 2, 4, … posts: whichever need a
    term is looked at by, no post is decided otherwise."""
    import listener.presearch
    from bench import national

    monkeypatch.setattr(listener.presearch, "SAMPLE_EVERY", 1)
    monkeypatch.setattr(listener.presearch, "FIRST_CHOICE", 1)
    assert (
        same_decisions(
            ROOT / "tests" / "corpus" / "config.toml", read_posts("tests/corpus/posts.jsonl")
        )
        > 100
    )
    config_path = national.write_setup(tmp_path)
    assert same_decisions(config_path, national.posts(config_path, 400, seed=3)) > 0


TRICKY = "abcijIJ019 .,!?#@'-/:\n\téÉßﬁ½😡\u0301\u200bİøÖĳĲ中ـ\u00a0…’\u2028\u3000\x85ǈﬀ㎏"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=30) | st.text(max_size=30))
def test_a_text_folds_into_the_words_of_its_tokens_one_by_one(text: str) -> None:
    """What the token memory rests on: folding joins or splits nothing across white space."""
    assert folded(text).split() == [w for token in text.split() for w in folded(token).split()]


def test_a_group_of_local_searches_with_the_same_terms_is_one_candidate(tmp_path: Path) -> None:
    from bench import national

    setup = national.write_setup(tmp_path, branches=40, organisations=8)
    classifier = Classifier(load_config(setup))
    groups = classifier.group_of
    local = [m for m in classifier.matchers if m.search.kind == "local"]
    assert len(local) == 8 and len({id(groups[id(m)]) for m in local if id(m) in groups}) < 8
    found = [m for m in classifier.candidates("de bieb is weer dicht") if m in local]
    assert found and len(found) < len(local)
    assert all(id(m) not in groups or groups[id(m)].first == id(m) for m in found)
    reference = Classifier(classifier.config, presearch=False)
    assert reference.candidates("x") == reference.matchers  # every one, grouped or not


def test_a_post_outside_every_area_of_a_group_is_not_measured_to_the_nearest_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's branches are those of many organisations: the nearest of them to a post in
    none of their areas is not looked up, on either path; the near-misses stay for `try`."""
    from bench import national
    from listener.geo.areas import AreaIndex

    setup = national.write_setup(tmp_path, branches=40, organisations=8)
    classifier = Classifier(load_config(setup))
    towns = ["Vaals", "Cadzand", "Delfzijl", "Den Helder", "Winterswijk", "Maastricht", "Texel"]
    places = [classifier.gazetteer.candidates(town)[0] for town in towns]
    far = next(p for p in places if not classifier.areas_containing(p.lat, p.lon))
    post = Post(
        id="1",
        source="bluesky",
        text=f"de bieb in {far.name} is weer dicht",
        created_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
    )
    asked: list[AreaIndex] = []
    measure = AreaIndex.nearest

    def nearest(index: AreaIndex, lat: float, lon: float) -> object:
        asked.append(index)
        return measure(index, lat, lon)

    monkeypatch.setattr(AreaIndex, "nearest", nearest)
    decision = classifier.decide(post)
    grouped = {id(group.index) for group in classifier.group_of.values()}
    assert decision.org is None
    assert [index for index in asked if id(index) in grouped] == []
    outside = [e for e in decision.evidence if e.startswith(f"text names {far.name} ")]
    assert outside and all(", in none of the " in e for e in outside)
    reference = Classifier(classifier.config, presearch=False).decide(post)
    assert reference.to_json() == decision.to_json()


def test_threads_deciding_at_once_with_tiny_memories_decide_as_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's polls decide in several threads; the presearcher's memory, the area
    indexes' answers and the gazetteer's profile readings are shared and forget while they
    are read (here all the time: each keeps a handful), and the presearcher chooses the needs
    its terms are looked at by again while other threads use them."""
    import sys
    import threading

    import listener.geo.areas
    import listener.geo.gazetteer
    import listener.presearch
    from bench import national

    setup = national.write_setup(tmp_path, branches=60, organisations=10)
    posts = national.posts(setup, 300, seed=4)
    expected = [Classifier(load_config(setup)).decide(p).to_json() for p in posts]
    monkeypatch.setattr(listener.presearch, "WORDS_REMEMBERED", 8)
    monkeypatch.setattr(listener.presearch, "SAMPLE_EVERY", 1)  # needs chosen again, often
    monkeypatch.setattr(listener.presearch, "FIRST_CHOICE", 1)
    monkeypatch.setattr(listener.geo.areas, "MEMO_POINTS", 2)
    monkeypatch.setattr(listener.geo.gazetteer, "PROFILES_REMEMBERED", 2)
    classifier = Classifier(load_config(setup))
    found: dict[int, dict[str, object]] = {}
    errors: list[BaseException] = []

    def decide(start: int) -> None:
        try:
            for i in range(start, len(posts), 4):
                found[i] = classifier.decide(posts[i]).to_json()
        except BaseException as exc:  # reported below
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as can be
    try:
        threads = [threading.Thread(target=decide, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
    assert [found[i] for i in range(len(posts))] == expected
