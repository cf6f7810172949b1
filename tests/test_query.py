"""The query language: a corpus of queries with expected answers for every operator, syntax
errors with their position, a fuzzed parser, and how a query combines with a saved search."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config import ConfigError, load_config
from listener.config.model import Organisation, Search
from listener.match import SearchMatcher, Text
from listener.post import Author, Geo, Post
from listener.query.evaluate import Evaluator, Tokens
from listener.query.syntax import QuerySyntaxError, parse, seeds, terms_of
from listener.sources import brand_names, search_terms
from tests.support.configs import write_setup

CORPUS = Path(__file__).parent / "data" / "query_corpus.toml"
CASES: list[dict[str, Any]] = tomllib.loads(CORPUS.read_text(encoding="utf-8"))["cases"]


def make_post(case: dict[str, Any]) -> Post:
    geo = Geo(case["lat"], case["lon"]) if "lat" in case else None
    return Post(
        id="p",
        source=case.get("source", "replay"),
        text=case["text"],
        created_at=datetime(2026, 11, 20, tzinfo=UTC),
        lang=case.get("lang"),
        author=Author(handle=case.get("author"), location=case.get("location")),
        geo=geo,
    )


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{i}:{c['query']}|{c['text']}" for i, c in enumerate(CASES)]
)
def test_query_corpus(case: dict[str, Any]) -> None:
    post = make_post(case)
    run = Evaluator(case.get("fuzzy", 88)).run(parse(case["query"]), post, Tokens.of(post.text))
    assert run.holds is case["holds"]


def test_the_corpus_covers_every_operator_and_edge_case() -> None:
    queries = " ".join(c["query"] for c in CASES)
    for needed in ("AND", "OR", "NOT", " -", "NEAR/", "ONEAR/", "*", "~", '"', "#", "@", "😡",
                   "lang:", "source:", "author:", "-author:", "has:geo", "NEAR/3 NOT",
                   "bibliothè*", '"~'):  # fmt: skip
        assert needed in queries, needed
    assert sum(c["holds"] for c in CASES) >= 20
    assert sum(not c["holds"] for c in CASES) >= 20


# --- syntax errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "column", "expected"),
    [
        ("bieb AND", 9, "expected a term"),
        ("(bieb OR dicht", 15, "expected ')' to close the '(' at column 1"),
        ("bieb)", 5, "unexpected ')'"),
        ('"de bieb', 1, 'expected a closing "'),
        ("bieb NEAR/ dicht", 11, "NEAR needs a distance"),
        ("bieb NEAR/x dicht", 6, "expected NEAR/n"),
        ("bieb NEAR/99 dicht", 11, "0 to 50"),
        ("bieb OR", 8, "expected a term"),
        ("NEAR/3 bieb", 1, "expected a term"),
        ("b*", 1, "at least 3 letters"),
        ("bi*eb", 1, "may only end a word"),
        ("bieb*~1", 1, "cannot also allow typos"),
        ("Eemland~", 9, "expected a number after '~'"),
        ("Eemland~9", 8, "at most ~3"),
        ("has:wifi", 5, "expected one of geo"),
        ("lang:dutch1", 6, "not a language code"),
        ("author:", 8, "expected a value"),
        ("lang:nl NEAR/3 bieb", 1, "cannot be NEAR"),
        ("NOT a NEAR/3 NOT b", 7, "needs words on at least one side"),
        ("()", 2, "empty parentheses"),
        ("", 1, "empty query"),
        ("bieb - dicht", 6, "no letters or digits"),
        ('"" bieb', 1, "empty phrase"),
        ('"de bieb"x', 10, "expected a space or ~n"),
    ],
)
def test_a_syntax_error_says_where_and_what_was_expected(
    query: str, column: int, expected: str
) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    assert caught.value.line_column() == (1, column)
    assert expected in caught.value.message


def test_a_syntax_error_in_a_multi_line_query_names_the_line() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse("bieb\n  AND (dicht\n  OR open")
    assert caught.value.line_column() == (3, 10)


def with_search(tmp_path: Path, toml: str) -> tuple[Path, ConfigError]:
    """A setup with one more, broken [[searches]] table: its query file and the error."""
    config = write_setup(tmp_path)
    queries = tmp_path / "queries" / "eemland.toml"
    queries.write_text(queries.read_text() + "\n[[searches]]\n" + toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    return queries, caught.value


def test_the_loader_reports_file_line_and_column_of_a_query_error(tmp_path: Path) -> None:
    queries, error = with_search(
        tmp_path,
        'id = "bad"\nkind = "local"\nquery = \'\'\'\n'
        "(bieb OR bibliotheek)\n  AND dicht NEAR/ open\n'''\n",
    )
    text = queries.read_text().splitlines()
    line = next(i for i, row in enumerate(text, start=1) if "NEAR/ open" in row)
    column = text[line - 1].index("NEAR/") + len("NEAR/") + 1
    problem = error.problems[0]
    assert str(problem).startswith(f"{queries}:{line}:{column}: searches[bad].query: NEAR needs")


def test_a_query_in_a_basic_string_with_escapes_still_gets_a_line(tmp_path: Path) -> None:
    queries, error = with_search(
        tmp_path, 'id = "bad"\nkind = "local"\nquery = "\\"de bieb\\" OR"\n'
    )
    line = len(queries.read_text().splitlines())
    assert str(error.problems[0]).startswith(f"{queries}:{line}:13: searches[bad].query")


# --- the parser never crashes ------------------------------------------------------------------

ALPHABET = st.sampled_from(
    [*"abcdeijyz ()\"'*~:#@-/_.,!é😡👍🏽\n\t0123", "AND ", "OR ", "NOT ", "NEAR/", "ONEAR/"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_any_input_parses_or_fails_with_a_syntax_error(query: str) -> None:
    try:
        tree = parse(query)
    except QuerySyntaxError as exc:
        assert 0 <= exc.offset <= len(query)
        assert exc.message
        return
    post = make_post({"text": query + " de bieb is dicht 😡 #bieb @x", "lang": "nl"})
    Evaluator(80).run(tree, post, Tokens.of(post.text))  # and evaluating it cannot crash
    seeds(tree)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_unicode_input_parses_or_fails_with_a_syntax_error(query: str) -> None:
    try:
        tree = parse(query)
    except QuerySyntaxError:
        return
    Evaluator(88).run(tree, make_post({"text": query}), Tokens.of(query))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse("(" * 500 + "bieb" + ")" * 500)
    with pytest.raises(QuerySyntaxError, match="nested"):
        parse("NOT " * 500 + "bieb")


# --- a query inside a saved search -------------------------------------------------------------

ORG = Organisation(id="eemland", name="Bibliotheek Eemland", aliases=["Bieb Eemland"])


def decide(search: Search, text: str, **fields: Any) -> tuple[bool, list[str], list[str]]:
    matcher = SearchMatcher(search, ORG if search.org else None)
    post = make_post({"text": text, **fields})
    result = matcher.match(post, Text.of(text))
    return result.matched, result.evidence, result.near_misses


def test_a_brand_query_adds_ways_to_find_the_brand_and_keeps_the_names() -> None:
    search = Search(id="b", org="eemland", kind="brand", query='"de bieb" NEAR/2 Amersfoort')
    assert decide(search, "Bibliotheek Eemland is dicht")[0]
    matched, evidence, _ = decide(search, "de bieb in Amersfoort is dicht")
    assert matched
    assert 'search b: query "de bieb" NEAR/2 Amersfoort holds' in evidence
    assert not decide(search, "de bieb in Utrecht is dicht")[0]


def test_top_level_restrictions_of_a_brand_query_apply_to_the_names_too() -> None:
    search = Search(id="b", org="eemland", kind="brand", query="lang:nl -author:@spambot")
    assert decide(search, "Bibliotheek Eemland!", lang="nl")[0]
    matched, evidence, _ = decide(search, "Bibliotheek Eemland!", lang="de")
    assert not matched
    assert evidence[-1] == "search b: rejected, the query needs lang:nl"
    assert not decide(search, "Bibliotheek Eemland!", author="spambot")[0]
    assert not decide(search, "de bieb is dicht", lang="nl")[0]  # restrictions find nothing


def test_a_local_query_and_the_old_terms_form_work_alike() -> None:
    old = Search(id="l", kind="local", terms=["de bieb", "bibliotheek"])
    new = Search(id="l", kind="local", query='"de bieb" OR bibliotheek')
    for text in ("naar de bieb", "de bibliotheek is dicht", "mijn bibliotheek thuis", "bieb"):
        assert decide(old, text)[0] == decide(new, text)[0], text


def test_a_local_query_still_rejects_another_sense_of_the_word() -> None:
    search = Search(id="l", kind="local", query="bibliotheek NEAR/5 (dicht OR open)")
    assert decide(search, "de bibliotheek is weer open")[0]
    matched, evidence, _ = decide(search, "mijn Steam-bibliotheek is open")
    assert not matched
    assert "another sense" in evidence[-1]


def test_near_misses_say_what_fell_just_short() -> None:
    near = Search(id="n", kind="local", query="bieb NEAR/1 dicht")
    matched, _, misses = decide(near, "de bieb is weer dicht")
    assert not matched
    assert misses == ["search n: 'bieb' and 'dicht' are 2 words apart (NEAR/1 allows 1)"]
    typo = Search(id="t", kind="local", query="Eemland~1")
    assert decide(typo, "Emlnd")[2] == ["search t: 'emlnd' is like query term Eemland~1 "
                                        "(2 typos, allows 1)"]  # fmt: skip
    fuzzy = Search(id="f", kind="local", query="Eemland", fuzzy=95)
    assert decide(fuzzy, "Eemlnd")[2] == [
        "search f: 'eemlnd' is like query term Eemland (fuzzy 92, needs 95)"
    ]


def test_sources_ask_for_what_a_query_needs() -> None:
    assert seeds(parse('"de bieb" OR bieb* OR (leusden NEAR/3 dicht) NOT vacature')) == [
        "de bieb",
        "bieb",
        "leusden",
    ]
    search = Search(id="l", kind="local", terms=["bieb"], query="bieb OR bibliotheek")
    assert search_terms(search) == ["bieb", "bibliotheek"]
    brand = Search(id="b", org="eemland", kind="brand", query="#biebeemland lang:nl")
    assert brand_names(brand, {"eemland": ORG}) == [
        "Bibliotheek Eemland",
        "Bieb Eemland",
        "biebeemland",
    ]


# --- the presearch only skips what cannot match ------------------------------------------------

CORPUS_POSTS = [make_post({"text": c["text"], "lang": c.get("lang")}) for c in CASES] + [
    make_post({"text": t})
    for t in (
        "Bibliotheek Eemlnd in Amersfoort is dicht 😡 #bieb",
        "de bieblokatie Leusden gesloten, vacature? @biebeemland",
        "IJsselstein: bibliotheeek eemlad weer open",
        "Taalhuis in Leusden, niet in Eemland; #TaalhuisEemlnd en de bieb Leusden",
        "taalhuys eemlandd bieb-leusden bieb leusdn",
    )
]
WORDS = st.sampled_from(
    ["bieb", "bieb*", "#bieb", '"de bieb"', "dicht", "Eemland~1", "Eemland", "bibliotheek",
     '"bibliotheek eemland"~2', "bibliothè*", "open", "😡", "Leusden", "@biebeemland",
     "IJsselstein", "gesloten", "lang:nl", "has:geo", "vacature*", "Amersfoort~2", "ijs*",
     '"taalhuis eemland"', '"bieb leusden"', '"de bibliotheek leusden"', '"bieb leusden"~0']
)  # fmt: skip
OPERATORS = st.sampled_from(
    [" AND ", " OR ", " NOT ", " ", " NEAR/2 ", " ONEAR/3 ", " NEAR/1 NOT "]
)


@st.composite
def queries(draw: st.DrawFn, depth: int = 0) -> str:
    parts = [draw(WORDS)]
    for _ in range(draw(st.integers(0, 3))):
        right = draw(queries(depth + 1)) if depth < 2 and draw(st.booleans()) else draw(WORDS)
        parts += [draw(OPERATORS), f"({right})" if " " in right else right]
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(queries(), st.sampled_from([70, 88, 95]))
def test_the_presearch_never_changes_an_answer(query: str, fuzzy: int) -> None:
    try:
        tree = parse(query)
    except QuerySyntaxError:
        return  # e.g. NOT on both sides of a NEAR
    evaluator = Evaluator(fuzzy, trees=[tree])
    for post in CORPUS_POSTS:
        tokens = Tokens.of(post.text)
        fast = evaluator.run(tree, post, tokens, candidates=evaluator.candidates(tokens))
        full = evaluator.run(tree, post, tokens, candidates=evaluator.candidates(tokens, False))
        assert (fast.holds, fast.hits) == (full.holds, full.hits), (query, post.text)


@settings(max_examples=300, deadline=None)
@given(queries(), st.sampled_from([70, 88, 95]), st.booleans())
def test_a_term_the_presearch_drops_has_neither_an_occurrence_nor_a_near_miss(
    query: str, fuzzy: int, near_misses: bool
) -> None:
    """Term by term, what the presearch keeps ('taalhuis eemland' only when the post has a
    'taalhuis' and an 'eemland', or something close) finds what every term would."""
    try:
        tree = parse(query)
    except QuerySyntaxError:
        return
    evaluator = Evaluator(fuzzy, trees=[tree], near_misses=near_misses)
    for post in CORPUS_POSTS:
        tokens = Tokens.of(post.text)
        fast, full = evaluator.candidates(tokens), evaluator.candidates(tokens, False)
        for term in terms_of(tree):
            found = evaluator.term_hits(term, tokens, full)
            assert evaluator.term_hits(term, tokens, fast) == found, (term.written, post.text)
            if found != ([], []):
                assert id(term) in fast.possible


def test_an_unknown_source_in_a_query_is_a_configuration_error(tmp_path: Path) -> None:
    queries, error = with_search(
        tmp_path, 'id = "bad"\nkind = "local"\nquery = \'bieb source:blueksy\'\n'
    )
    line = len(queries.read_text().splitlines())
    problem = str(error.problems[0])
    assert problem.startswith(f"{queries}:{line}:15: searches[bad].query: unknown source")
    assert "bluesky" in problem  # the suggestion


def test_the_evidence_names_the_alternative_that_held_with_its_parentheses() -> None:
    search = Search(
        id="b", org="eemland", kind="brand",
        query='("de bieb" OR bieb*) NEAR/3 (Amersfoort OR Leusden) OR (lezen NEAR/2 Eemland)',
    )  # fmt: skip
    matched, evidence, _ = decide(search, "de biebs in Amersfoort zijn dicht")
    assert matched
    assert evidence == [
        "search b: 'biebs' → query term bieb* (prefix)",
        "search b: text has 'amersfoort' (query term Amersfoort)",
        'search b: query ("de bieb" OR bieb*) NEAR/3 (Amersfoort OR Leusden) holds',
    ]


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from("abijyz019 .,#@'-éÉ😡中IJ™ﬁ"), max_size=40) | st.text())
def test_a_plain_text_is_read_in_one_pass_as_it_is_word_by_word(text: str) -> None:
    from listener.query.evaluate import _read, _read_each
    from listener.text import strip_accents

    for prepared in (text.lower(), strip_accents(text)):
        assert _read(prepared) == _read_each(prepared)


def _close_all_at_once(evaluator: Evaluator, tokens: Tokens) -> dict[str, dict[str, float]]:
    """The close words as one `cdist` of every fuzzy word against every word of the post."""
    import numpy
    from rapidfuzz import fuzz, process

    words, wanted = list(tokens.at), list(evaluator.fuzzy_words)
    matrix = process.cdist(wanted, words, scorer=fuzz.ratio, score_cutoff=evaluator.floor)
    close: dict[str, dict[str, float]] = {}
    for row, column in zip(*numpy.nonzero(matrix), strict=True):
        close.setdefault(wanted[row], {})[words[column]] = float(matrix[row, column])
    return close


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.sampled_from("bieblothkansdwr #.,é"), max_size=50), min_size=1),
    st.booleans(),
)
def test_the_close_words_remembered_per_word_are_those_of_one_comparison(
    texts: list[str], near_misses: bool
) -> None:
    """What `Evaluator.candidates` remembers per post word is what comparing all at once gives,
    post after post, and after more terms are added."""
    import listener.query.evaluate

    query = 'bibliotheek OR "bieb leusden" OR eemland OR "de bibliotheek"~1'
    kept = listener.query.evaluate.CLOSE_REMEMBERED_FROM
    listener.query.evaluate.CLOSE_REMEMBERED_FROM = 0  # remembered even for a few words
    try:
        evaluator = Evaluator(85, trees=[parse(query)], near_misses=near_misses)
        for n, text in enumerate(texts):
            if n == len(texts) // 2:
                evaluator.add(parse('"boekhandel dorst" OR bibliothekaris'))
            tokens = Tokens.of(text)
            assert evaluator.candidates(tokens).close == _close_all_at_once(evaluator, tokens)
    finally:
        listener.query.evaluate.CLOSE_REMEMBERED_FROM = kept
