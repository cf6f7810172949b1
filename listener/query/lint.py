"""Lint saved searches: warn about searches that will drown the team, before they run.

A configuration can be valid and still useless: a brand search that also finds 'lezen', or the
alias 'Bieb', alerts on every post about reading or about any library in the country, and a fuzzy
threshold of 60 makes 'Eemnes' match 'eens'. `listener check` runs `lint(config)` once the
configuration is valid and prints each `Warning` as `file:line: searches[id]: warning: …`.

Two checks, both measured against real word frequencies (wordfreq, Dutch and English):

- **Drowning terms.** In a brand search every way to find the brand counts on its own: the
  organisation's name, aliases and handles, the plain `terms`, and each OR branch of the query
  (an AND or NEAR needs all its parts, so a common word tied to a specific one is fine). One that
  is only common words, or only the generic word for a library, is reported with an estimate of
  how many posts it would alert on. Local searches are not checked: they only count inside a
  branch's area, which is the requirement that keeps a bare 'bieb' quiet.
- **Loose fuzziness.** Every fuzzy-matched term (longer than `evaluate.SHORT_TERM` letters, at
  the search's `fuzzy` threshold) and every `~n` term, in any search, is compared with the
  50,000 most common Dutch and English words. A name that would match one of them ('Eemland'
  taking 'England'), or a common word that would match several, is reported with examples and
  the setting that would not; its own forms ('Amersfoortse') and rare misspellings of it do not
  count, finding those is what fuzziness is for.

The word lists are loaded once per process, so a check stays quick.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from listener.config.lines import KeyLines
from listener.config.loader import Config, location, query_position
from listener.config.model import Organisation, Search
from listener.match import GENERIC_WORDS, handle_local
from listener.query.evaluate import SHORT_TERM
from listener.query.syntax import (
    And,
    Field,
    Near,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Term,
    Word,
    fold_words,
    key,
    parse,
    positive,
)
from listener.text import strip_accents

#: A way to find the brand as common as this, on the Zipf scale (log10 of occurrences per billion
#: words), drowns the team. Zipf 4 is once per 100,000 words, so about one post in 5,000 (at
#: WORDS_PER_POST words a post). The Dutch part of Bluesky alone is tens of thousands of posts a
#: day, so such a word brings ten or more alerts a day that are not about the organisation: more
#: than a library's own mentions. It is about the 6,300th word of Dutch ('lezen' is 5.3, 'Utrecht'
#: 5.1, 'Amersfoort' 4.3); names such as 'Eemland' (2.8) or 'CODA' (2.8) stay well under it.
DROWNING_ZIPF = 4.0
#: Words this common ('de', 'het', 'the', 'naar'; the top hundred or so) add nothing specific to a
#: phrase: 'de bibliotheek' is as unspecific as 'bibliotheek'.
FUNCTION_ZIPF = 6.0
#: A typical social post's length, to turn a word frequency into a share of posts.
WORDS_PER_POST = 20
#: The vocabulary loose fuzziness is checked against: the most common words of each language.
COMMON_WORDS = 50_000
FUZZY_LANGUAGES = ("nl", "en")
#: A fuzzy match this much rarer than the term's word (Zipf) is taken to be a misspelling of it
#: ('libary' for 'library'): finding those is what fuzziness is for.
MISSPELLING_GAP = 1.5
#: A term's word that is itself common (Zipf DROWNING_ZIPF or more) is loose when it matches
#: this many other common words: one ('lezen' taking 'leen' at fuzzy 88) is the price of finding
#: its misspellings; a handful means the threshold is too low for the word. A rarer word, a
#: name, is loose on the first ('Eemland' taking 'England').
LOOSE_COMMON = 5
#: The generic words for a library: on their own they name no organisation.
GENERIC = frozenset(GENERIC_WORDS) | {"bibliotheken", "libraries", "biebs"}
LANGUAGE_NAMES = {"nl": "Dutch", "en": "English", "de": "German", "fr": "French"}
EXAMPLES = 5  # common words quoted in a warning
_RANKS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)


@dataclass(frozen=True, slots=True)
class Warning:
    """Something in a valid search that will probably do harm: where, which search, what to do."""

    file: Path
    line: int | None
    search: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = location(self.file, self.line, self.column)
        return f"{where}: searches[{self.search}]: warning: {self.message}"


def lint(config: Config) -> list[Warning]:
    """Every warning about the configuration's searches, in the order of the searches."""
    locator = _Locator(config)
    warnings: list[Warning] = []
    for search in config.searches:
        tree = _tree(search)
        org = config.organisations.get(search.org) if search.org else None
        drowned: list[tuple[str, Warning]] = []
        if search.kind == "brand" and org is not None:
            drowned = _drowning(search, org, tree, locator)
        # A term that drowns the search already has its warning: its fuzziness is the lesser harm.
        skip = frozenset(what for what, _ in drowned)
        found = [w for _, w in drowned] + _loose(search, org, tree, locator, skip)
        warnings += sorted(found, key=lambda w: (w.line or 0, w.column or 0))
    return warnings


