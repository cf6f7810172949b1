"""The presearcher: which saved searches a post can possibly match, in one pass over its text.

As Lucene Monitor does for stored queries, every search's terms (names, aliases, handles, branch
names, its `terms` and the terms of its `query`) are indexed once, here as the keys of one
Aho-Corasick automaton (pyahocorasick) over folded text. A post is folded once ('wéér' →
'weer', Dutch 'ij' → 'y', punctuation → spaces) and cut into words; what each word meets is
found by the automaton once and then remembered by the token it was written as (everyday
words recur), so most of a post is dictionary look-ups. A term is looked at only when the post
meets its least common need ('bieb' of 'de bieb'; which is least common is guessed at first,
then counted on one post in SAMPLE_EVERY: 'weer' meets the 'weert' of 'Bibliotheek Weert' in
one post of ten), so the tokens that meet none of those are also kept in one set: a post made
only of them (most posts) is answered by one set look-up.
Only the searches a post can match are verified by their `SearchMatcher`; most posts mention
no search at all, and cost that pass and nothing more.

A term is indexed as what it needs of the post's words (`Need`), every one of them, or else
the phrase written as one word ('#BibliotheekEemland'):

- an exact word (a name's word, a handle, a short term): that word; a wildcard: a word with
  that prefix.
- a fuzzy word (rapidfuzz `ratio` at the search's threshold t, word by word, the weakest word
  counting, so every word must be close): a word of n letters and a post word at that ratio
  differ by at most d = ⌊2n(1 − t)/t⌋ insertions and deletions, so by at most d edits, and of
  d + 1 pieces of the word at least one is left whole (the pigeonhole principle): the pieces
  are its keys, and a post word holding one meets the need when its ratio to the word is at
  least t. So 'weer' may meet 'Weert', but 'Bibliotheek Weert' also needs 'bibliotheek'.
- a term with `~n` typos: n + 1 pieces of the phrase (each piece's longest part without a
  space) and of the joined phrase, any of them.
- an emoji: the emoji itself, found in the raw text.

The needs never miss a match (the fast path decides exactly as the reference path does, which
verifies every search; `tests/test_presearch.py` proves it). A search that can hold without any
term (a query of only NOT or field filters), or whose pieces would be empty (a very low
threshold), is a candidate for every post.
"""

from __future__ import annotations

import math
import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import ahocorasick
from rapidfuzz import fuzz

from listener.branch import GENERIC_NAME_WORDS
from listener.geo.gazetteer import PARTICLES
from listener.match import SearchMatcher, handle_local, normal_handle
from listener.query.evaluate import JOINED_SHARE, SHORT_TERM, Compiled, reachable
from listener.query.syntax import key
from listener.text import fold

#: How many distinct tokens (and folded words) `Presearcher.candidates` remembers; when full,
#: it forgets the oldest down to half.
WORDS_REMEMBERED = 200_000
_NOTHING: frozenset[int] = frozenset()  # what most words meet: one object for all
#: Words in nearly every post, never the need a term is looked at by when it has another.
_FUNCTION_WORDS = PARTICLES | {"the", "of", "and", "la", "le", "les"}
#: One post in this many (a power of two) has every need it meets counted, so that each term is
#: looked at by the need of its that posts meet least (`Presearcher._choose_triggers`).
SAMPLE_EVERY = 64
#: The needs are chosen again after this many counted posts, then after twice as many each
#: time, up to LONGEST_BETWEEN (about four million posts); the counts are halved each time,
#: so what posts say now counts most.
FIRST_CHOICE = 128
LONGEST_BETWEEN = 65_536


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


#: How a word is checked against a need whose key it holds (`Presearcher._word`):
WORD = "word"  # the word is the target (looked up, not searched for)
PREFIX = "prefix"  # the word starts with the target (a wildcard)
FUZZY = "fuzzy"  # the word is close to the target at the threshold (rapidfuzz ratio)
ANY = "any"  # no check (typo-tolerant phrases, whose edits may span words)
EMOJI = "emoji"  # an emoji in the raw text


