"""Text folding shared by matching, place finding and scoring.

`fold` turns any text into lower-case ASCII-ish words separated by single spaces: accents are
stripped ('wéér' → 'weer'), punctuation becomes a space ('#bieb' → 'bieb', 'A'foort' → 'a foort'),
so that every stage compares like with like. Emoji are dropped by `fold`; stages that care about
them (the urgency lexicon) look at the raw text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_NON_WORD = re.compile(r"[^0-9a-z]+")


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@cache
def _marks() -> dict[int, None]:
    """A `str.translate` table that drops the combining marks of the Basic Multilingual Plane
    (made once, in a few milliseconds)."""
    return {c: None for c in range(0x300, 0x10000) if unicodedata.combining(chr(c))}


def _keep(found: re.Match[str]) -> str:
    return "" if unicodedata.combining(found.group()) else found.group()


def strip_accents(text: str) -> str:
    """Case-folded, decomposed (NFKD), combining marks dropped: 'Wéér' → 'weer'. In C for the
    Basic Multilingual Plane; the rarer characters beyond it (emoji) are looked at one by one."""
    stripped = unicodedata.normalize("NFKD", text.casefold()).translate(_marks())
    return stripped if stripped.isascii() else _ASTRAL.sub(_keep, stripped)


def fold(text: str) -> str:
    """Lower-case, strip accents, turn punctuation into spaces, collapse white space."""
    if text.isascii():  # most posts: nothing to decompose
        return _NON_WORD.sub(" ", text.lower()).strip()
    return _NON_WORD.sub(" ", strip_accents(text)).strip()


def words(text: str) -> list[str]:
    """The folded words of a text."""
    folded = fold(text)
    return folded.split() if folded else []