# --- drowning terms ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Way:
    """One way a brand search finds a post on its own."""

    node: Node
    what: str  # "'lezen' in the query", "alias 'Bieb'"
    origin: str  # query | terms | name | alias | handle
    key: tuple[str | int, ...] = ()  # where in the search's table, for the line
    offset: int | None = None  # into the query


@dataclass(frozen=True, slots=True)
class _Estimate:
    zipf: float  # how common, as if it were one word
    generic: bool  # only the generic word for a library (and function words)


def _drowning(
    search: Search, org: Organisation, tree: Node | None, locator: _Locator
) -> list[tuple[str, Warning]]:
    """Each way the brand search finds posts on its own that is too common, with its warning."""
    restrictions = [c for c in _conjuncts(tree) if not positive(c)]
    if any(isinstance(c, Field) and c.name == "author" for c in restrictions):
        return []  # one author's posts: never a flood
    languages = _languages(search, restrictions)
    anchor = _anchor(org)
    out: list[tuple[str, Warning]] = []
    for way in _ways(search, org, tree):
        if not positive(way.node):
            message = (
                f"{way.what} is an OR branch that needs no words: on its own it would make "
                f"this search alert on nearly every post that passes it; move it out of the OR "
                f"(a filter at the top level, '… AND {_text(search, way.node)}', applies to "
                f"every match)"
            )
            out.append((way.what, locator.warning(search, message, way.key, way.offset)))
            continue
        lang, estimate = max(
            ((lang, _estimate(way.node, lang)) for lang in languages),
            key=lambda pair: pair[1].zipf if pair[1] else -1.0,
        )
        if estimate is None or not (estimate.zipf >= DROWNING_ZIPF or estimate.generic):
            continue
        why = _why(way.node, lang, estimate, org)
        share = _share(estimate.zipf, LANGUAGE_NAMES.get(lang, lang))
        message = f"{way.what}: {why}; on its own it would make this search alert on {share}; "
        message += _fix(way, anchor, org, estimate.generic)
        out.append((way.what, locator.warning(search, message, way.key, way.offset)))
    return out


def _ways(search: Search, org: Organisation, tree: Node | None) -> Iterator[_Way]:
    yield _Way(_term(org.name), f"name '{org.name}'", "name")
    for alias in org.aliases:
        yield _Way(_term(alias), f"alias '{alias}'", "alias")
    for handle in org.handles:
        local = handle_local(handle)
        if len(local) > SHORT_TERM:  # as the matcher: the account name is found as a word too
            yield _Way(_term(local), f"handle '{handle}'", "handle")
    for j, text in enumerate(search.terms):
        if fold_words(text):
            yield _Way(_term(text), f"term '{text}'", "terms", ("terms", j))
    if tree is None:
        return
    found = [c for c in _conjuncts(tree) if positive(c)]
    if not found:
        return
    whole = found[0] if len(found) == 1 else And(tuple(found), found[0].start, found[-1].end)
    for node in _alternatives(whole):
        yield _Way(node, f"'{_text(search, node)}' in the query", "query", offset=node.start)


def _alternatives(node: Node) -> list[Node]:
    """The parts of a query that find a post on their own: an OR's branches, recursively."""
    if isinstance(node, Or):
        return [alt for child in node.children for alt in _alternatives(child)]
    return [node]


