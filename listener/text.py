"""Text folding shared by matching, place finding and scoring.

`fold` turns any text into lower-case ASCII-ish words separated by single spaces: accents are
stripped ('wéér' → 'weer'), punctuation becomes a space ('#bieb' → 'bieb', 'A'foort' → 'a foort'),
so that every stage compares like with like. Emoji are dropped by `fold`; stages that care about
them (the urgency lexicon) look at the raw text.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _without_marks(run: re.Match[str]) -> str:
    return "".join(ch for ch in run.group() if not unicodedata.combining(ch))


def _space_unless_marks(run: re.Match[str]) -> str:
    """A run of non-ASCII characters in `fold`: gone if only combining marks ('e' + '´'),
    else a space, as `fold` makes of every other character that is no letter or digit."""
    return "" if all(unicodedata.combining(ch) for ch in run.group()) else " "


def strip_accents(text: str) -> str:
    """Case-folded, decomposed (NFKD), combining marks dropped: 'Wéér' → 'weer'. Only the runs
    of non-ASCII characters are looked at one by one."""
    return _NON_ASCII.sub(_without_marks, unicodedata.normalize("NFKD", text.casefold()))


def fold(text: str) -> str:
    """Lower-case, strip accents, turn punctuation into spaces, collapse white space."""
    if text.isascii():  # most posts: nothing to decompose
        return _NON_WORD.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _NON_WORD.sub(" ", _NON_ASCII.sub(_space_unless_marks, decomposed)).strip()


def words(text: str) -> list[str]:
    """The folded words of a text."""
    folded = fold(text)
    return folded.split() if folded else []
