"""Text folding shared by matching, place finding and scoring.

`fold` turns any text into lower-case ASCII-ish words separated by single spaces: accents are
stripped ('wéér' → 'weer'), punctuation becomes a space ('#bieb' → 'bieb', 'A'foort' → 'a foort'),
so that every stage compares like with like. Emoji are dropped by `fold`; stages that care about
them (the urgency lexicon) look at the raw text.
"""

from __future__ import annotations

import re
import unicodedata

#: ASCII byte by byte as `fold` keeps it: digits and lower-case letters as they are, anything
#: else a space (capitals too: `fold` lower-cases first, so what capitals are left after case
#: folding and decomposing belong to a compatibility form, '™' → 'TM', and are no word).
#: `bytes.translate` and `split` do in one pass what a regular expression's substitution did
#: three times slower.
_WORD_BYTES = bytes(ch if 48 <= ch <= 57 or 97 <= ch <= 122 else 32 for ch in range(256))

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
        return spaced_words(text.lower())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return spaced_words(_NON_ASCII.sub(_space_unless_marks, decomposed))  # accents stripped


def spaced_words(text: str) -> str:
    """The runs of digits and lower-case letters of an ASCII text, one space between them:
    what a regular expression's `[0-9a-z]+` finds, in one pass (capitals count as spaces)."""
    return b" ".join(text.encode("ascii").translate(_WORD_BYTES).split()).decode("ascii")


def words(text: str) -> list[str]:
    """The folded words of a text."""
    folded = fold(text)
    return folded.split() if folded else []