def _estimate(node: Node, lang: str) -> _Estimate | None:
    """How common a post with this node is, on the Zipf scale of one word; None for a filter.

    A phrase, AND or NEAR is as rare as its rarest required part, and each further part (not a
    function word) makes it ten times rarer, one point of Zipf: 'Bibliotheek Amersfoort' (4.6
    and 4.3) is 3.3, 'boek lezen' 4.3. That errs towards warning: words that go together ('boek
    lezen') are about that common, unrelated words far rarer (independence would take off three
    points or more).
    """
    match node:
        case Term():
            if node.mention:
                return _Estimate(0.0, False)
            zipfs = [_word_zipf(word, lang) for word in node.words]
            content = [z for z in zipfs if z < FUNCTION_ZIPF]
            zipf = min(content) - (len(content) - 1) if content else min(zipfs)
            generic = any(w.text in GENERIC for w in node.words) and all(
                w.text in GENERIC or z >= FUNCTION_ZIPF
                for w, z in zip(node.words, zipfs, strict=True)
            )
            return _Estimate(zipf, generic)
        case Field() | Not():
            return None
        case Or():
            parts = [e for c in node.children if (e := _estimate(c, lang)) is not None]
            if not parts:
                return None
            total = sum(10**p.zipf for p in parts)
            return _Estimate(math.log10(total), all(p.generic for p in parts))
        case And():
            return _required([_estimate(c, lang) for c in node.children])
        case Near():
            return _required([_estimate(node.left, lang), _estimate(node.right, lang)])
    raise TypeError(node)  # pragma: no cover


def _required(estimates: Sequence[_Estimate | None]) -> _Estimate | None:
    parts = [e for e in estimates if e is not None]
    if not parts:
        return None
    zipf = min(p.zipf for p in parts) - (len(parts) - 1)
    return _Estimate(zipf, all(p.generic for p in parts))


def _word_zipf(word: Word, lang: str) -> float:
    if word.prefix:
        return _lexicon().prefix_zipf(word.text, lang)
    return _lexicon().zipf(word.text, lang)


def _why(node: Node, lang: str, estimate: _Estimate, org: Organisation) -> str:
    language = LANGUAGE_NAMES.get(lang, lang)
    if isinstance(node, Term) and len(node.words) == 1:
        word = node.words[0]
        if estimate.generic:
            return (
                f"'{word.text}' is the everyday word for any library: it finds every library's "
                f"posts, not only {org.name}'s"
            )
        if word.prefix:
            examples = ", ".join(f"'{w}'" for w in _lexicon().prefixed(word.text, lang)[:3])
            return f"'{word.text}*' finds common {language} words such as {examples}"
        rank = _lexicon().rank(word.text, lang)
        if rank is not None:
            nice = next(r for r in _RANKS if rank <= r)
            return f"'{word.text}' is among the {nice:,} most common {language} words"
        return f"'{word.text}' is a common {language} word"
    if estimate.generic:
        return (
            "it names no organisation, only the generic word for a library: it finds any "
            "library's posts"
        )
    return f"it needs only common {language} words"


def _fix(way: _Way, anchor: str | None, org: Organisation, generic: bool) -> str:
    example = _example(way.node)
    tie = f"{example} NEAR/3 {anchor}" if example and anchor else ""
    if way.origin in ("name", "alias", "handle"):
        text = "an organisation's name, aliases and handles are found in every brand search, so "
        if way.origin == "name":
            text += f"give organisation {org.id} a name that is not everyday words (its full name)"
        else:
            kind = {"alias": "aliases", "handle": "handles"}[way.origin]
            text += f"take it out of organisation {org.id}'s {kind}"
        if way.origin == "alias" and anchor and generic and isinstance(way.node, Term):
            text += f" or make it specific ('{way.node.written.strip(chr(34))} {anchor}')"
        return text + (f"; if you need it, tie it to something in the query: {tie}" if tie else "")
    if tie:
        where = "in the query" if way.origin == "query" else "in the query instead of terms"
        return f"tie it to something specific {where}, e.g. {tie}, or move it to a local search"
    return "tie it with AND or NEAR/n to something specific, or move it to a local search"


def _example(node: Node) -> str | None:
    if isinstance(node, Term):
        return node.written
    return None


def _anchor(org: Organisation) -> str | None:
    """The most specific word of the organisation's names or its branches' towns: 'Eemland'."""
    candidates: list[tuple[float, str]] = []
    for text in [org.name, *org.aliases, *(b.town or "" for b in org.branches)]:
        for written in text.split():
            folded = fold_words(written)
            if len(folded) != 1 or len(folded[0]) <= SHORT_TERM or folded[0] in GENERIC:
                continue
            zipf = max(_lexicon().zipf(folded[0], lang) for lang in FUZZY_LANGUAGES)
            if zipf < DROWNING_ZIPF:
                candidates.append((zipf, written.strip(",.;:()'\"")))
    return min(candidates)[1] if candidates else None


