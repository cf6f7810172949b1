"""Running a parsed query on a post: where each term occurs, and whether the whole query holds.

A post's text is cut once into `Tokens`: folded words (accents and case gone, Dutch 'ij' = 'y',
''s-' prefixes dropped) with their positions, which of them were #hashtags, the @mentions, and the
emoji (which sit between words without counting as one, so "bieb 😡 dicht" is still the phrase
"bieb dicht"). A term matches:

* exactly, as a word sequence, or as one joined word ('#BibliotheekEemland' for the phrase);
* with a wildcard, as a word starting with the prefix (`bieb*`: 'bieb', 'biebs', 'bieblokaal');
* with `~n`, within n edits (Levenshtein) of the phrase as a whole;
* otherwise fuzzily at the search's threshold (rapidfuzz ratio, word by word, the weakest word
  counts), except that terms of four letters or fewer must match exactly.

`Evaluator.run` walks the tree: AND needs every child, OR any, NOT none, NEAR/ONEAR an occurrence
of each side within n words. Each node yields its `Hit`s (the occurrences that made it true) so
NEAR can measure distances and the evidence can say which words matched. Occurrences that fell
just short (a fuzzy score within `NEAR_MISS_MARGIN` of the threshold, one edit too many, one
NEAR too far) are kept as near-misses, so thresholds are tuned with evidence.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from listener.post import Post
from listener.query.syntax import (
    _APOSTROPHE_S,
    And,
    Field,
    Near,
    Node,
    Not,
    Or,
    Term,
    emoji_key,
    is_emoji,
    key,
    terms_of,
)
from listener.text import spaced_words, strip_accents

SHORT_TERM = 4  # folded terms this short or shorter must match exactly
# A word standing for a phrase written as one word ('#BibliotheekEemlnd') has at least this
# share of its letters: 'bibliotheek' is close to 'bibliotheekede' but stands for no phrase.
JOINED_SHARE = 0.9
# An evaluator with this many fuzzy words or more remembers which of them each post word is
# close to (up to CLOSE_REMEMBERED post words); with fewer, one `cdist` a post is faster.
CLOSE_REMEMBERED_FROM = 200
CLOSE_REMEMBERED = 20_000
NEAR_MISS_MARGIN = 12  # fuzzy scores this far under the threshold are near-misses
PREFIX_KEY = 2  # wildcards are indexed by their first letters ('ij' folds to 'y', so 2, not 3)
_TOKEN = re.compile(r"([#@]?)([0-9a-z]+)|([^\x00-\x7f])")  # words, and what may be emoji
_LINK = re.compile(r"https?://", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_][\w.\-]*(?:@[\w\-]+(?:\.[\w\-]+)+)?)")


@dataclass(frozen=True, slots=True)
class Tokens:
    """A post's text cut into words once, for every search and every term."""

    raw: str
    words: tuple[str, ...]  # compare keys: folded, 'ij' → 'y'
    shown: tuple[str, ...]  # folded, as the evidence shows them
    hashtags: frozenset[int]  # indexes of words written as #hashtags
    emoji: dict[str, list[int]]  # emoji → the index of the word after each occurrence
    mentions: tuple[str, ...]  # @handles as written, without '@'
    at: dict[str, list[int]]  # word → its indexes

    @classmethod
    def of(cls, raw: str) -> Tokens:
        text = _APOSTROPHE_S.sub("", raw) if "'" in raw or "’" in raw else raw
        text = text.lower() if text.isascii() else strip_accents(text)
        words, shown, hashtags, emoji = _read(text)
        at: dict[str, list[int]] = {}
        for i, word in enumerate(words):
            at.setdefault(word, []).append(i)
        mentions = tuple(m.rstrip(".") for m in _MENTION.findall(raw))
        return cls(raw, tuple(words), tuple(shown), frozenset(hashtags), emoji, mentions, at)


def reachable(size: int, share: float) -> tuple[int, int]:
    """The shortest and longest word that can be at ratio ≥ `share` (0–1) to a word of `size`
    letters: a ratio is at most 2·min(m, n) / (m + n)."""
    if share <= 0:
        return 0, 1 << 30
    return (
        math.ceil(share * size / (2 - share) - 1e-9),
        math.floor(size * (2 - share) / share + 1e-9),
    )


