"""The presearcher: which saved searches a post can possibly match, in one pass over its text.

As Lucene Monitor does for stored queries, every search's terms (names, aliases, handles, branch
names, its `terms` and the terms of its `query`) are indexed once, here as the keys of one
Aho-Corasick automaton (pyahocorasick) over folded text. A post is folded once ('wéér' →
'weer', Dutch 'ij' → 'y', punctuation → spaces) and run through the automaton: the searches
whose keys occur in it are the candidates, and only they are verified by their `SearchMatcher`.
Most posts mention no search at all, and cost that one pass and nothing more.

The keys never miss a match (the fast path decides exactly as the reference path does, which
verifies every search; `tests/test_presearch.py` proves it), because each is a substring that
any matching text must contain:

- an exact term (and a wildcard's prefix, a short term, a handle): its longest word. A phrase
  written as one word ('#BibliotheekEemland') contains that word too.
- a fuzzy term (rapidfuzz `ratio` at the search's threshold t, word by word, the weakest word
  counting): a word of n letters and a post word at that ratio differ by at most
  d = ⌊2n(1 − t)/t⌋ insertions and deletions, so by at most d edits, and of d + 1 pieces of the
  word at least one is left whole (the pigeonhole principle): those pieces are its keys, for
  its longest word (every word must be close) and for the phrase joined into one word.
- a term with `~n` typos: n + 1 pieces of the phrase (each piece's longest part without a
  space) and of the joined phrase.
- an emoji: the emoji itself, found in the raw text.

A search that can hold without any term (a query of only NOT or field filters), or whose pieces
would be empty (a very low threshold), is a candidate for every post.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick
from rapidfuzz import fuzz

from listener.branch import GENERIC_NAME_WORDS
from listener.match import SearchMatcher, handle_local, normal_handle
from listener.query.evaluate import SHORT_TERM, Compiled
from listener.query.syntax import key
from listener.text import fold

#: How many distinct words `Presearcher.candidates` remembers before it starts over.
WORDS_REMEMBERED = 200_000


def folded(raw: str) -> str:
    """The text the automaton reads: folded as `fold` does, 'ij' as 'y' as the matcher's keys."""
    return key(fold(raw))


def pieces(word: str, count: int) -> list[str]:
    """`word` cut into `count` pieces as even as can be (empty when it has fewer letters)."""
    if count > len(word):
        return []
    size, extra = divmod(len(word), count)
    out, at = [], 0
    for i in range(count):
        step = size + (1 if i < extra else 0)
        out.append(word[at : at + step])
        at += step
    return out


def fuzzy_edits(length: int, threshold: float) -> int:
    """The most edits between a word of `length` letters and any word it matches at `ratio` ≥
    `threshold` (0–100): rapidfuzz's ratio is 1 − indel distance / (both lengths)."""
    share = threshold / 100
    if share <= 0:
        return length
    return int(2 * length * (1 - share) / share + 1e-9)


def _longest(words: Iterable[str]) -> str:
    return max(words, key=len, default="")


def _spaced_pieces(phrase: str, count: int) -> list[str] | None:
    """A key for each of `count` pieces of `phrase`: the piece's longest part without spaces."""
    cut = pieces(phrase, count)
    keys = [_longest(piece.split()) for piece in cut]
    return keys if cut and all(keys) else None


#: How a key found in the text is checked against the word around it, before its searches count:
WORD = "word"  # the word is one of the targets (the key, or the phrase joined into one word)
PREFIX = "prefix"  # the word starts with the target (a wildcard)
FUZZY = "fuzzy"  # the word is close to the target at the threshold (rapidfuzz ratio)
ANY = "any"  # no check (typo-tolerant phrases, whose edits may span words)


@dataclass(frozen=True, slots=True)
class Key:
    """A substring to find, and how the word around it must look for it to count."""

    text: str
    check: str  # WORD | PREFIX | FUZZY | ANY
    targets: tuple[str, ...] = ()
    threshold: float = 100.0

    def holds(self, word: str) -> bool:
        if self.check == WORD:
            return word in self.targets
        if self.check == PREFIX:
            return word.startswith(self.targets[0])
        if self.check == FUZZY:  # a hair under: rapidfuzz's cdist scores are float32
            return fuzz.ratio(self.targets[0], word) >= self.threshold - 1e-3
        return True


#: Which of a term's words to key it on: the rarest among all searches' terms (a word many
#: names share, like 'bibliotheek', makes every post that has it a candidate of them all), then
#: not a generic word of library names, then the longest.
Pick = Callable[[Iterable[str]], str]


def _longest_pick(words: Iterable[str]) -> str:
    return _longest(words)