def _share(zipf: float, language: str) -> str:
    """'~1 in 240 Dutch posts': the posts of WORDS_PER_POST words with at least one occurrence."""
    per_word = 10 ** (zipf - 9)
    share = 1 - math.exp(-WORDS_PER_POST * per_word)
    if share >= 0.5:
        return f"nearly every {language} post"
    posts = 1 / share
    digits = len(str(int(posts)))
    return f"~1 in {round(posts, -max(0, digits - 2)):,.0f} {language} posts"


def _languages(search: Search, restrictions: Sequence[Node]) -> list[str]:
    """The languages a search reads (its `languages` and top-level lang: filters), else nl+en."""
    available = _lexicon().available
    wanted = [lang.lower().split("-")[0] for lang in search.languages]
    wanted += [
        c.value.split("-")[0] for c in restrictions if isinstance(c, Field) and c.name == "lang"
    ]
    known = [lang for lang in dict.fromkeys(wanted) if lang in available]
    return known or list(FUZZY_LANGUAGES)


# --- loose fuzziness ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fuzzy:
    """A term the matcher compares fuzzily: as written, its words, ~n or None for the threshold."""

    written: str
    words: tuple[Word, ...]
    typos: int | None
    what: str
    key: tuple[str | int, ...] = ()
    offset: int | None = None


def _loose(
    search: Search,
    org: Organisation | None,
    tree: Node | None,
    locator: _Locator,
    skip: frozenset[str] = frozenset(),
) -> list[Warning]:
    """Fuzzy words that match common words, one warning per word however many terms have it."""
    found: dict[tuple[str, int | None], tuple[_Fuzzy, str, list[tuple[str, float]]]] = {}
    where: dict[tuple[str, int | None], list[str]] = {}
    for item in _fuzzy_items(search, org, tree):
        if item.typos == 0 or (item.typos is None and search.fuzzy >= 100) or item.what in skip:
            continue
        loose = _loose_word(search, item)
        if loose is None:
            continue
        word, counted = loose
        group = (word, item.typos)
        found.setdefault(group, (item, word, counted))
        if item.what not in where.setdefault(group, []):
            where[group].append(item.what)
    out: list[Warning] = []
    for group, (item, word, counted) in found.items():
        message = _loose_message(search, item, word, counted, where[group])
        out.append(locator.warning(search, message, item.key, item.offset))
    return out


def _fuzzy_items(search: Search, org: Organisation | None, tree: Node | None) -> Iterator[_Fuzzy]:
    if search.kind == "brand" and org is not None:
        yield _plain(org.name, f"name '{org.name}'")
        for alias in org.aliases:
            yield _plain(alias, f"alias '{alias}'")
        # Handles are matched exactly (listener.match), so they cannot be loose.
    for j, text in enumerate(search.terms):
        yield _plain(text, f"term '{text}'", ("terms", j))
    for term in _positive_terms(tree) if tree is not None else ():
        if term.mention or term.emoji:
            continue
        what = f"'{term.written}' in the query"
        yield _Fuzzy(term.written, term.words, term.typos, what, offset=term.start)


def _plain(text: str, what: str, key: tuple[str | int, ...] = ()) -> _Fuzzy:
    return _Fuzzy(text, tuple(Word(w) for w in fold_words(text)), None, what, key)


def _positive_terms(node: Node) -> list[Term]:
    """The terms that find posts: not the ones under NOT, which only reject."""
    match node:
        case Term():
            return [node]
        case Field() | Not():
            return []
        case And() | Or():
            return [t for child in node.children for t in _positive_terms(child)]
        case Near():
            return _positive_terms(node.left) + _positive_terms(node.right)
    raise TypeError(node)  # pragma: no cover


