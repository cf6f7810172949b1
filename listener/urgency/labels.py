"""Labels: what kind of post this is, from the lexicon in the urgency settings.

Phrases are matched as whole words on the folded text ('wéér' is 'weer'), single words of 8
letters or more also with one typo (unless the word is a common word of its own); emoji on
the raw text; question openers only where they open a sentence ('Kan ik …', not 'Alweer kan
ik …'). Then:

- a negation just before a cue cancels it ('geen probleem', 'niet dicht'), and negated praise
  is a complaint ('niet blij', 'not great');
- a closure with a schedule nearby ('dicht om 17u', 'op maandag dicht', 'vanaf 23 november')
  is opening hours or an announced closure, not an outage;
- sarcasm ('nou top', 'lekker dan', 🙃) is not praise, and makes the post a complaint;
- praise beside a complaint is not praise ('super irritant');
- spam needs two cues (a giveaway and a Telegram link, four hashtags and a deal, …);
- intensifiers ('echt slecht', 'ALWEER', 'wéér', '!!!') are collected for the score.

Every label keeps the cues that gave it, so the score's reasons can quote them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from rapidfuzz.distance import Levenshtein

from listener.post import Post
from listener.text import fold
from listener.urgency.settings import LabelSettings, UrgencySettings

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+\.(?:ly|me|com|nl|io)/\S*", re.IGNORECASE)
_URL_HINT = re.compile(r"://|www\.|\.(?:ly|me|com|nl|io)/", re.IGNORECASE)  # in every _URL
_SENTENCE_END = re.compile(r"[.!?;:\n]+")
_GREETING = frozenset({"hoi", "hallo", "hey", "hi", "hello", "beste", "dag"})
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_MENTION = re.compile(r"(?<!\w)@[\w.@-]+")
_CAPITALS = re.compile(r"\b[A-ZÀ-Ý]+\b")
_PUNCTUATION_RUN = re.compile(r"[!?]{2,}")
FUZZY_MIN_LETTERS = 8
TYPOS_REMEMBERED = 20_000  # long words whose typo phrases `_PhraseFinder` keeps
COMMON_ZIPF = 2.5  # a word at least this frequent is a word of its own, not a typo


@dataclass(slots=True)
class Labelled:
    """The labels of one post, each with its cues in the order found, and the intensifiers."""

    cues: dict[str, list[str]] = field(default_factory=dict)
    intensifiers: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.cues)

    def add(self, label: str, cue: str) -> None:
        found = self.cues.setdefault(label, [])
        if cue not in found:
            found.append(cue)


@dataclass(frozen=True, slots=True)
class _Sentence:
    start: int  # index of its first word in the post's words
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Hit:
    shown: str  # the phrase as the reason quotes it
    start: int
    end: int  # exclusive


class Lexicon:
    """The compiled lexicon of one `UrgencySettings`."""

    def __init__(self, settings: UrgencySettings) -> None:
        self.settings = settings
        self.labels: dict[str, LabelSettings] = dict(settings.labels)
        self.phrases = {name: _compile(label.phrases) for name, label in self.labels.items()}
        self.openers = {
            name: _by_first(_compile(label.openers)) for name, label in self.labels.items()
        }
        self.negations = frozenset(fold(w) for w in settings.negation.words)
        self.intensifier_words = frozenset(fold(w) for w in settings.intensifiers.words)
        self.emphasis = tuple(
            (word, re.compile(rf"(?<!\w){re.escape(word)}(?!\w)"))
            for word in (w.casefold() for w in settings.intensifiers.emphasis)
        )  # each word with its pattern, compiled once
        self.sarcasm = _compile(settings.sarcasm.markers)
        self._finder = _PhraseFinder([*self.phrases.values(), self.sarcasm])
        self.closure_words = frozenset(fold(w) for w in settings.closures.words)
        self.schedule = frozenset(fold(w) for w in settings.closures.schedule)

    def label(self, post: Post) -> Labelled:
        raw = post.text
        text = _without_urls(raw)
        sentences = _sentences(text)
        opening = [_without_greeting(s.words) for s in sentences]
        plain = raw.isascii()  # then no emoji to look for, only ASCII markers (':-)')
        words = tuple(w for s in sentences for w in s.words)
        sentence_of = [i for i, s in enumerate(sentences) for _ in s.words]
        out = Labelled()
        negated_praise: list[str] = []
        hits_by_label: dict[str, list[_Hit]] = {}
        *found_by_label, found_sarcasm = self._finder.find(words)
        for (name, label), found in zip(self.labels.items(), found_by_label, strict=True):
            hits = []
            for hit in found:
                if label.negatable and self._negated(words, sentence_of, hit.start):
                    if name == "praise":
                        negated_praise.append(f"negated '{hit.shown}'")
                    continue
                if name == "outage" and self._scheduled(words, sentence_of, hit):
                    continue
                hits.append(hit)
            hits_by_label[name] = hits
            cues = [f"'{h.shown}'" for h in hits]
            cues += [f"'{e}'" for e in _present(label.emoji, raw, plain)]
            cues += [f"'{o}'" for o in self._openers(name, opening)]
            if post.source in label.sources:
                cues.append(f"from a {post.source} feed")
            if name == "question" and "?" in text:
                cues.append("'?'")
            if name == "spam":
                cues += _spam_shape(raw)
            if len(cues) >= label.min_cues:
                for cue in cues:
                    out.add(name, cue)
        sarcasm = [f"'{h.shown}'" for h in found_sarcasm]
        sarcasm += [f"'{e}'" for e in _present(self.settings.sarcasm.emoji, raw, plain)]
        if negated_praise and "complaint" not in out.cues:
            for cue in negated_praise:
                out.add("complaint", cue)
        if sarcasm:
            out.cues.pop("praise", None)
            if "complaint" not in out.cues:
                for cue in sarcasm:
                    out.add("complaint", f"sarcasm {cue}")
        if "complaint" in out.cues:
            out.cues.pop("praise", None)  # 'super irritant' is not praise
        out.cues = {name: out.cues[name] for name in self.labels if name in out.cues}
        if any(name in out.cues for name in self.settings.intensifiers.applies_to):
            out.intensifiers = self._intensifiers(raw, words, hits_by_label)
        return out

    def _negated(self, words: tuple[str, ...], sentence_of: list[int], start: int) -> bool:
        window = self.settings.negation.window
        for i in range(max(0, start - window), start):
            if sentence_of[i] == sentence_of[start] and words[i] in self.negations:
                return True
        return False

    def _scheduled(self, words: tuple[str, ...], sentence_of: list[int], hit: _Hit) -> bool:
        """'dicht om 17u', 'op vrijdag dicht': a closure with a schedule is not an outage."""
        if words[hit.start] not in self.closure_words:
            return False
        window = self.settings.closures.window
        near = range(max(0, hit.start - window), min(len(words), hit.end + window))
        return any(
            sentence_of[i] == sentence_of[hit.start]
            and (words[i] in self.schedule or _is_clock(words[i]))
            for i in near
            if not hit.start <= i < hit.end
        )

    def _openers(self, name: str, opening: list[tuple[str, ...]]) -> list[str]:
        """The openers of a label that open a sentence (`opening`: each sentence's words
        without the greeting before them)."""
        found = []
        by_first = self.openers[name]
        for words in opening:
            for shown, phrase in by_first.get(words[0], ()) if words else ():
                if words[: len(phrase)] == phrase:
                    found.append(shown)
        return found

    def _intensifiers(
        self, raw: str, words: tuple[str, ...], hits_by_label: dict[str, list[_Hit]]
    ) -> list[str]:
        settings = self.settings.intensifiers
        found: list[str] = []
        for name in settings.applies_to:
            for hit in hits_by_label.get(name, []):
                for i in range(max(0, hit.start - settings.window), hit.start):
                    if words[i] in self.intensifier_words:
                        found.append(f"'{words[i]}' before '{hit.shown}'")
        casefolded = raw.casefold()
        for word, pattern in self.emphasis:
            if pattern.search(casefolded):
                found.append(f"'{word}' with emphasis")
        without = _MENTION.sub(" ", _HASHTAG.sub(" ", _without_urls(raw)))
        for word in _CAPITALS.findall(without):
            if len(word) >= settings.capitals_min_letters:
                found.append(f"'{word}' in capitals")
        run = max(_PUNCTUATION_RUN.findall(raw), key=len, default=None)
        if run and any(mark in run for mark in settings.repeated_punctuation):
            found.append(f"'{run}'")
        return list(dict.fromkeys(found))


def _compile(phrases: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for phrase in phrases:
        words = tuple(fold(phrase).split())
        if words:
            out.append((phrase, words))
    return out


def _without_urls(raw: str) -> str:
    """The text with each link replaced by a space; most texts have none (`_URL_HINT`)."""
    return _URL.sub(" ", raw) if _URL_HINT.search(raw) else raw


def _present(markers: Sequence[str], raw: str, plain: bool) -> list[str]:
    """The markers (emoji) the raw text holds; of an ASCII text (`plain`) only ASCII ones."""
    return [m for m in markers if (not plain or m.isascii()) and m in raw]


def _by_first(phrases: Phrases) -> dict[str, Phrases]:
    """Phrases by their first word, each list in the phrases' order."""
    out: dict[str, Phrases] = {}
    for shown, words in phrases:
        out.setdefault(words[0], []).append((shown, words))
    return out


