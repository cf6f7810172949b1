"""Folding (`listener.text`): the one-pass forms against their definition in regular expressions."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from listener.text import fold, spaced_words, strip_accents

TRICKY = "aAzZ019 .,!?#@'-/:\n\téÉßﬁ½😡\u0301İøĳĲ中\u00a0…’™㎏Ⅳ"


def _fold_by_patterns(text: str) -> str:
    """`fold` as its docstring says it, one regular expression at a time."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_marks = re.sub(
        r"[^\x00-\x7f]+",
        lambda run: "" if all(unicodedata.combining(ch) for ch in run.group()) else " ",
        decomposed,
    )
    return re.sub(r"[^0-9a-z]+", " ", without_marks).strip()


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40))
def test_fold_is_its_definition_in_regular_expressions(text: str) -> None:
    assert fold(text) == _fold_by_patterns(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40))
def test_spaced_words_are_the_runs_of_digits_and_small_letters(text: str) -> None:
    ascii_text = strip_accents(text).encode("ascii", "replace").decode("ascii")
    assert spaced_words(ascii_text) == " ".join(re.findall(r"[0-9a-z]+", ascii_text))


def test_fold_examples() -> None:
    assert fold("De BIEB in Leusden is wéér dicht!!") == "de bieb in leusden is weer dicht"
    assert fold("#bieb @BiebEemland A'foort") == "bieb biebeemland a foort"
    assert fold("Bieb™ Leusden") == "bieb leusden"  # a compatibility form's capitals are no word
    assert fold("") == fold(" .,! ") == ""
