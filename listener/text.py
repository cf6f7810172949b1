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


def fold(text: str) -> str:
    """Lower-case, strip accents, turn punctuation into spaces, collapse white space."""
    if text.isascii():  # most posts: nothing to decompose
        return _NON_WORD.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped).strip()


def words(text: str) -> list[str]:
    """The folded words of a text."""
    folded = fold(text)
    return folded.split() if folded else []