def _read(text: str) -> tuple[list[str], list[str], set[int], dict[str, list[int]]]:
    """`_read_each` of a lower-cased, accent-stripped text; of one in plain ASCII without a
    '#' (most posts) its runs of letters and digits in one pass: then it has no emoji and no
    hashtags, and 'ij' never spans two words."""
    if "#" in text or not text.isascii():
        return _read_each(text)
    spaced = spaced_words(text)
    return key(spaced).split(), spaced.split(), set(), {}


def _read_each(text: str) -> tuple[list[str], list[str], set[int], dict[str, list[int]]]:
    """The compare keys of a text's words, the words as shown, the indexes of the words
    written as #hashtags, and each emoji with the index of the word after each occurrence."""
    words: list[str] = []
    shown: list[str] = []
    hashtags: set[int] = set()
    emoji: dict[str, list[int]] = {}
    for m in _TOKEN.finditer(text):
        mark, word, other = m.groups()
        if word:
            if mark == "#" and (m.start() == 0 or not text[m.start() - 1].isalnum()):
                hashtags.add(len(words))
            shown.append(word)
            words.append(key(word))
        elif other and is_emoji(other) and emoji_key(other):
            emoji.setdefault(other, []).append(len(words))
    return words, shown, hashtags, emoji


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence: words [start, end) of the post, how they were written, how well."""

    term: Term
    start: int
    end: int
    written: str
    score: float  # 100 = exact
    how: str = "exact"  # exact | fuzzy 91 | 1 typo | prefix | hashtag | mention


@dataclass(slots=True)
class Outcome:
    """What one node made of the post."""

    holds: bool
    hits: list[Hit] = field(default_factory=list)


@dataclass(slots=True)
class Run:
    """The result of a whole query on one post."""

    holds: bool
    hits: list[Hit]
    near_misses: list[str]
    rejected: dict[Term, str]  # terms found, but only in another sense: why


# A check on an exact occurrence that the matcher knows more about (another sense of 'bieb',
# an acronym not written in capitals): the reason to reject it, or None.
Check = Callable[[Term, Tokens], str | None]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A term prepared once: its compare keys and how it may match."""

    term: Term
    keys: tuple[str, ...]
    prefixes: tuple[bool, ...]
    joined: str  # the phrase as one word: '#BibliotheekEemland'
    mode: str  # emoji | mention | exact | typos | fuzzy
    label: str  # how near-misses name it


@dataclass(frozen=True, slots=True)
class Candidates:
    """For one post: the terms that may match (the presearch), and the post's words close to
    each fuzzy or typo-tolerant term word (computed in one rapidfuzz `cdist` call each)."""

    possible: frozenset[int]  # ids of the Terms that may match
    close: dict[str, dict[str, float]]  # fuzzy term word → post word → ratio
    edits: dict[str, dict[str, int]]  # typo term word → post word → edits