def _without_greeting(words: tuple[str, ...]) -> tuple[str, ...]:
    """A sentence's words without the greeting it opens with ('hoi', 'beste')."""
    while words and words[0] in _GREETING:
        words = words[1:]
    return words


def _sentences(text: str) -> list[_Sentence]:
    out, start = [], 0
    for part in _SENTENCE_END.split(text):
        words = tuple(fold(part).split())
        if words:
            out.append(_Sentence(start, words))
            start += len(words)
    return out


Phrases = list[tuple[str, tuple[str, ...]]]


class _PhraseFinder:
    """Several phrase lists looked up in one pass over a post's words: phrases by their first
    word, and the one-word phrases long enough for a typo by (first letter, length)."""

    def __init__(self, lists: Sequence[Phrases]) -> None:
        self.lists = tuple(lists)
        self.by_first: dict[str, list[tuple[int, int]]] = {}  # word → (list, phrase)
        self.typo: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self._typos: dict[str, tuple[tuple[int, int], ...]] = {}  # word → its typo phrases
        for slot, phrases in enumerate(self.lists):
            for n, (_, phrase) in enumerate(phrases):
                self.by_first.setdefault(phrase[0], []).append((slot, n))
                if len(phrase) == 1 and len(phrase[0]) >= FUZZY_MIN_LETTERS:
                    self.typo.setdefault((phrase[0][:1], len(phrase[0])), []).append((slot, n))

    def _typos_of(self, word: str) -> tuple[tuple[int, int], ...]:
        """The long one-word phrases this word is a typo of, remembered (TYPOS_REMEMBERED
        words, then forgotten all at once): long words recur."""
        found = self._typos.get(word)
        if found is None:
            letter, typo, lists = word[:1], self.typo, self.lists
            found = tuple(
                (slot, n)
                for size in (len(word) - 1, len(word), len(word) + 1)
                for slot, n in typo.get((letter, size), ())
                if _typo_of(word, lists[slot][n][1][0])
            )
            if len(self._typos) >= TYPOS_REMEMBERED:
                self._typos.clear()
            self._typos[word] = found
        return found

    def find(self, words: tuple[str, ...]) -> list[list[_Hit]]:
        """For each list, every phrase found among the words (one hit per phrase, the first),
        in phrase order: a phrase as its words, or a long one-word phrase with one typo
        (`_typo_of`)."""
        lists, by_first, typo = self.lists, self.by_first, self.typo
        first: list[dict[int, int]] = [{} for _ in lists]
        for i, word in enumerate(words):
            for slot, n in by_first.get(word, ()):
                found = first[slot]
                if n not in found:
                    phrase = lists[slot][n][1]
                    if len(phrase) == 1 or words[i : i + len(phrase)] == phrase:
                        found[n] = i
            if typo and len(word) >= FUZZY_MIN_LETTERS - 1:
                for slot, n in self._typos_of(word):
                    found = first[slot]
                    if n not in found:
                        found[n] = i
        return [
            [_Hit(phrases[n][0], i, i + len(phrases[n][1])) for n, i in sorted(found.items())]
            for phrases, found in zip(lists, first, strict=True)
        ]


