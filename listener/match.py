"""Match: does a post mention what a saved search looks for?

A `brand` search finds an organisation's name, aliases and handles (plus any extra terms) anywhere;
a `local` search finds generic terms such as "de bieb", which only count once the locate stage has
put the post near a branch. Text is folded first (`listener.text.fold`), so case, accents and
punctuation never matter. A term matches exactly as a word sequence, or fuzzily (rapidfuzz ratio
against word windows of the same length, at the search's threshold) when it is longer than four
letters; short terms like 'bieb' or 'OBA' must match exactly, or they would match half the language.
Exclusions, and for local searches the built-in cues of another sense of the word (a Steam
library, a Python library), reject a post with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from listener.config.model import Organisation, Search
from listener.post import Post
from listener.text import fold

#: Words that show 'bibliotheek'/'library' is used in another sense (software, games, media).
SENSE_CUES: tuple[str, ...] = (
    # Single words only where they cannot describe a public library's own activities (libraries
    # host game afternoons, post photos and teach software): otherwise two-word cues.
    # games and media
    "steam", "steambibliotheek", "playstation", "xbox", "nintendo", "game library",
    "games library", "gamebibliotheek", "game bibliotheek", "spotify", "plex", "icloud",
    "netflix", "itunes", "photo library", "photos library", "fotobibliotheek",
    "foto bibliotheek", "mediabibliotheek", "muziekbibliotheek",
    # software
    "python", "pypi", "npm", "pip install", "java", "javascript", "maven", "github",
    "software library", "code library", "standard library", "standaardbibliotheek",
    "standaard bibliotheek",
    # a room at home, history, and things named after it
    "bibliotheek thuis", "thuisbibliotheek", "alexandrie", "alexandria", "cafe de bieb",
    "bar de bieb", "kroeg de bieb",
    # other libraries: the national online library, universities and colleges
    "online bibliotheek", "onlinebibliotheek", "universiteitsbibliotheek", "university library",
    "bibliotheek van de universiteit", "bibliotheek van de hogeschool", "ub utrecht",
)  # fmt: skip
#: Words before a bare 'bieb'/'bibliotheek'/'library' that point at a public library.
PUBLIC_BEFORE = frozenset(
    [
        "de",
        "het",
        "een",
        "the",
        "a",
        "an",
        "naar",
        "in",
        "bij",
        "uit",
        "van",
        "voor",
        "op",
        "to",
        "at",
        "from",
        "public",
        "local",
        "city",
        "openbare",
        "onze",
        "ons",
        "our",
        "jullie",
        "your",
        "deze",
        "die",
        "dat",
        "this",
        "that",
        "lokale",
        "centrale",
        "nieuwe",
        "new",
        "geen",
    ]
)
#: Words before it that make it someone's own collection ('mijn bibliotheek', 'my library').
PERSONAL_BEFORE = frozenset(
    [
        "mijn",
        "m'n",
        "jouw",
        "zijn",
        "z'n",
        "haar",
        "hun",
        "eigen",
        "my",
        "his",
        "her",
        "their",
        "own",
    ]
)
#: The words this applies to, and whether a possessive makes them personal ('mijn bieb' is
#: usually the public library; 'mijn bibliotheek' someone's books).
GENERIC_WORDS = {"bieb": False, "bibliotheek": True, "library": True}
ENGLISH_GENERIC = frozenset({"library"})
_QUOTES = "'\"‘’“”"
SHORT_TERM = 4  # folded terms this short or shorter must match exactly
NEAR_MISS_MARGIN = 12  # fuzzy scores this far under the threshold are reported as near-misses


@dataclass(frozen=True, slots=True)
class Term:
    text: str
    folded: str
    kind: str  # name | alias | handle | branch | term

    @property
    def words(self) -> int:
        return len(self.folded.split())


@dataclass(frozen=True, slots=True)
class Text:
    """A post's text prepared once for every search: folded, split, padded for word look-ups."""

    raw: str
    folded: str
    words: tuple[str, ...]
    padded: str

    @classmethod
    def of(cls, raw: str) -> Text:
        folded = fold(raw)
        return cls(raw, folded, tuple(folded.split()), f" {folded} ")

    def has(self, folded_phrase: str) -> bool:
        return bool(folded_phrase) and f" {folded_phrase} " in self.padded