class Evaluator:
    """Runs query trees on posts for one search (its fuzzy threshold and its checks).

    Built with every tree the search will run, it indexes their terms, as Lucene Monitor's
    presearcher does: `candidates` looks the post's words up in that index (exact words, the
    first letters of wildcards, and for fuzzy terms a batched rapidfuzz comparison), keeps of
    the terms found there those whose every word the post has (`_may_occur`: 'taalhuis
    amsterdam' is looked up by 'amsterdam', and goes when the post has no 'taalhuis'), and `run`
    skips any branch of a tree whose terms cannot match, which is most of them for most posts.
    """

    def __init__(
        self,
        fuzzy: float,
        check: Check | None = None,
        describe: Callable[[Term], str] = lambda term: term.written,
        trees: Iterable[Node] = (),
        near_misses: bool = True,
    ) -> None:
        """`describe` names a term in near-misses ("name 'Bibliotheek Eemland'"); without
        `near_misses`, words just under the fuzzy threshold are not looked at."""
        self.fuzzy = fuzzy
        self.floor = fuzzy - NEAR_MISS_MARGIN if near_misses else fuzzy
        self.check = check
        self.describe = describe
        self.compiled: dict[int, Compiled] = {}
        self.by_word: dict[str, set[int]] = {}
        self.by_prefix: dict[str, set[int]] = {}
        self.by_emoji: dict[str, set[int]] = {}
        self.mention_terms: set[int] = set()
        self.fuzzy_words: dict[str, set[int]] = {}
        # the fuzzy words `_close` knows, by length, and their lengths
        self._by_length: tuple[list[str], list[int]] = ([], [])
        self._close: dict[str, tuple[tuple[str, float], ...]] = {}  # post word → close ones
        self.typo_words: dict[str, set[int]] = {}
        self.max_typos = 0
        self.needs: dict[int, frozenset[int] | None] = {}
        self.shared: dict[str, int] = {}  # folded word → how many terms have it
        trees = list(trees)
        for term in (t for tree in trees for t in terms_of(tree)):
            for word in {key(w.text) for w in term.words}:
                self.shared[word] = self.shared.get(word, 0) + 1
        for tree in trees:
            self.add(tree)

    def add(self, tree: Node) -> None:
        """Index a tree's terms and note, for each node, which terms it cannot hold without."""
        for term in terms_of(tree):
            if id(term) not in self.compiled:
                self._index(self._compile(term))
        _needs(tree, self.needs)

    def _rarest(self, words: Iterable[str]) -> str:
        """The word fewest of the indexed terms have (the longest of those): what a term is
        looked up by, so 'bibliotheek Leusden' is a candidate when the post has 'leusden', not
        whenever it has 'bibliotheek'."""
        return min(words, key=lambda w: (self.shared.get(w, 0), -len(w), w))

    def _compile(self, term: Term) -> Compiled:
        keys = tuple(key(w.text) for w in term.words)
        if term.emoji:
            mode = "emoji"
        elif term.mention:
            mode = "mention"
        elif term.wildcard or term.typos == 0:
            mode = "exact"
        elif term.typos is not None:
            mode = "typos"
        elif len("".join(keys)) <= SHORT_TERM:
            mode = "exact"
        else:
            mode = "fuzzy"
        compiled = Compiled(
            term, keys, tuple(w.prefix for w in term.words), "".join(keys), mode,
            self.describe(term),
        )  # fmt: skip
        self.compiled[id(term)] = compiled
        return compiled

    def _index(self, c: Compiled) -> None:
        i = id(c.term)
        if c.mode == "emoji":
            self.by_emoji.setdefault(c.keys[0], set()).add(i)
            return
        if c.mode == "mention":
            self.mention_terms.add(i)
            return
        # An exact occurrence has every word of the term: index the rarest.
        whole = [k for k, p in zip(c.keys, c.prefixes, strict=True) if not p]
        if whole:
            self.by_word.setdefault(self._rarest(whole), set()).add(i)
        else:
            self.by_prefix.setdefault(max(c.keys, key=len)[:PREFIX_KEY], set()).add(i)
        if len(c.keys) > 1 and not c.term.wildcard:
            self.by_word.setdefault(c.joined, set()).add(i)
        if c.mode == "typos":
            assert c.term.typos is not None
            self.max_typos = max(self.max_typos, c.term.typos)
            for word in {c.keys[0], c.joined}:
                self.typo_words.setdefault(word, set()).add(i)
        elif c.mode == "fuzzy":
            # Every long word of the phrase must be close to a word of the post (its short
            # words must be there as written), or the phrase written as one word must be: all
            # of them are compared with the post's words, and the rarest long word and the
            # joined form make the term a candidate.
            long = [word for word in c.keys if len(word) > SHORT_TERM]
            for word in {*long, c.joined}:
                if len(word) > SHORT_TERM:
                    self.fuzzy_words.setdefault(word, set())
            for word in {self._rarest(long), c.joined} if long else {c.joined}:
                if len(word) > SHORT_TERM:
                    self.fuzzy_words[word].add(i)

    def candidates(self, tokens: Tokens, presearch: bool = True) -> Candidates:
        """The presearch: which terms may match this post, and the close words of each.
        With `presearch=False` every term counts as possible (the reference path for tests)."""
        possible: set[int] = set() if presearch else set(self.compiled)
        for word in tokens.at:
            found = self.by_word.get(word)
            if found:
                possible |= found
            if self.by_prefix:
                found = self.by_prefix.get(word[:PREFIX_KEY])
                if found:
                    possible |= found
        for emoji in tokens.emoji if self.by_emoji else ():
            possible |= self.by_emoji.get(emoji, set())
        if tokens.mentions:
            possible |= self.mention_terms
        close: dict[str, dict[str, float]] = {}
        edits: dict[str, dict[str, int]] = {}
        words = list(tokens.at)
        if len(self.fuzzy_words) >= CLOSE_REMEMBERED_FROM and words:
            for word in words:  # many terms: what each post word is close to, remembered
                for target, score in self._close_to(word):
                    close.setdefault(target, {})[word] = score
                    possible |= self.fuzzy_words[target]
        elif self.fuzzy_words and words:  # a few: all compared at once
            wanted = list(self.fuzzy_words)
            matrix = process.cdist(
                wanted, words, scorer=fuzz.ratio, score_cutoff=self.floor, workers=1
            )
            for row, column in zip(*numpy.nonzero(matrix), strict=True):
                close.setdefault(wanted[row], {})[words[column]] = float(matrix[row, column])
                possible |= self.fuzzy_words[wanted[row]]
        if self.typo_words and words:
            wanted = list(self.typo_words)
            matrix = process.cdist(
                wanted, words, scorer=Levenshtein.distance, score_cutoff=self.max_typos + 1,
                workers=1,
            )  # fmt: skip
            for row, column in zip(*numpy.nonzero(matrix <= self.max_typos + 1), strict=True):
                edits.setdefault(wanted[row], {})[words[column]] = int(matrix[row, column])
                possible |= self.typo_words[wanted[row]]
        if presearch and possible:
            at, compiled = tokens.at, self.compiled
            possible = {i for i in possible if _may_occur(compiled[i], at, close)}
        return Candidates(frozenset(possible), close, edits)

    def _close_to(self, word: str) -> tuple[tuple[str, float], ...]:
        """The fuzzy words of the terms that a post word is close to (at the floor), with their
        ratios: compared once, then remembered (CLOSE_REMEMBERED words, then forgotten all at
        once), as a post's words are mostly words seen before."""
        found = self._close.get(word)
        if found is None:
            ordered, lengths = self._by_length
            if len(ordered) != len(self.fuzzy_words):  # terms added since: compare again
                self._close.clear()
                ordered = sorted(self.fuzzy_words, key=len)
                lengths = [len(w) for w in ordered]
                self._by_length = (ordered, lengths)  # one assignment: the daemon's threads
            # only the words of lengths that can be close enough
            shortest, longest = reachable(len(word), (self.floor - 1e-3) / 100)
            wanted = ordered[bisect_left(lengths, shortest) : bisect_right(lengths, longest)]
            matrix = process.cdist(
                wanted, [word], scorer=fuzz.ratio, score_cutoff=self.floor, workers=1
            )  # one column; float32 scores, as one matrix of all the post's words would have
            found = tuple((wanted[row], float(matrix[row, 0])) for row in numpy.nonzero(matrix)[0])
            if len(self._close) >= CLOSE_REMEMBERED:
                self._close.clear()
            self._close[word] = found
        return found

    def run(
        self,
        node: Node,
        post: Post,
        tokens: Tokens,
        fetched_by: str | None = None,
        candidates: Candidates | None = None,
    ) -> Run:
        if id(node) not in self.needs:
            self.add(node)
        if candidates is None:
            candidates = self.candidates(tokens)
        state = _State(self, post, tokens, fetched_by, candidates)
        outcome = state.node(node)
        return Run(outcome.holds, outcome.hits, state.near_misses, state.rejected)

    def cannot_hold(self, node: Node, candidates: Candidates) -> bool:
        """True when none of the terms the node needs may match the post."""
        needed = self.needs.get(id(node))
        return needed is not None and needed.isdisjoint(candidates.possible)

    def term_hits(
        self, term: Term, tokens: Tokens, cands: Candidates
    ) -> tuple[list[Hit], list[str]]:
        """Every occurrence of a term, and near-misses when there is none."""
        c = self.compiled[id(term)]
        if id(term) not in cands.possible:
            return [], []
        if c.mode == "emoji":
            return _emoji_hits(term, tokens), []
        if c.mode == "mention":
            return _mention_hits(term, tokens), []
        exact = _exact_hits(c, tokens)
        if exact or c.mode == "exact":
            return exact, []
        if c.mode == "typos":
            assert term.typos is not None
            return _typo_hits(c, tokens, term.typos, cands.edits)
        return _fuzzy_hits(c, tokens, self.fuzzy, cands.close)