@dataclass(frozen=True, slots=True)
class Need:
    """A word a term cannot match without: substrings one of which that word holds (`keys`),
    and the check the word must then pass."""

    keys: tuple[str, ...]
    check: str  # WORD | PREFIX | FUZZY | ANY | EMOJI
    target: str = ""
    threshold: float = 100.0
    # The lengths a word can have and still be close enough (FUZZY): a ratio is at most
    # 2·min(m, n) / (m + n) for words of m and n letters.
    shortest: int = 0
    longest: int = 1 << 30


@dataclass(frozen=True, slots=True)
class TermNeeds:
    """A term may match a post that meets all of `every`, or else `instead` (the phrase
    written as one word)."""

    every: tuple[Need, ...]
    instead: Need | None = None


def _word_need(word: str) -> Need:
    return Need((word,), WORD, word)


def _fuzzy_need(word: str, threshold: float) -> Need | None:
    cut = pieces(word, fuzzy_edits(len(word), threshold) + 1)
    if not cut:
        return None
    share = (threshold - 1e-3) / 100  # as leniently as `Presearcher._word` checks
    shortest, longest = reachable(len(word), share)
    return Need(tuple(dict.fromkeys(cut)), FUZZY, word, threshold, shortest, longest)


def term_needs(c: Compiled, threshold: float) -> TermNeeds | None:
    """What this term needs of a post's words; None when nothing can be relied on."""
    words = [w for w in c.keys if w]
    if c.mode == "emoji":
        return TermNeeds((Need((c.term.words[0].text,), EMOJI),)) if c.term.words else None
    if c.mode == "mention":
        word = _longest(key(w) for w in fold(c.term.words[0].text).split())
        return TermNeeds((_word_need(word),)) if word else None
    if not words:
        return None
    joined = c.joined if len(words) > 1 and not c.term.wildcard else None
    if c.mode == "exact":
        every = tuple(
            Need((k,), PREFIX, k) if prefix else _word_need(k)
            for k, prefix in zip(c.keys, c.prefixes, strict=True)
            if k
        )
        return TermNeeds(every, _word_need(joined) if joined else None)
    if c.mode == "typos":
        typos = c.term.typos or 0
        found = _spaced_pieces(" ".join(words), typos + 1)
        joined_pieces = pieces(c.joined, typos + 1) if len(words) > 1 else []
        if found is None or (len(words) > 1 and not joined_pieces):
            return None
        return TermNeeds((Need(tuple(dict.fromkeys([*found, *joined_pieces])), ANY),))
    # fuzzy: every long word close at the threshold, every short one (four letters or fewer)
    # exactly; or the phrase joined into one word, close
    needs: list[Need] = []
    for word in words:
        need = _fuzzy_need(word, threshold) if len(word) > SHORT_TERM else _word_need(word)
        if need is None:
            return None
        needs.append(need)
    instead = None
    if joined:
        instead = _fuzzy_need(joined, threshold)
        if instead is None:
            return None
        shortest = math.ceil(JOINED_SHARE * len(joined) - 1e-9)  # as `_fuzzy_hits` requires
        instead = replace(instead, shortest=max(instead.shortest, shortest))
    return TermNeeds(tuple(needs), instead)


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


def search_needs(matcher: SearchMatcher) -> list[TermNeeds] | None:
    """What the terms of one search need, one of them at least (its handles included). None:
    it may hold on any post, so it is always verified."""
    terms = needed_terms(matcher)
    if terms is None:
        return None
    out: list[TermNeeds] = []
    for c in terms:
        found = term_needs(c, matcher.evaluator.fuzzy)
        if found is None:
            return None
        out.append(found)
    for handle in matcher.handle_keys.values():
        # '@biebeemland.bsky.social' is found as '@biebeemland' too; a short account name
        # only with its server ('@bieb@mastodon.nl'): all of its words then
        local = handle_local(handle)
        written = local if len(local) > SHORT_TERM else normal_handle(handle)
        words = [key(w) for w in fold(written).split()]
        if not words:
            return None
        out.append(TermNeeds(tuple(_word_need(w) for w in dict.fromkeys(words))))
    return out