@dataclass(slots=True)
class MatchResult:
    search: Search
    matched: bool
    term: Term | None = None
    written: str | None = None
    score: float = 0.0
    evidence: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)


_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_][\w.\-]*(?:@[\w\-]+(?:\.[\w\-]+)+)?)")


def normal_handle(handle: str) -> str:
    """'@BiebEemland' → 'biebeemland'; '@bieb@mastodon.nl' → 'bieb@mastodon.nl'."""
    return handle.strip().lstrip("@").rstrip(".").lower()


def handle_local(handle: str) -> str:
    """The account name without server or domain: 'biebeemland.bsky.social' → 'biebeemland'."""
    return re.split(r"[@.]", normal_handle(handle), maxsplit=1)[0]


def handle_keys(handle: str) -> set[str]:
    """What a mention of this handle may look like: the whole handle, and its account name
    when that is distinctive (longer than four letters), as people write '@biebeemland' for
    'biebeemland.bsky.social'. '@bieb@mastodon.nl' never becomes plain 'bieb'."""
    keys = {normal_handle(handle)}
    local = handle_local(handle)
    if len(local) > SHORT_TERM:
        keys.add(local)
    return keys


def mentions(raw: str) -> list[str]:
    """The @handles in a text, as written."""
    return [m.rstrip(".") for m in _MENTION.findall(raw)]