def _needs(node: Node, needs: dict[int, frozenset[int] | None]) -> frozenset[int] | None:
    """The terms a node cannot hold without (at least one of them must be in the post), or
    None when it can hold on no term at all (a NOT, a field filter)."""
    result: frozenset[int] | None
    match node:
        case Term():
            result = frozenset([id(node)])
        case Field() | Not():
            if isinstance(node, Not):
                _needs(node.child, needs)
            result = None
        case Or():
            parts = [_needs(child, needs) for child in node.children]
            known = [p for p in parts if p is not None]
            result = frozenset().union(*known) if len(known) == len(parts) else None
        case And():
            parts = [_needs(child, needs) for child in node.children]
            known = [p for p in parts if p is not None]
            result = min(known, key=len) if known else None
        case Near():
            parts = [_needs(node.left, needs), _needs(node.right, needs)]
            known = [p for p in parts if p is not None]
            result = min(known, key=len) if known else None
    needs[id(node)] = result
    return result


@dataclass(slots=True)
class _State:
    evaluator: Evaluator
    post: Post
    tokens: Tokens
    fetched_by: str | None
    candidates: Candidates
    near_misses: list[str] = field(default_factory=list)
    rejected: dict[Term, str] = field(default_factory=dict)
    seen: dict[int, list[Hit]] = field(default_factory=dict)

    def node(self, node: Node) -> Outcome:
        if self.evaluator.cannot_hold(node, self.candidates):
            return Outcome(False)
        match node:
            case Term():
                hits = self.term(node)
                return Outcome(bool(hits), hits)
            case Field():
                return Outcome(field_holds(node, self.post, self.fetched_by))
            case Not():
                return Outcome(not self.node(node.child).holds)
            case And():
                found: list[Hit] = []
                for child in node.children:
                    outcome = self.node(child)
                    if not outcome.holds:
                        return Outcome(False)
                    found += outcome.hits
                return Outcome(True, found)
            case Or():
                outcomes = [self.node(child) for child in node.children]
                return Outcome(
                    any(o.holds for o in outcomes), [h for o in outcomes if o.holds for h in o.hits]
                )
            case Near():
                return self.near(node)
        raise TypeError(node)  # pragma: no cover

    def term(self, term: Term) -> list[Hit]:
        cached = self.seen.get(id(term))
        if cached is not None:
            return cached
        hits, misses = self.evaluator.term_hits(term, self.tokens, self.candidates)
        check = self.evaluator.check
        if hits and check is not None:
            reason = check(term, self.tokens)
            if reason is not None:
                self.rejected[term] = reason
                hits = []
        self.near_misses += misses
        self.seen[id(term)] = hits
        return hits

    def near(self, node: Near) -> Outcome:
        """NEAR/n: an occurrence of each side with at most n words between (ONEAR: left first).
        With NOT on one side: occurrences of the other side with none of it within n words."""
        if isinstance(node.right, Not) or isinstance(node.left, Not):
            negated, kept = (
                (node.right, node.left) if isinstance(node.right, Not) else (node.left, node.right)
            )
            assert isinstance(negated, Not)
            base = self.node(kept)
            if not base.holds:
                return Outcome(False)
            avoid = self.node(negated.child).hits
            left_first = negated is node.right
            kept_hits = [
                h
                for h in base.hits
                if not any(
                    _within(h, a, node.distance, node.ordered)
                    if left_first
                    else _within(a, h, node.distance, node.ordered)
                    for a in avoid
                )
            ]
            return Outcome(bool(kept_hits), kept_hits)
        left, right = self.node(node.left), self.node(node.right)
        if not (left.holds and right.holds):
            return Outcome(False)
        if not left.hits or not right.hits:  # a side without positions (NOT inside AND)
            return Outcome(True, left.hits + right.hits)
        hits: list[Hit] = []
        closest: int | None = None
        for a in left.hits:
            for b in right.hits:
                if _within(a, b, node.distance, node.ordered):
                    hits += [x for x in (a, b) if x not in hits]
                else:
                    gap = _gap(a, b, node.ordered)
                    if gap is not None and (closest is None or gap < closest):
                        closest = gap
        if not hits and closest is not None and closest <= node.distance + 3:
            op = "ONEAR" if node.ordered else "NEAR"
            self.near_misses.append(
                f"'{left.hits[0].written}' and '{right.hits[0].written}' are {closest} words "
                f"apart ({op}/{node.distance} allows {node.distance})"
            )
        return Outcome(bool(hits), hits)