def term_keys(c: Compiled, threshold: float, pick: Pick = _longest_pick) -> list[Key] | None:
    """Keys one of which is in the folded text of every post this term matches; None when
    there are none to rely on."""
    words = [w for w in c.keys if w]
    if c.mode == "emoji":
        return [Key(c.term.words[0].text, ANY)] if c.term.words else None
    if c.mode == "mention":
        word = _longest(key(w) for w in fold(c.term.words[0].text).split())
        return [Key(word, WORD, (word,))] if word else None
    if not words:
        return None
    joined = c.joined if len(words) > 1 and not c.term.wildcard else None
    whole = [k for k, prefix in zip(c.keys, c.prefixes, strict=True) if not prefix and k]
    if c.mode == "exact":
        if whole:
            word = pick(whole)
            return [Key(word, WORD, (word, joined) if joined else (word,))]
        prefix = _longest(words)
        return [Key(prefix, PREFIX, (prefix,))]
    if c.mode == "typos":
        typos = c.term.typos or 0
        found = _spaced_pieces(" ".join(words), typos + 1)
        joined_pieces = pieces(c.joined, typos + 1) if len(words) > 1 else []
        if found is None or (len(words) > 1 and not joined_pieces):
            return None
        return [Key(piece, ANY) for piece in (*found, *joined_pieces)]
    # fuzzy: every word must be close, so the pieces of one long word will do (a short word,
    # four letters or fewer, must be there exactly); the joined phrase has pieces of its own
    long = pick(w for w in words if len(w) > SHORT_TERM)
    keys: list[Key]
    if long:
        cut = pieces(long, fuzzy_edits(len(long), threshold) + 1)
        if not cut:
            return None
        keys = [Key(piece, FUZZY, (long,), threshold) for piece in cut]
    else:
        short = _longest(words)
        keys = [Key(short, WORD, (short,))]
    if joined:
        cut = pieces(joined, fuzzy_edits(len(joined), threshold) + 1)
        if not cut:
            return None
        keys += [Key(piece, FUZZY, (joined,), threshold) for piece in cut]
    return keys


def needed_terms(matcher: SearchMatcher) -> list[Compiled] | None:
    """The terms one of which each alternative of the search cannot hold without; None when an
    alternative can hold on no term at all."""
    evaluator = matcher.evaluator
    terms: list[Compiled] = []
    for node in matcher.alternatives:
        needed = evaluator.needs.get(id(node))
        if needed is None:
            return None
        terms += [evaluator.compiled[term_id] for term_id in needed]
    return terms


def rarest(matchers: Sequence[SearchMatcher]) -> Pick:
    """A `Pick` by how many of these searches' terms have each word (fewest first)."""
    counts: Counter[str] = Counter()
    distinct = {c.keys for matcher in matchers for c in needed_terms(matcher) or ()}
    for keys in distinct:  # the same name in several searches counts once
        counts.update({k for k in keys if k})

    def pick(words: Iterable[str]) -> str:
        return min(
            words,
            key=lambda word: (counts[word], word in GENERIC_NAME_WORDS, -len(word)),
            default="",
        )

    return pick


def search_keys(matcher: SearchMatcher, pick: Pick = _longest_pick) -> list[Key] | None:
    """The keys of one search: of every term its alternatives cannot hold without, and of its
    handles. None: it may hold on any post, so it is always verified."""
    evaluator = matcher.evaluator
    keys: list[Key] = []
    terms = needed_terms(matcher)
    if terms is None:
        return None
    for c in terms:
        found = term_keys(c, evaluator.fuzzy, pick)
        if found is None:
            return None
        keys += found
    for handle in matcher.handle_keys.values():
        # '@biebeemland.bsky.social' is found as '@biebeemland' too; a short account name
        # only with its server ('@bieb@mastodon.nl'), so a word of the server will do
        local = handle_local(handle)
        written = local if len(local) > SHORT_TERM else normal_handle(handle)
        word = pick(fold(written).split())
        if not word:
            return None
        keys.append(Key(key(word), WORD, (key(word),)))
    return keys


class Presearcher:
    """All searches' keys in one automaton; `candidates` gives the searches a post may match."""

    def __init__(self, matchers: Sequence[SearchMatcher]) -> None:
        self.size = len(matchers)
        by_text: dict[str, dict[Key, set[int]]] = {}
        by_emoji: dict[str, set[int]] = {}
        always: set[int] = set()
        pick = rarest(matchers)
        for index, matcher in enumerate(matchers):
            keys = search_keys(matcher, pick)
            if keys is None:
                always.add(index)
                continue
            for found in keys:
                if not fold(found.text):  # an emoji: found in the raw text
                    by_emoji.setdefault(found.text, set()).add(index)
                else:
                    by_text.setdefault(found.text, {}).setdefault(found, set()).add(index)
        self.always = frozenset(always)
        self.keys = sum(len(entries) for entries in by_text.values()) + len(by_emoji)
        self._words: dict[str, frozenset[int]] = {}
        self._automaton: Any = None
        if by_text:
            self._automaton = ahocorasick.Automaton()
            for text, entries in by_text.items():
                value = (len(text), tuple((k, frozenset(i)) for k, i in entries.items()))
                self._automaton.add_word(text, value)
            self._automaton.make_automaton()
        self._by_emoji = {emoji: frozenset(indexes) for emoji, indexes in by_emoji.items()}
        self._emoji = (
            re.compile("|".join(re.escape(e) for e in sorted(by_emoji, key=len, reverse=True)))
            if by_emoji
            else None
        )

    def candidates(self, raw: str) -> list[int]:
        """The indexes (in the matchers' order) of the searches this text may match: those
        with a key in one of its words that passes the key's check. No key spans a space, so
        each word is looked at on its own, and what a word gives is remembered (everyday words
        recur: most of a post is dictionary look-ups)."""
        found = set(self.always)
        memory = self._words
        for word in folded(raw).split():
            hit = memory.get(word)
            if hit is None:
                hit = self._word(word)
                if len(memory) >= WORDS_REMEMBERED:
                    memory.clear()
                memory[word] = hit
            if hit:
                found |= hit
        if self._emoji is not None and not raw.isascii():
            for emoji in self._emoji.findall(raw):
                found |= self._by_emoji[emoji]
        return sorted(found)

    def _word(self, word: str) -> frozenset[int]:
        """The searches one folded word may belong to."""
        found: set[int] = set()
        if self._automaton is not None:
            for _, (_, entries) in self._automaton.iter(word):
                for found_key, indexes in entries:
                    if not indexes <= found and found_key.holds(word):
                        found |= indexes
        return frozenset(found)