class SearchMatcher:
    """One saved search, with its terms folded once."""

    def __init__(
        self,
        search: Search,
        org: Organisation | None,
        is_name: Callable[[str], bool] = lambda _: False,
        extra_terms: Sequence[Term] = (),
    ) -> None:
        """`is_name` tells whether some words are a place or a library's own name: 'Leusden
        library' and 'CODA-bieb' are the public library, 'GOG library' is not."""
        self.is_name = is_name
        self.search = search
        self.org = org
        terms: list[Term] = []
        if search.kind == "brand" and org is not None:
            terms.append(Term(org.name, fold(org.name), "name"))
            terms += [Term(a, fold(a), "alias") for a in org.aliases]
            terms += [
                Term(h, fold(handle_local(h)), "handle")
                for h in org.handles
                if len(handle_local(h)) > SHORT_TERM
            ]
        terms += [Term(t, fold(t), "term") for t in search.terms]
        terms += extra_terms
        unique: dict[str, Term] = {}
        for term in terms:
            if term.folded:
                unique.setdefault(term.folded, term)
        self.terms = list(unique.values())
        self.exclude = [(e, fold(e)) for e in search.exclude if fold(e)]
        self.sense_cues = [(c, c) for c in SENSE_CUES]
        self.sense_cues += [(c, fold(c)) for c in search.sense_cues if fold(c)]
        self.handle_keys: dict[str, str] = {}
        if search.kind == "brand" and org is not None:
            for handle in org.handles:
                for key in handle_keys(handle):
                    self.handle_keys.setdefault(key, handle)
        self.sources = set(search.sources)
        self.languages = {lang.lower().split("-")[0] for lang in search.languages}

    def applies_to(self, post: Post, fetched_by: str | None = None) -> bool:
        """The search's source and language filters."""
        if self.sources and post.source not in self.sources and fetched_by not in self.sources:
            return False
        if self.languages and post.lang:
            return post.lang.lower().split("-")[0] in self.languages
        return True

    def match(self, post: Post, text: Text) -> MatchResult:
        result = MatchResult(self.search, matched=False)
        best_miss: tuple[float, Term, str] | None = None
        for written in mentions(text.raw) if self.handle_keys else ():
            handle = next(
                (self.handle_keys[k] for k in handle_keys(written) if k in self.handle_keys), None
            )
            if handle is not None:
                result.matched, result.score, result.written = True, 100.0, "@" + written
                result.term = Term(handle, normal_handle(handle), "handle")
                break
        other_sense: str | None = None
        for term in self.terms if not result.matched else ():
            found = self._find(term, text)
            if found is None:
                continue
            written, score = found
            if score >= 100 and not _acronym_as_written(term, text.raw):
                continue  # 'Oba!' is not 'OBA'
            if score >= 100 and self.search.kind == "local":
                sense = _sense_in_context(term, text.raw, self.is_name)
                if sense is not None:
                    other_sense = other_sense or sense
                    continue
            if score >= self.search.fuzzy:
                if not result.matched or score > result.score:
                    result.matched, result.term, result.written, result.score = (
                        True,
                        term,
                        written,
                        score,
                    )
            elif score >= self.search.fuzzy - NEAR_MISS_MARGIN and (
                best_miss is None or score > best_miss[0]
            ):
                best_miss = (score, term, written)
        if not result.matched:
            if other_sense is not None:
                result.evidence.append(f"search {self.search.id}: rejected, {other_sense}")
            if best_miss is not None:
                score, term, written = best_miss
                result.near_misses.append(
                    f"search {self.search.id}: '{written}' is like {term.kind} '{term.text}' "
                    f"(fuzzy {score:.0f}, needs {self.search.fuzzy})"
                )
            return result
        assert result.term is not None
        result.evidence.append(self._evidence(result.term, result.written or "", result.score))
        reason = self._rejection(text)
        if reason:
            result.matched = False
            result.evidence.append(f"search {self.search.id}: rejected, {reason}")
        return result

    def _evidence(self, term: Term, written: str, score: float) -> str:
        where = f"search {self.search.id}"
        if written.startswith("@"):
            return f"{where}: text mentions {written} (handle '{term.text}')"
        how = "exact" if score >= 100 else f"fuzzy {score:.0f}"
        if written == term.folded:
            return f"{where}: text has {term.kind} '{term.text}' ({how})"
        return f"{where}: '{written}' → {term.kind} '{term.text}' ({how})"

    def _rejection(self, text: Text) -> str | None:
        for original, folded in self.exclude:
            if text.has(folded):
                return f"excluded by '{original}'"
        if self.search.kind == "local":
            for original, folded in self.sense_cues:
                if text.has(folded):
                    return f"another sense of the word ('{original}')"
        return None

    def _find(self, term: Term, text: Text) -> tuple[str, float] | None:
        """The words in the text closest to the term, and their score (100 = exact).

        A multi-word term is scored word by word and takes its weakest word, so a shared
        generic word ('bibliotheek') cannot carry a different name ('Eemnes' for 'Eemland').
        """
        if text.has(term.folded):
            return term.folded, 100.0
        joined = term.folded.replace(" ", "")
        if term.words > 1 and joined in text.words:  # '#BibliotheekEemland'
            return joined, 100.0
        if len(joined) <= SHORT_TERM or not text.words:
            return None
        best: tuple[str, float] | None = None
        parts = term.folded.split()
        size = len(parts)
        for i in range(len(text.words) - size + 1):
            window = text.words[i : i + size]
            score = min(_word_score(a, b) for a, b in zip(parts, window, strict=True))
            if best is None or score > best[1]:
                best = (" ".join(window), score)
        if size > 1:  # the term written as one word: '#BibliotheekEemlnd'
            for word in text.words:
                if len(word) >= 0.9 * len(joined):
                    score = fuzz.ratio(joined, word)
                    if best is None or score > best[1]:
                        best = (word, score)
        return best


def _acronym_as_written(term: Term, raw: str) -> bool:
    """An acronym alias ('OBA', 'KB') counts only in capitals: 'Oba!' is someone's name."""
    original = term.text.strip()
    if not (original.isalpha() and original.isupper() and len(original) <= SHORT_TERM + 1):
        return True
    return re.search(rf"(?<!\w){re.escape(original)}(?!\w)", raw) is not None