def _gap(a: Hit, b: Hit, ordered: bool) -> int | None:
    """Words between two occurrences (None when ONEAR's order is wrong or they overlap)."""
    if a.end <= b.start:
        return b.start - a.end
    if ordered:
        return None
    if b.end <= a.start:
        return a.start - b.end
    return None


def _within(a: Hit, b: Hit, distance: int, ordered: bool) -> bool:
    gap = _gap(a, b, ordered)
    return gap is not None and gap <= distance


def field_holds(node: Field, post: Post, fetched_by: str | None = None) -> bool:
    """lang:, source:, author: and has: filters. A post of unknown language passes lang:."""
    value = node.value
    if node.name == "lang":
        if not post.lang:
            return True
        return post.lang.lower().split("-")[0] == value.split("-")[0]
    if node.name == "source":
        return value in (post.source.lower(), (fetched_by or "").lower())
    if node.name == "author":
        handle = (post.author.handle or "") if post.author else ""
        wanted = value.lstrip("@").rstrip(".")
        have = handle.lstrip("@").rstrip(".").lower()
        if not have:
            return False
        return have == wanted or re.split(r"[@.]", have, maxsplit=1)[0] == wanted
    if node.name == "has":
        if value == "geo":
            return post.geo is not None
        if value == "location":
            return bool(post.author and post.author.location)
        if value == "link":
            return bool(_LINK.search(post.text))
        if value == "hashtag":
            return "#" in post.text and bool(Tokens.of(post.text).hashtags)
        if value == "mention":
            return bool(_MENTION.search(post.text))
    return False  # pragma: no cover - the parser only lets known fields through