def _loose_word(search: Search, item: _Fuzzy) -> tuple[str, list[tuple[str, float]]] | None:
    """The word of a fuzzy term that matches other common words, and those words (with their
    score), when the whole term can be made of common words; else None.

    The matcher scores a phrase word by word and takes the weakest word, so 'Bibliotheek
    Eemland' at fuzzy 70 matches 'bibliotheek England': every word is common or close to one.
    """
    lexicon = _lexicon()
    found: list[tuple[str, list[tuple[str, float]]]] = []
    for word in item.words:
        if word.prefix or not word.text.isalnum():
            continue  # wildcards and emoji are not fuzzy
        if item.typos is None and len(word.text) <= SHORT_TERM:
            if word.text not in lexicon.common_set:
                return None  # an exact word no common word can stand in for
            continue
        near = lexicon.near(word.text, search.fuzzy, item.typos)
        if not near and word.text not in lexicon.common_set:
            return None  # the whole term can never be made of common words
        counted = [(c, s) for c, s in near if _another_word(word.text, c)]
        if counted:
            found.append((word.text, counted))
    loose = [
        (word, counted)
        for word, counted in found
        if len(counted) >= LOOSE_COMMON or _zipf(word) < DROWNING_ZIPF
    ]
    return max(loose, key=lambda pair: len(pair[1])) if loose else None


def _loose_message(
    search: Search, item: _Fuzzy, word: str, counted: list[tuple[str, float]], where: list[str]
) -> str:
    lexicon = _lexicon()
    counted = sorted(counted, key=lambda cs: -lexicon.common_zipf(cs[0]))
    examples = ", ".join(f"'{c}'" for c, _ in counted[:EXAMPLES])
    more = ", …" if len(counted) > EXAMPLES else ""
    written = _written_word(item.written, word)
    if len(where) == 1 and len(item.words) == 1 and item.offset is not None:
        inside = ""  # "'Eemnes' in the query" would only say it again
    else:
        inside = f" (in {', '.join(where)})"
    amount = "a common word" if len(counted) == 1 else f"{len(counted):,} common words"
    if item.typos is None:
        raise_to = min(100, math.floor(max(s for _, s in counted)) + 1)
        text = (
            f"fuzzy {search.fuzzy} makes '{written}'{inside} match {amount}: {examples}{more}; "
            f"raise the search's fuzzy to {raise_to}"
        )
        if item.offset is not None and not _others(word, 1):
            text += f" or write {written}~1"
        elif item.key and not _others(word, 1):
            text += f" or move the term to the query as {written}~1"
        return text
    safe = max(n for n in range(item.typos) if n == 0 or not _others(word, n))
    fix = f"write {written}~{safe}" if safe else f"drop the ~{item.typos} (exact)"
    return (
        f"~{item.typos} lets '{written}'{inside} ({len(word)} letters) match {amount}: "
        f"{examples}{more}; {fix}"
    )


def _others(word: str, typos: int) -> list[str]:
    """The common words, other than its own forms, within `typos` edits of `word`."""
    return [c for c, _ in _lexicon().near(word, 0, typos) if _another_word(word, c)]


def _another_word(word: str, candidate: str) -> bool:
    """Whether a common word the term matches is another word, not the term's own inflection
    ('Amersfoortse', 'bibliotheken') or a misspelling of it ('libary')."""
    if candidate == word:
        return False
    shared = len(_common_prefix(word, candidate))
    if shared >= max(SHORT_TERM + 1, len(word) - 2):
        return False
    return _zipf(candidate) >= _zipf(word) - MISSPELLING_GAP


def _zipf(word: str) -> float:
    """How common a word is in the fuzzy check's languages."""
    return _lexicon().common_zipf(word)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _written_word(written: str, folded: str) -> str:
    """The word as the user wrote it ('Eemland'), found back in the term."""
    for part in written.replace('"', " ").split():
        core = part.split("~")[0].lstrip("#")
        if fold_words(core) == [folded]:
            return core
    return folded


# --- shared ------------------------------------------------------------------------------------


def _tree(search: Search) -> Node | None:
    if search.query is None or not search.query.strip():
        return None
    try:
        return parse(search.query)
    except QuerySyntaxError:
        return None  # the loader reports it; a valid config never gets here


def _conjuncts(tree: Node | None) -> list[Node]:
    if tree is None:
        return []
    return list(tree.children) if isinstance(tree, And) else [tree]


def _term(text: str) -> Term:
    """A name, alias or plain term as the query language would read it."""
    words = tuple(Word(w) for w in fold_words(text))
    written = f'"{text}"' if len(words) > 1 else text
    return Term(written, words, phrase=len(words) > 1)


def _text(search: Search, node: Node) -> str:
    query = search.query or ""
    text = " ".join(query[node.start : node.end].split())
    return text if len(text) <= 60 else text[:57] + "…"


