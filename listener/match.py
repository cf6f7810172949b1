"""Match: does a post mention what a saved search looks for?

A `brand` search finds an organisation's name, aliases and handles (plus any extra terms) anywhere;
a `local` search finds generic terms such as "de bieb", which only count once the locate stage has
put the post near a branch. Every name, alias and term becomes a term of the query language
(`listener.query`), and a search's `query` adds its own alternatives and top-level restrictions,
so one evaluator runs them all: folded for case, accents and punctuation; exact as a word
sequence, or fuzzy (rapidfuzz ratio word by word, at the search's threshold) when longer than
four letters, as short terms like 'bieb' or 'OBA' would match half the language otherwise.
Exclusions, and for local searches the cues of another sense of the word (a Steam library, a
Python library, 'mijn bibliotheek'), reject a post with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from listener.config.model import Organisation, Search
from listener.post import Post
from listener.query.evaluate import SHORT_TERM, Candidates, Evaluator, Hit, Tokens
from listener.query.syntax import (
    And,
    Node,
    Or,
    Word,
    conjuncts,
    emoji_key,
    fold_words,
    is_emoji,
    parse,
    positive,
)
from listener.query.syntax import Term as QueryTerm
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
    tokens: Tokens

    @classmethod
    def of(cls, raw: str) -> Text:
        folded = fold(raw)
        return cls(raw, folded, tuple(folded.split()), f" {folded} ", Tokens.of(raw))

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
    """One saved search, compiled once: its names and terms as query terms, its `query` parsed.

    The search holds when one of its alternatives is found (for a brand search: the
    organisation's name, an alias, a handle, a branch's own name; its `terms`; the positive part
    of its `query`) and every top-level restriction of the query holds (its NOT clauses and field
    filters, which for a brand search apply to the names too). Then `exclude` and, for local
    searches, the cues of another sense of the word can still reject it.
    """

    def __init__(
        self,
        search: Search,
        org: Organisation | None,
        is_name: Callable[[str], bool] = lambda _: False,
        extra_terms: Sequence[Term] = (),
        near_misses: bool = True,
        sense: Sense | None = None,
    ) -> None:
        """`is_name` tells whether some words are a place or a library's own name: 'Leusden
        library' and 'CODA-bieb' are the public library, 'GOG library' is not. Without
        `near_misses` the result has none (what the daemon decides with: it does not keep
        them), and the fuzzy comparisons look only for words at the threshold. `sense` is
        `remembered_sense(is_name)`, shared by the matchers of one classifier (made here
        without it)."""
        self.is_name = is_name
        self.sense = sense or remembered_sense(is_name)
        self.near_misses = near_misses
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
        # Every alternative as a node of the query language; `kinds` remembers what a plain
        # term stands for (an alias, a handle), for the evidence.
        self.kinds: dict[int, Term] = {}
        alternatives: list[Node] = []
        for term in self.terms:
            # A handle is an identifier: its account name, exactly ('#bibliotheekeemland').
            node = (
                QueryTerm(term.text, (Word(term.folded),), typos=0)
                if term.kind == "handle"
                else _plain(term.text)
            )
            if node is not None:
                self.kinds[id(node)] = term
                alternatives.append(node)
        self.restrictions: list[Node] = []
        if search.query is not None and search.query.strip():
            tree = parse(search.query)
            parts = conjuncts(tree)
            wanted = [p for p in parts if positive(p)]
            self.restrictions = [p for p in parts if not positive(p)]
            if len(wanted) == 1 and isinstance(wanted[0], Or):  # each alternative on its own,
                alternatives += wanted[0].children  # so the evidence names the one that held
            elif wanted:
                alternatives.append(wanted[0] if len(wanted) == 1 else And(tuple(wanted)))
        self.alternatives = alternatives
        self.evaluator = Evaluator(
            search.fuzzy,
            self._check,
            self._describe,
            [*alternatives, *self.restrictions],
            near_misses=near_misses,
        )
        # The alternatives by the terms they cannot hold without, so a post is tried only on
        # the alternatives its possible terms lead to (those needing no term: always).
        self._alternatives_of: dict[int, list[int]] = {}
        self._always: list[int] = []
        for n, alternative in enumerate(alternatives):
            needed = self.evaluator.needs.get(id(alternative))
            if needed is None:
                self._always.append(n)
            for term_id in needed or ():
                self._alternatives_of.setdefault(term_id, []).append(n)
        self.exclude = [(e, fold(e)) for e in search.exclude if fold(e)]
        self.sense_cues = [(c, c) for c in SENSE_CUES]
        self.sense_cues += [(c, fold(c)) for c in search.sense_cues if fold(c)]
        self._excluded = _any_phrase([f for _, f in self.exclude])
        self._other_sense = _any_phrase([f for _, f in self.sense_cues])
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

    def match(self, post: Post, text: Text, fetched_by: str | None = None) -> MatchResult:
        result = MatchResult(self.search, matched=False)
        tokens = text.tokens
        candidates = self.evaluator.candidates(tokens)
        for written in tokens.mentions if self.handle_keys else ():  # `mentions`, read once
            handle = next(
                (self.handle_keys[k] for k in handle_keys(written) if k in self.handle_keys), None
            )
            if handle is not None:
                result.matched, result.score, result.written = True, 100.0, "@" + written
                result.term = Term(handle, normal_handle(handle), "handle")
                result.evidence.append(self._evidence(result.term, result.written, 100.0))
                break
        other_sense: list[str] = []
        for node in self._possible_alternatives(candidates) if not result.matched else ():
            run = self.evaluator.run(node, post, tokens, fetched_by, candidates)
            other_sense += [r for r in run.rejected.values() if r not in other_sense]
            if not run.holds:  # near-misses: one per word of the post, the first, closest
                for miss in run.near_misses if self.near_misses else ():
                    said = miss.split("' ", 1)[0]
                    if not any(m.split(": ", 1)[1].startswith(said) for m in result.near_misses):
                        result.near_misses.append(f"search {self.search.id}: {miss}")
                continue
            best = max(run.hits, key=lambda h: h.score, default=None)
            score = best.score if best is not None else 100.0
            if result.matched and score <= result.score:
                continue
            result.matched, result.score = True, score
            result.evidence = [self._hit_evidence(h) for h in _distinct(run.hits)]
            if id(node) not in self.kinds and not isinstance(node, QueryTerm):
                query = self.search.query or ""
                result.evidence.append(
                    f"search {self.search.id}: query {_written(node, query)} holds"
                )
            if best is not None:
                result.written = best.written
                result.term = self.kinds.get(id(best.term)) or Term(
                    best.term.written, " ".join(w.text for w in best.term.words), "query"
                )
        if not result.matched:
            if other_sense:
                result.evidence.append(f"search {self.search.id}: rejected, {other_sense[0]}")
            return result
        result.near_misses = []
        for node in self.restrictions:
            if not self.evaluator.run(node, post, tokens, fetched_by, candidates).holds:
                result.matched = False
                result.evidence.append(
                    f"search {self.search.id}: rejected, the query needs "
                    f"{_written(node, self.search.query or '')}"
                )
                return result
        reason = self._rejection(text)
        if reason:
            result.matched = False
            result.evidence.append(f"search {self.search.id}: rejected, {reason}")
        return result

    def _possible_alternatives(self, candidates: Candidates) -> list[Node]:
        """The alternatives that may hold on the post, in their order."""
        chosen = set(self._always)
        for term_id in candidates.possible:
            chosen.update(self._alternatives_of.get(term_id, ()))
        return [self.alternatives[n] for n in sorted(chosen)]

    def _check(self, term: QueryTerm, tokens: Tokens) -> str | None:
        """An exact occurrence that is not what the search means: an acronym ('OBA') not in
        capitals, or (local searches) every use of a generic word in another sense."""
        plain = self.kinds.get(id(term))
        original = plain.text if plain is not None else _unquoted(term.written)
        if not _acronym_as_written(original, tokens.raw):
            return f"'{original}' is only an acronym in capitals"
        if self.search.kind == "local" and not term.wildcard and not term.emoji:
            last = term.words[-1].text
            return self.sense(original, last, tokens.raw)
        return None

    def _describe(self, term: QueryTerm) -> str:
        plain = self.kinds.get(id(term))
        return f"{plain.kind} '{plain.text}'" if plain is not None else f"query term {term.written}"

    def _hit_evidence(self, hit: Hit) -> str:
        plain = self.kinds.get(id(hit.term))
        if plain is not None:
            return self._evidence(plain, hit.written, hit.score)
        where = f"search {self.search.id}"
        if hit.how in ("exact", "mention"):
            return f"{where}: text has {hit.written!r} (query term {hit.term.written})"
        return f"{where}: '{hit.written}' → query term {hit.term.written} ({hit.how})"

    def _evidence(self, term: Term, written: str, score: float) -> str:
        where = f"search {self.search.id}"
        if written.startswith("@"):
            return f"{where}: text mentions {written} (handle '{term.text}')"
        how = "exact" if score >= 100 else f"fuzzy {score:.0f}"
        if written == term.folded:
            return f"{where}: text has {term.kind} '{term.text}' ({how})"
        return f"{where}: '{written}' → {term.kind} '{term.text}' ({how})"

    def _rejection(self, text: Text) -> str | None:
        """The first `exclude` phrase the text has, else (local searches) the first cue of
        another sense; one pattern tells first whether there is any."""
        if self._excluded is not None and self._excluded.search(text.padded):
            for original, folded in self.exclude:
                if text.has(folded):
                    return f"excluded by '{original}'"
        other = self._other_sense if self.search.kind == "local" else None
        if other is not None and other.search(text.padded):
            for original, folded in self.sense_cues:
                if text.has(folded):
                    return f"another sense of the word ('{original}')"
        return None


def _any_phrase(phrases: Sequence[str]) -> re.Pattern[str] | None:
    """A pattern finding any of some folded phrases as whole words in `Text.padded`."""
    if not phrases:
        return None
    return re.compile("(?= (?:" + "|".join(re.escape(p) for p in phrases) + ") )")


def _plain(text: str) -> QueryTerm | None:
    """A term of the first version (a name, an alias, an entry of `terms`): a phrase as
    written, no operators; emoji only when it has no words."""
    words = fold_words(text)
    if words:
        return QueryTerm(text, tuple(Word(w) for w in words), phrase=len(words) > 1)
    emoji = "".join(ch for ch in emoji_key(text) if is_emoji(ch))
    if emoji:
        return QueryTerm(text, tuple(Word(ch) for ch in emoji), phrase=len(emoji) > 1, emoji=True)
    return None


def _unquoted(written: str) -> str:
    """'"de bieb"~1' → 'de bieb'; 'bieb*' → 'bieb'; '#bieb' → '#bieb'."""
    text = re.sub(r"~\d*$", "", written)
    return text.strip('"').rstrip("*")


def _written(node: Node, query: str) -> str:
    """The part of the query a node came from, for evidence."""
    part = " ".join(query[node.start : node.end].split())
    return part if part else "its terms"


def _distinct(hits: Sequence[Hit]) -> list[Hit]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for hit in hits:
        marker = (hit.start, hit.end, hit.term.written)
        if marker not in seen:
            seen.add(marker)
            out.append(hit)
    return out


def _acronym_as_written(original: str, raw: str) -> bool:
    """An acronym alias ('OBA', 'KB') counts only in capitals: 'Oba!' is someone's name."""
    original = original.strip()
    if not (original.isalpha() and original.isupper() and len(original) <= SHORT_TERM + 1):
        return True
    return re.search(rf"(?<!\w){re.escape(original)}(?!\w)", raw) is not None