def _commonness(need: Need) -> tuple[bool, bool, bool, int]:
    """How often a need is likely met, for ordering: an article or a particle first (the 'de'
    of 'de bieb'), then a generic word of library names ('bibliotheek' of 'DOK bibliotheek' is
    met far more often than 'dok'), then a word of three letters or fewer, then the shorter the
    commoner."""
    target = need.target or max(need.keys, key=len)
    return (
        target in _FUNCTION_WORDS,
        target in GENERIC_NAME_WORDS,
        len(target) <= 3,
        -len(target),
    )


@dataclass(frozen=True, slots=True)
class _Term:
    every: frozenset[int]  # need ids
    instead: int | None
    searches: frozenset[int]


def _forget_the_oldest(memory: dict[str, frozenset[int]]) -> list[str]:
    """Drop the longest-kept entries (dicts keep insertion order) until half of
    WORDS_REMEMBERED is left: everyday words come back at once, the rest is not missed.
    The keys dropped."""
    oldest = list(islice(memory, max(0, len(memory) - WORDS_REMEMBERED // 2)))
    for token in oldest:
        del memory[token]
    return oldest


class Presearcher:
    """All searches' needs in one automaton; `candidates` gives the searches a post may match."""

    def __init__(self, matchers: Sequence[SearchMatcher]) -> None:
        self.size = len(matchers)
        need_ids: dict[Need, int] = {}
        by_needs: dict[tuple[frozenset[int], int | None], set[int]] = {}
        always: set[int] = set()

        def need_id(need: Need) -> int:
            return need_ids.setdefault(need, len(need_ids))

        for index, matcher in enumerate(matchers):
            found = search_needs(matcher)
            if found is None:
                always.add(index)
                continue
            for term in found:
                every = frozenset(need_id(n) for n in term.every)
                instead = need_id(term.instead) if term.instead is not None else None
                by_needs.setdefault((every, instead), set()).add(index)
        self.always = sorted(always)  # searches verified on every post
        self.needs = len(need_ids)
        self._terms = [_Term(e, i, frozenset(s)) for (e, i), s in by_needs.items()]
        # A term is looked at when the post meets its least common need (it needs them all)
        # or its `instead`: 'de bieb' when the post has 'bieb', not whenever it has 'de'.
        # Until posts have been counted, 'least common' is guessed from the need itself.
        self._needs = tuple(need_ids)  # by id (dicts keep insertion order)
        self._guess = [_commonness(each) for each in self._needs]
        self._met = [0] * len(self._needs)  # how many counted posts met each need
        self._posts = 0  # posts asked about
        self._counted = 0  # of them counted
        self._next_choice = FIRST_CHOICE  # when the needs are chosen again (counted posts)
        self._terms_of: dict[int, tuple[int, ...]] = {}
        self._triggers: frozenset[int] = frozenset()  # the needs a term is looked at by
        by_text: dict[str, list[tuple[int, Need]]] = {}
        by_emoji: dict[str, set[int]] = {}
        exact: dict[str, set[int]] = {}
        for each, i in need_ids.items():
            if each.check == WORD:  # its one key is its word: a look-up, not the automaton
                exact.setdefault(each.target, set()).add(i)
                continue
            for text in each.keys:
                if each.check == EMOJI:
                    by_emoji.setdefault(text, set()).add(i)
                else:
                    by_text.setdefault(text, []).append((i, each))
        self.keys = len(exact.keys() | by_text.keys()) + len(by_emoji)
        self._exact = {word: frozenset(ids) for word, ids in exact.items()}
        self._words: dict[str, frozenset[int]] = {}  # token as written → the needs it meets
        # The tokens of `_words` that meet no need a term is looked at by ('de' meets the
        # 'de' of 'de bieb', which is looked at by 'bieb'): most of them.
        self._silent: set[str] = set()
        self._meeting: set[str] = set()  # the tokens of `_words` that meet a need: few
        self._choose_triggers()
        self._folded: dict[str, frozenset[int]] = {}  # folded word → the needs it meets
        self._lock = threading.Lock()
        self._automaton: Any = None
        # What a key found in a word leads to: prefix needs (met when the word starts with the
        # key), typo-tolerant pieces (met at once) and fuzzy needs, these sorted by the length
        # of their word, so a post word is compared only with words of lengths the lowest
        # threshold lets it be close to (then each need's own `shortest`/`longest`).
        self._digits = any(ch.isdigit() for text in [*by_text, *exact] for ch in text)
        shares = [(n.threshold - 1e-3) / 100 for n in need_ids if n.check == FUZZY]
        self._share = max(min(shares, default=1.0), 1e-6)
        self._reach = [reachable(size, self._share) for size in range(64)]
        if by_text:
            self._automaton = ahocorasick.Automaton()
            for text, entries in by_text.items():
                prefixes = tuple(i for i, n in entries if n.check == PREFIX)
                anywhere = frozenset(i for i, n in entries if n.check == ANY)
                fuzzy = sorted(
                    (
                        (i, n.target, n.threshold - 1e-3, n.shortest, n.longest)
                        for i, n in entries
                        if n.check == FUZZY
                    ),
                    key=lambda entry: len(entry[1]),
                )
                lengths = [len(target) for _, target, *_ in fuzzy]
                value = (len(text) - 1, prefixes, anywhere, tuple(fuzzy), lengths)
                self._automaton.add_word(text, value)
            self._automaton.make_automaton()
        self._by_emoji = {emoji: frozenset(ids) for emoji, ids in by_emoji.items()}
        self._emoji = (
            re.compile("|".join(re.escape(e) for e in sorted(by_emoji, key=len, reverse=True)))
            if by_emoji
            else None
        )

    def candidates(self, raw: str) -> list[int]:
        """The indexes (in the matchers' order) of the searches this text may match: those with
        a term whose needs the post's words meet.

        No key spans a space, so each word is looked at on its own. Nor does folding join or
        split anything across white space, so the folded words of a text are those of its
        white-space-separated tokens one by one: what a token as written ('Leusden,', 'wéér')
        meets is remembered, and a post made of tokens seen before is only look-ups."""
        tokens = raw.split()
        emoji_here = self._emoji is not None and not raw.isascii()
        with self._lock:  # the daemon's polls decide in several threads; one at a time here
            memory, silent, triggers = self._words, self._silent, self._triggers
            terms_of = self._terms_of  # as chosen now, with `triggers`
            self._posts += 1
            counted = not self._posts & (SAMPLE_EVERY - 1)
            if not counted and silent.issuperset(tokens) and not emoji_here:
                return self.always[:]  # most posts: words seen before, no term looked at
            if max(len(memory), len(self._folded)) + len(tokens) > WORDS_REMEMBERED:
                # before anything is looked up, so this post's tokens all stay
                forgotten = _forget_the_oldest(memory)
                silent.difference_update(forgotten)
                self._meeting.difference_update(forgotten)
                _forget_the_oldest(self._folded)
            looked_at = False  # whether a token meets a need a term is looked at by
            for token in tokens:
                if token in silent:
                    continue
                meets = memory.get(token)
                if meets is None:  # never seen: learn it, once
                    meets = memory[token] = self._token(token)
                    if meets:
                        self._meeting.add(token)
                    if meets.isdisjoint(triggers):
                        silent.add(token)
                        continue
                looked_at = looked_at or not meets.isdisjoint(triggers)
            if counted:
                self._count(set().union(*map(memory.__getitem__, tokens)))
            if not looked_at and not emoji_here:
                return self.always[:]
            found = list(map(memory.__getitem__, tokens))  # every token known by now
        met: set[int] = set().union(*found)
        if emoji_here and self._emoji is not None:
            for emoji in self._emoji.findall(raw):
                met |= self._by_emoji[emoji]
        if not met:
            return self.always[:]  # most posts: no need met
        chosen = set(self.always)
        seen: set[int] = set()
        for n in met:
            for t in terms_of.get(n, ()):
                if t in seen:
                    continue
                seen.add(t)
                term = self._terms[t]
                if term.every <= met or (term.instead is not None and term.instead in met):
                    chosen |= term.searches
        return sorted(chosen)

    def _count(self, met: set[int]) -> None:
        """Count the needs one post meets; choose the triggers again when it is time."""
        counts = self._met
        for n in met:
            counts[n] += 1
        self._counted += 1
        if self._counted >= self._next_choice:
            self._choose_triggers()
            self._met = [count // 2 for count in counts]
            self._next_choice = self._counted + min(self._counted, LONGEST_BETWEEN)

    def _choose_triggers(self) -> None:
        """Look at each term by the need of its that the counted posts met least (the guess of
        `_commonness` between needs met as often): 'bibliotheek weert' by 'bibliotheek' once
        posts show that 'weer', which meets 'weert', is in one of ten. Any need of a term will
        do, as a term is met only when all are. Which known tokens meet none of the chosen
        needs is then read again, of the few tokens that meet any need."""
        counts, guess = self._met, self._guess
        terms_of: dict[int, list[int]] = {}
        for t, term in enumerate(self._terms):
            ids = {min(term.every, key=lambda i: (counts[i], guess[i]))} if term.every else set()
            if term.instead is not None:
                ids.add(term.instead)
            for i in ids:
                terms_of.setdefault(i, []).append(t)
        self._terms_of = {n: tuple(ts) for n, ts in terms_of.items()}
        self._triggers = triggers = frozenset(self._terms_of)
        memory, silent = self._words, self._silent
        for token in self._meeting:
            if memory[token].isdisjoint(triggers):
                silent.add(token)
            else:
                silent.discard(token)

    def _token(self, token: str) -> frozenset[int]:
        """The needs the folded words of one token meet ('laatste.' is 'laatste' again)."""
        if token.isascii() and token.isalnum():  # most tokens: one word, only lower-cased
            words = [key(token.lower())]
        else:
            words = folded(token).split()
        found = []
        for word in words:
            met = self._folded.get(word)
            if met is None:
                met = self._folded[word] = self._word(word)
            found.append(met)
        if len(found) == 1:
            return found[0]
        return frozenset().union(*found) or _NOTHING

    def _word(self, word: str) -> frozenset[int]:
        """The needs one folded word meets."""
        met: set[int] = set(self._exact.get(word, ()))
        if self._automaton is None or (word.isdigit() and not self._digits):
            return frozenset(met) if met else _NOTHING  # no key has a digit: '280400'
        tried: set[int] = set()
        size = len(word)
        # the lengths of the words this one can be close to, at the lowest threshold
        reach = self._reach
        shortest, longest = reach[size] if size < len(reach) else reachable(size, self._share)
        ratio = fuzz.ratio
        for end, (key_end, prefixes, anywhere, fuzzy, lengths) in self._automaton.iter(word):
            if prefixes and end == key_end:  # the key opens the word
                met.update(prefixes)
            if anywhere:
                met |= anywhere
            if not fuzzy:
                continue
            near = fuzzy[bisect_left(lengths, shortest) : bisect_right(lengths, longest)]
            for n, target, cutoff, low, high in near:  # those this word can reach
                if n in tried or not low <= size <= high:
                    continue
                tried.add(n)
                # a hair under the threshold: rapidfuzz's cdist scores are float32
                if ratio(target, word, score_cutoff=cutoff) >= cutoff:
                    met.add(n)
        return frozenset(met) if met else _NOTHING