class _Lexicon:
    """Word frequencies from wordfreq, and the common words fuzzy terms are checked against."""

    def __init__(self) -> None:
        import wordfreq

        self._wordfreq = wordfreq
        self.available = frozenset(wordfreq.available_languages())
        self._tops: dict[str, list[str]] = {}
        self._ranks: dict[str, dict[str, int]] = {}
        common: dict[str, None] = {}
        for lang in FUZZY_LANGUAGES:
            for word in self.top(lang):
                if word.isalpha() and word.isascii():
                    common.setdefault(word, None)
        self.common = list(common)
        self.common_set = frozenset(common)
        self._keys = [key(w) for w in self.common]
        self._near: dict[tuple[str, int, int | None], list[tuple[str, float]]] = {}

    def top(self, lang: str) -> list[str]:
        """The language's most common words, folded (accents gone), most common first."""
        if lang not in self._tops:
            words = self._wordfreq.top_n_list(lang, COMMON_WORDS)
            folded = [w if w.isascii() else strip_accents(w) for w in words]
            self._tops[lang] = folded
            ranks: dict[str, int] = {}
            for i, word in enumerate(folded, start=1):
                ranks.setdefault(word, i)
            self._ranks[lang] = ranks
        return self._tops[lang]

    def rank(self, word: str, lang: str) -> int | None:
        self.top(lang)
        return self._ranks[lang].get(word)

    def zipf(self, word: str, lang: str) -> float:
        return float(self._wordfreq.zipf_frequency(word, lang))

    def common_zipf(self, word: str) -> float:
        return max(self.zipf(word, lang) for lang in FUZZY_LANGUAGES)

    def prefixed(self, prefix: str, lang: str) -> list[str]:
        """The common words that start with `prefix`, most common first."""
        return [w for w in self.top(lang) if w.startswith(prefix)]

    def prefix_zipf(self, prefix: str, lang: str) -> float:
        """How common the words starting with `prefix` are together, as if they were one word."""
        total = sum(self._wordfreq.word_frequency(w, lang) for w in self.prefixed(prefix, lang))
        return math.log10(total * 1e9) if total > 0 else 0.0

    def near(self, word: str, fuzzy: int, typos: int | None) -> list[tuple[str, float]]:
        """Common words the matcher would take for `word`: a ratio of at least `fuzzy` (typos
        None), or at most `typos` edits (the score is then the edit distance). Compared as the
        matcher compares ('ij' and 'y' are one letter), shown as the word list has them."""
        cache_key = (word, fuzzy, typos)
        if cache_key not in self._near:
            scorer: Any = fuzz.ratio if typos is None else Levenshtein.distance
            cutoff = fuzzy if typos is None else typos
            found = process.extract(
                key(word), self._keys, scorer=scorer, score_cutoff=cutoff, limit=None
            )
            self._near[cache_key] = [
                (self.common[i], float(score)) for _, score, i in found if self.common[i] != word
            ]
        return self._near[cache_key]


@cache
def _lexicon() -> _Lexicon:
    return _Lexicon()


class _Locator:
    """File, line and column of a part of a search, from the search's own table."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._files: dict[Path, tuple[KeyLines, list[object]] | None] = {}

    def warning(
        self,
        search: Search,
        message: str,
        table_key: tuple[str | int, ...] = (),
        offset: int | None = None,
    ) -> Warning:
        """A warning at the search's `id` line, or at `table_key` in its table (`("terms",
        2)`), or at `offset` into its query (line and column)."""
        file, line = self.config.search_where.get(search.id, (self.config.path, None))
        column: int | None = None
        loaded = self._load(file)
        if loaded is not None and search.id in loaded[1]:
            lines, ids = loaded
            i = ids.index(search.id)
            if offset is not None and search.query is not None:
                key_line = lines.line_of(("searches", i, "query"))
                at, column = query_position(file, key_line, search.query, offset)
                line = at or line
            elif table_key:
                line = lines.line_of(("searches", i, *table_key)) or line
        return Warning(file, line, search.id, message, column)

    def _load(self, file: Path) -> tuple[KeyLines, list[object]] | None:
        if file not in self._files:
            try:
                text = file.read_text(encoding="utf-8")
                data = tomllib.loads(text)
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                self._files[file] = None
            else:
                searches = data.get("searches", [])
                ids = [s.get("id") if isinstance(s, dict) else None for s in searches]
                self._files[file] = (KeyLines(text), ids)
        return self._files[file]