# --- occurrences of one term ---------------------------------------------------------------------


def _shown(tokens: Tokens, start: int, end: int) -> str:
    return " ".join(tokens.shown[start:end])


def _may_occur(c: Compiled, at: dict[str, list[int]], close: dict[str, dict[str, float]]) -> bool:
    """False only when `Evaluator.term_hits` would find neither an occurrence of the term nor a
    near-miss: an exact term needs every word in the post (`_exact_hits`), a fuzzy one every
    long word close to a post word and every short one there (`_fuzzy_hits`, after the exact
    look); either may instead be the phrase written as one word. A term with a wildcard, `~n`
    typos, an emoji or a mention is always kept."""
    keys = c.keys
    if c.mode not in ("exact", "fuzzy") or any(c.prefixes):
        return True
    if len(keys) > 1 and (c.joined in at or c.joined in close):
        return True
    if c.mode == "exact":
        return all(k in at for k in keys)
    return all(k in at if len(k) <= SHORT_TERM else k in close for k in keys)


def _exact_hits(c: Compiled, tokens: Tokens) -> list[Hit]:
    term, keys, prefixes = c.term, c.keys, c.prefixes
    hits: list[Hit] = []
    first, size = keys[0], len(keys)
    starts: Iterable[int]
    if prefixes[0]:
        starts = [i for i, w in enumerate(tokens.words) if w.startswith(first)]
    else:
        starts = tokens.at.get(first, ())
    for i in starts:
        if i + size > len(tokens.words):
            continue
        if size > 1 and not all(
            tokens.words[i + j].startswith(k) if p else tokens.words[i + j] == k
            for j, (k, p) in enumerate(zip(keys, prefixes, strict=True))
        ):
            continue
        if term.hashtag and i not in tokens.hashtags:
            continue
        how = "prefix" if term.wildcard else "exact"
        hits.append(Hit(term, i, i + size, _shown(tokens, i, i + size), 100.0, how))
    if size > 1 and not term.wildcard and not term.hashtag:
        for i in tokens.at.get(c.joined, ()):  # '#BibliotheekEemland' for the phrase
            hits.append(Hit(term, i, i + 1, tokens.shown[i], 100.0))
    return hits


def _emoji_hits(term: Term, tokens: Tokens) -> list[Hit]:
    wanted = [w.text for w in term.words]
    if not all(w in tokens.emoji for w in wanted):
        return []
    # An emoji sits before the word at its index; a run of emoji shares one index.
    positions = tokens.emoji[wanted[0]]
    return [Hit(term, p, p, "".join(wanted), 100.0) for p in positions]