def _find(phrases: Phrases, words: tuple[str, ...]) -> list[_Hit]:
    """`_PhraseFinder.find` of one phrase list."""
    return _PhraseFinder([phrases]).find(words)[0]


def _typo_of(word: str, phrase: str) -> bool:
    """One typo in a long word: 'teleurgestelt' for 'teleurgesteld'; but a common word is not
    a typo ('geworden' is not 'gewonden')."""
    return (
        len(phrase) >= FUZZY_MIN_LETTERS
        and abs(len(word) - len(phrase)) <= 1
        and word[:1] == phrase[:1]
        and Levenshtein.distance(word, phrase, score_cutoff=1) <= 1
        and not _common(word)
    )


@cache
def _common(word: str) -> bool:
    from wordfreq import zipf_frequency  # on first use: a fifth of a second to import

    return max(zipf_frequency(word, "nl"), zipf_frequency(word, "en")) >= COMMON_ZIPF


def _is_clock(word: str) -> bool:
    """'17u', '16uur', '5pm', '2027' after folding: a time or a year."""
    return bool(re.fullmatch(r"\d{1,2}(?:u|uur|pm|am|h)|(?:19|20)\d\d", word))


def _spam_shape(raw: str) -> list[str]:
    """Spam by its shape: four or more hashtags, or nothing but links, tags and mentions."""
    cues = []
    tags = _HASHTAG.findall(raw)
    if len(tags) >= 4:
        cues.append(f"{len(tags)} hashtags")
    if _URL_HINT.search(raw) and _URL.search(raw):
        rest = fold(_MENTION.sub(" ", _HASHTAG.sub(" ", _URL.sub(" ", raw))))
        if len(rest.split()) <= 2:
            cues.append("only a link")
    return cues
