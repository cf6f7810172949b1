"""`listener check` warns about searches that would drown the team: common words a brand search
finds on their own, and fuzzy settings that make a term match common words."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.cli import app
from listener.config import Config, load_config
from listener.query.lint import Warning, lint
from tests.support.configs import QUERIES, ROOT, write_setup

runner = CliRunner()


def setup(folder: Path, queries: str) -> Config:
    return load_config(write_setup(folder, queries=queries))


def brand(extra: str, *, aliases: str = '["Bieb Eemland"]') -> str:
    """The test setup with more settings in its brand search (eemland-brand)."""
    assert 'aliases = ["Bieb Eemland"]' in QUERIES and 'interval = "5m"\n' in QUERIES
    queries = QUERIES.replace('aliases = ["Bieb Eemland"]', f"aliases = {aliases}", 1)
    return queries.replace('interval = "5m"\n', f'interval = "5m"\n{extra}\n', 1)


def local(extra: str, terms: str = '["de bieb", "bibliotheek"]') -> str:
    """The test setup with more settings in its local search (de-bieb, the last table)."""
    old = 'terms = ["de bieb", "bibliotheek"]\n'
    assert QUERIES.endswith(old)
    return QUERIES.removesuffix(old) + f"terms = {terms}\n{extra}\n"


def messages(warnings: list[Warning], search: str = "eemland-brand") -> list[str]:
    return [w.message for w in warnings if w.search == search]


def line_of(config: Config, needle: str) -> int:
    text = (config.queries_dir / "eemland.toml").read_text()
    return text[: text.index(needle)].count("\n") + 1


def test_the_example_config_has_no_warnings() -> None:
    assert lint(load_config(ROOT / "config.example.toml")) == []


def test_the_test_setup_has_no_warnings(tmp_path: Path) -> None:
    assert lint(setup(tmp_path, QUERIES)) == []


# --- drowning terms ----------------------------------------------------------------------------


def test_a_bare_common_word_in_a_brand_query_warns_where_it_is_written(tmp_path: Path) -> None:
    config = setup(tmp_path, brand("query = '''\n  Eemhuis\n  OR lezen\n'''"))
    warnings = lint(config)
    assert len(warnings) == 1, warnings
    found = warnings[0]
    assert found.file == config.queries_dir / "eemland.toml"
    assert (found.line, found.column) == (line_of(config, "OR lezen"), 6)
    assert str(found).startswith(f"{found.file}:{found.line}:6: searches[eemland-brand]: warning: ")
    assert "'lezen' is among the 500 most common Dutch words" in found.message
    assert "~1 in 240 Dutch posts" in found.message
    assert "lezen NEAR/3 Eemland" in found.message  # tied to the organisation's own name


def test_every_common_or_branch_warns_on_its_own(tmp_path: Path) -> None:
    warnings = lint(setup(tmp_path, brand('query = "boek OR lezen OR Eemhuis"')))
    said = messages(warnings)
    assert len(said) == 2, said
    assert said[0].startswith("'boek' in the query: 'boek' is among the 500")
    assert said[1].startswith("'lezen' in the query: 'lezen' is among the 500")


def test_a_generic_alias_drowns_a_brand_search(tmp_path: Path) -> None:
    warnings = lint(setup(tmp_path, brand("", aliases='["Bieb Eemland", "Bieb"]')))
    (said,) = messages(warnings)
    assert said.startswith("alias 'Bieb': 'bieb' is the everyday word for any library")
    assert "take it out of organisation eemland's aliases or make it specific ('Bieb Eemland')" in (
        said
    )
    assert warnings[0].line == line_of(setup(tmp_path, QUERIES), 'id = "eemland-brand"')


def test_a_generic_organisation_name_drowns_its_brand_search(tmp_path: Path) -> None:
    queries = QUERIES.replace('name = "Bibliotheek Eemland"', 'name = "De Bibliotheek"', 1)
    (said,) = messages(lint(setup(tmp_path, queries)))
    assert said.startswith("name 'De Bibliotheek': it names no organisation")
    assert "give organisation eemland a name that is not everyday words" in said


def test_a_place_as_alias_drowns_a_brand_search(tmp_path: Path) -> None:
    warnings = lint(setup(tmp_path, brand("", aliases='["Amersfoort"]')))
    (said,) = messages(warnings)
    assert "'amersfoort' is among the 5,000 most common Dutch words" in said


@pytest.mark.parametrize(
    "extra",
    [
        'terms = ["lezen"]',
        "query = 'lees*'",
        "query = '\"de bibliotheek\"'",
        "query = 'boek AND lezen'",
        "query = 'Eemhuis OR (bieb AND library)'",
    ],
)
def test_common_and_generic_words_warn_in_any_form(tmp_path: Path, extra: str) -> None:
    warnings = lint(setup(tmp_path, brand(extra)))
    assert len(messages(warnings)) == 1, warnings
    assert "on its own it would make this search alert on ~1 in" in warnings[0].message


def test_a_wildcard_says_which_common_words_it_starts(tmp_path: Path) -> None:
    (said,) = messages(lint(setup(tmp_path, brand("query = 'lees*'"))))
    assert "'lees*' finds common Dutch words such as 'lees', 'leest'" in said


@pytest.mark.parametrize(
    "extra",
    [
        "query = 'Eemhuis'",  # a specific name
        "query = 'lezen AND Eemland'",
        "query = 'lezen NEAR/3 Eemland'",
        "query = '(boek OR lezen) NEAR/5 (Eemland OR Eemhuis)'",
        "query = '(\"de bieb\" OR bieb*) NEAR/3 (Amersfoort OR Leusden OR Hooglanderveen)'",
        "query = 'lezen author:@bibliotheekeemland'\nfuzzy = 90",  # one author's posts
        'terms = ["Bibliotheek Amersfoort"]',  # common words that make a name together
    ],
)
def test_a_common_word_tied_to_something_specific_does_not_warn(tmp_path: Path, extra: str) -> None:
    assert lint(setup(tmp_path, brand(extra))) == []


def test_a_local_search_with_bieb_does_not_warn(tmp_path: Path) -> None:
    queries = local("query = 'bieb OR lezen OR \"de bibliotheek\"'")
    assert lint(setup(tmp_path, queries)) == []


def test_a_common_word_is_loose_when_it_matches_several_common_words(tmp_path: Path) -> None:
    # At 88 'lezen' also takes 'leen' (one letter less): the price of finding 'lezn'. At 80 it
    # takes 'lenzen', 'gelezen', 'leuzen', … : a local search's fuzziness is checked too.
    assert lint(setup(tmp_path / "88", local("query = 'lezen'"))) == []
    (said,) = messages(
        lint(setup(tmp_path / "80", local("fuzzy = 80\nquery = 'lezen'"))), "de-bieb"
    )
    assert said.startswith("fuzzy 80 makes 'lezen' match ")


def test_an_or_branch_that_is_only_a_filter_warns(tmp_path: Path) -> None:
    (said,) = messages(lint(setup(tmp_path, brand("query = 'Eemhuis OR lang:nl'"))))
    assert said.startswith("'lang:nl' in the query is an OR branch that needs no words")


def test_the_search_languages_decide_which_words_are_common(tmp_path: Path) -> None:
    english = lint(setup(tmp_path / "any", brand("query = 'reading'")))
    assert "among the 1,000 most common English words" in messages(english)[0]
    dutch_only = brand("query = 'reading'\nlanguages = [\"nl\"]")
    assert lint(setup(tmp_path / "nl", dutch_only)) == []


# --- loose fuzziness ---------------------------------------------------------------------------


def test_fuzzy_60_on_a_six_letter_term_warns_with_examples(tmp_path: Path) -> None:
    config = setup(tmp_path, local("fuzzy = 60\nquery = 'Eemnes'", terms='["de bieb"]'))
    warnings = lint(config)
    said = messages(warnings, "de-bieb")
    assert len(said) == 1, said
    assert said[0].startswith("fuzzy 60 makes 'Eemnes' match ")
    assert "'eens'" in said[0]
    assert said[0].endswith("raise the search's fuzzy to 81 or write Eemnes~1")
    assert (warnings[0].line, warnings[0].column) == (line_of(config, "query = 'Eemnes'"), 10)


def test_fuzzy_90_on_the_same_term_does_not_warn(tmp_path: Path) -> None:
    assert lint(setup(tmp_path, local("fuzzy = 90\nquery = 'Eemnes'", terms='["de bieb"]'))) == []


def test_a_loose_name_word_warns_once_for_every_name_that_has_it(tmp_path: Path) -> None:
    said = messages(lint(setup(tmp_path, brand("fuzzy = 70"))))
    eemland = [m for m in said if "'Eemland'" in m]
    assert eemland == [
        "fuzzy 70 makes 'Eemland' (in name 'Bibliotheek Eemland', alias 'Bieb Eemland') match "
        "68 common words: 'iemand', 'nederland', 'land', 'niemand', 'england', …; "
        "raise the search's fuzzy to 86"
    ]
    # Handles are matched exactly, however loose the search's fuzzy setting.
    assert not any("bibliotheekeemland" in m for m in said), said


def test_a_terms_own_forms_and_misspellings_are_not_warned_about(tmp_path: Path) -> None:
    # 'Amersfoortse' is Amersfoort's own adjective; 'libary' a misspelling fuzziness should find.
    queries = QUERIES.replace('["de bieb", "bibliotheek"]', '["de bieb", "Amersfoort", "library"]')
    assert lint(setup(tmp_path, queries)) == []


def test_too_many_typos_for_the_word_length_warn(tmp_path: Path) -> None:
    (said,) = messages(lint(setup(tmp_path, brand("query = 'Eemland~2'"))))
    assert said.startswith("~2 lets 'Eemland' (7 letters) match 20 common words: 'iemand', ")
    assert "'england'" in said
    assert said.endswith("; write Eemland~1")


def test_one_typo_on_a_seven_letter_name_does_not_warn(tmp_path: Path) -> None:
    assert lint(setup(tmp_path, brand("query = 'Eemland~1'"))) == []


def test_terms_under_not_are_not_checked_for_fuzziness(tmp_path: Path) -> None:
    queries = local("fuzzy = 60\nquery = 'Eemhuis~0 -Eemnes'", terms='["de bieb"]')
    assert lint(setup(tmp_path, queries)) == []


def test_a_common_word_that_matches_many_others_is_loose(tmp_path: Path) -> None:
    (said,) = messages(lint(setup(tmp_path, local("fuzzy = 60"))), "de-bieb")
    assert said.startswith("fuzzy 60 makes 'bibliotheek' (in term 'bibliotheek') match ")
    assert "'hypotheek'" in said


# --- listener check ----------------------------------------------------------------------------


def test_check_prints_the_warnings_and_still_exits_0(tmp_path: Path) -> None:
    config = write_setup(tmp_path, queries=brand("query = 'Eemhuis OR lezen'"))
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    assert ": searches[eemland-brand]: warning: 'lezen' in the query: " in result.output
    assert "1 warning(s) about the searches" in result.output


def test_check_strict_exits_1_on_warnings(tmp_path: Path) -> None:
    config = write_setup(tmp_path, queries=brand("query = 'Eemhuis OR lezen'"))
    result = runner.invoke(app, ["check", "--strict", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "warning: 'lezen' in the query" in result.output


def test_check_strict_exits_0_without_warnings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--strict", "--config", str(write_setup(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "warning(s) about the searches" not in result.output