def _sense_in_context(term: Term, raw: str, is_name: Callable[[str], bool]) -> str | None:
    """Why every use of a generic term in the text is another sense, or None if one is not.

    A public library is 'de bieb', 'the library', 'naar de bibliotheek', 'bibliotheek Leusden'.
    Other senses show in the words around it: a compound ('Lightroom-bibliotheek'), a
    possessive ('mijn bibliotheek', 'opa's bibliotheek'), a title ('The Midnight Library'),
    scare quotes ("'de bibliotheek'"), or in English a noun before it ('GOG library').
    """
    word = term.folded.split()[-1]
    pattern = re.compile(rf"(?<!\w){re.escape(term.text.strip())}(?!\w)", re.IGNORECASE)
    reasons: list[str] = []
    for found in pattern.finditer(raw):
        reason = _occurrence_sense(raw, found.start(), found.end(), word, found.group(), is_name)
        if reason is None:
            return None
        reasons.append(reason)
    return reasons[0] if reasons else None  # no occurrence found as written: trust the fold


def _occurrence_sense(
    raw: str, start: int, end: int, word: str, written: str, is_name: Callable[[str], bool]
) -> str | None:
    """Why one use of a generic term is another sense, or None when it may be the public one."""
    before, after = raw[:start].rstrip(), raw[end:]
    if before.endswith("-"):  # 'test-library', 'Foto's-bibliotheek', but 'CODA-bieb'
        compound = (re.findall(r"[\w'’]+-$", before) or [""])[0]
        if is_name(compound[:-1]):
            return None
        return f"another sense of the word ('{compound}{written}' is a kind of {word})"
    quoted_article = re.search(rf"[{_QUOTES}]\s*(de|het|the)\s*$", before, re.IGNORECASE)
    if (before[-1:] in _QUOTES or quoted_article) and after[:1] in _QUOTES:
        return f"another sense of the word ('{written}' in quotes)"
    if before and not (before[-1].isalnum() or before[-1] in _QUOTES):
        return None  # punctuation between, as in "today: library, archive"
    words = re.findall(r"[\w'’]+", before)
    if word not in GENERIC_WORDS or not words:
        return None
    previous = words[-1]
    lower = previous.lower()
    if GENERIC_WORDS[word] and (lower in PERSONAL_BEFORE or lower.endswith(("'s", "’s"))):
        return f"another sense of the word ('{previous} {written}': someone's own)"
    if lower in PUBLIC_BEFORE:
        return None
    if previous[:1].isupper() and (
        is_name(previous) or (len(words) > 1 and is_name(f"{words[-2]} {previous}"))
    ):
        return None  # 'Leusden library', 'Den Bosch library', 'OBA library'
    if _acronym(previous):  # 'UvA bibliotheek', 'TU library': another institution's
        return f"another sense of the word ('{previous} {written}' is another institution's)"
    if previous[:1].isupper() and written[:1].isupper() and len(words) > 1:
        return f"another sense of the word ('{previous} {written}' is a name)"
    two_back = words[-2].lower() if len(words) > 1 else ""
    if word in ENGLISH_GENERIC and not (two_back in PUBLIC_BEFORE and previous.islower()):
        return f"another sense of the word ('{previous} {written}' is a kind of library)"
    return None


def _acronym(word: str) -> bool:
    """'UvA', 'TU', 'HU', 'KB': capitals, perhaps with small letters between."""
    return len(word) >= 2 and word[0].isupper() and word[-1].isupper() and word.isalpha()


def _word_score(expected: str, written: str) -> float:
    """100 for the same word; short words must be the same; longer ones are compared fuzzily."""
    if expected == written:
        return 100.0
    if len(expected) <= SHORT_TERM:
        return 0.0
    return fuzz.ratio(expected, written)