def _mention_hits(term: Term, tokens: Tokens) -> list[Hit]:
    wanted = term.words[0].text
    hits = []
    for written in tokens.mentions:
        handle = written.lower()
        local = re.split(r"[@.]", handle, maxsplit=1)[0]
        if wanted in (handle, local):
            at = tokens.at.get(key(strip_accents(local)), [0])[0]
            hits.append(Hit(term, at, at + 1, "@" + written, 100.0, "mention"))
    return hits


def _typo_hits(
    c: Compiled, tokens: Tokens, typos: int, edits: dict[str, dict[str, int]]
) -> tuple[list[Hit], list[str]]:
    """Within `typos` edits of the phrase as a whole (word windows, or one joined word)."""
    term, size = c.term, len(c.keys)
    phrase = " ".join(c.keys)
    hits: list[Hit] = []
    best_miss: str | None = None
    first = edits.get(c.keys[0], {})
    for word in first:
        for i in tokens.at.get(word, ()):
            if i + size > len(tokens.words):
                continue
            window = " ".join(tokens.words[i : i + size])
            distance = Levenshtein.distance(phrase, window, score_cutoff=typos + 1)
            if distance <= typos:
                if term.hashtag and i not in tokens.hashtags:
                    continue
                shown = _shown(tokens, i, i + size)
                hits.append(Hit(term, i, i + size, shown, 100.0 - distance, _typos(distance)))
            elif distance == typos + 1 and best_miss is None:
                best_miss = _shown(tokens, i, i + size)
    if size > 1:
        covered = {i for h in hits for i in range(h.start, h.end)}
        for word, distance in edits.get(c.joined, {}).items():
            for i in tokens.at[word] if distance <= typos else ():
                if i in covered:
                    continue
                hits.append(
                    Hit(term, i, i + 1, tokens.shown[i], 100.0 - distance, _typos(distance))
                )
    misses = []
    if not hits and best_miss is not None:
        misses.append(f"'{best_miss}' is like {c.label} ({_typos(typos + 1)}, allows {typos})")
    return hits, misses


def _typos(n: int) -> str:
    return f"{n} typo" if n == 1 else f"{n} typos"


def _fuzzy_hits(
    c: Compiled, tokens: Tokens, threshold: float, close_words: dict[str, dict[str, float]]
) -> tuple[list[Hit], list[str]]:
    """Word by word at the search's threshold, the weakest word counting: a shared generic
    word ('bibliotheek') cannot carry a different name ('Eemnes' for 'Eemland')."""
    term, keys = c.term, c.keys
    close: list[dict[str, float]] = [
        ({k: 100.0} if k in tokens.at else {}) if len(k) <= SHORT_TERM else close_words.get(k, {})
        for k in keys
    ]
    hits: list[Hit] = []
    best: tuple[float, str] | None = None
    size = len(keys)
    if all(close):
        first = close[0]
        for word in first:
            for i in tokens.at[word]:
                if i + size > len(tokens.words):
                    continue
                scores = [close[j].get(tokens.words[i + j]) for j in range(size)]
                if any(s is None for s in scores):
                    continue
                score = min(s for s in scores if s is not None)
                written = _shown(tokens, i, i + size)
                if score >= threshold:
                    if not (term.hashtag and i not in tokens.hashtags):
                        hits.append(Hit(term, i, i + size, written, score, f"fuzzy {score:.0f}"))
                elif best is None or score > best[0]:
                    best = (score, written)
    if size > 1:  # the phrase written as one word: '#BibliotheekEemlnd'
        covered = {i for h in hits for i in range(h.start, h.end)}
        for word, score in close_words.get(c.joined, {}).items():
            if len(word) < JOINED_SHARE * len(c.joined):
                continue
            for i in tokens.at[word]:
                if i in covered:
                    continue
                if score >= threshold:
                    hits.append(Hit(term, i, i + 1, tokens.shown[i], score, f"fuzzy {score:.0f}"))
                elif best is None or score > best[0]:
                    best = (score, tokens.shown[i])
    hits.sort(key=lambda h: h.start)
    misses = []
    if not hits and best is not None:
        misses.append(f"'{best[1]}' is like {c.label} (fuzzy {best[0]:.0f}, needs {threshold:g})")
    return hits, misses