#: `_sense_in_context` of some text with one `is_name`: (original, word, raw) → why not.
Sense = Callable[[str, str, str], "str | None"]


def remembered_sense(is_name: Callable[[str], bool]) -> Sense:
    """`_sense_in_context` with `is_name` given, its last 256 answers remembered: the local
    searches of several organisations ask it of one post. One per classifier, so a classifier
    replaced on a reload is not held by the answers (a module-wide cache would keep it)."""

    @lru_cache(maxsize=256)
    def sense(original: str, word: str, raw: str) -> str | None:
        return _sense_in_context(original, word, raw, is_name)

    return sense


def _sense_in_context(
    original: str, word: str, raw: str, is_name: Callable[[str], bool]
) -> str | None:
    """Why every use of a generic term in the text is another sense, or None if one is not.

    A public library is 'de bieb', 'the library', 'naar de bibliotheek', 'bibliotheek Leusden'.
    Other senses show in the words around it: a compound ('Lightroom-bibliotheek'), a
    possessive ('mijn bibliotheek', 'opa's bibliotheek'), a title ('The Midnight Library'),
    scare quotes ("'de bibliotheek'"), or in English a noun before it ('GOG library').
    """
    pattern = re.compile(rf"(?<!\w){re.escape(original.strip())}(?!\w)", re.IGNORECASE)
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
