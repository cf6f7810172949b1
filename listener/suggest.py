"""Suggest: turn 'not relevant' feedback into exclusion terms and sense cues, as a diff to review.

When the team marks alerts as not relevant, the rejected posts often share a word the wanted
posts never use ('vacature', 'Audible bibliotheek'). For each search with such feedback,
`suggest` looks for folded words and two-word phrases that occur in its rejected posts and in
none of the posts it alerted that nobody rejected (relevant, wrong branch or not judged). The
search's own terms and names, the places it relies on (towns, branch names, places inside its
branch areas) and very common words (wordfreq) are never candidates. For a local search, a word
right next to the generic word ('Audible bibliotheek', 'bieb app') becomes a `sense_cues`
entry; anything else an `exclude` entry.

Candidates are ranked by how many rejected posts they remove and picked greedily, each one
verified by deciding the stored posts again with a configuration that carries it (on top of the
ones picked before): a suggestion is proposed only when it removes at least `min_posts` rejected
posts and changes the decision of no post the team did not reject. The result is a unified diff
of the queries files, edited with tomlkit so comments and layout stay; nothing is ever written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Item, Table
from wordfreq import zipf_frequency

from listener.alert import AlertMessage
from listener.branch import branch_names
from listener.config import Config
from listener.config.model import Organisation, Search
from listener.geo.areas import AreaIndex
from listener.geo.gazetteer import Gazetteer
from listener.match import GENERIC_WORDS, handle_local
from listener.pipeline import Classifier
from listener.post import Post
from listener.store import Store
from listener.text import fold

Key = Literal["exclude", "sense_cues"]
#: Words at least this frequent (wordfreq's Zipf scale: 5 is once per 100,000 words) in one of
#: the posts' languages are too common to tell posts apart: 'de', 'niet', 'open', 'boek'.
COMMON_ZIPF = 5.0
#: Languages whose word frequencies are consulted, when the posts or the search name them.
LANGUAGES = frozenset({"nl", "en", "de", "fr"})
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One phrase to add to one list of one search, with what it did to the stored posts."""

    search_id: str
    key: Key
    phrase: str  # folded, as it goes into the file
    removes: tuple[str, ...] = ()  # rejected posts the search no longer finds with it
    drops: tuple[str, ...] = ()  # other posts whose decision it changes (proposed only if none)
    also_in: tuple[str, ...] = ()  # posts not rejected that contain it (then it is not tried)


@dataclass(slots=True)
class SearchSuggestions:
    """What the feedback on one search led to."""

    search: Search
    file: Path | None  # the queries file defining it
    rejected: list[str]  # rejected posts the search still finds
    handled: list[str]  # rejected posts the search no longer finds with the current config
    kept: int  # alerted posts of the search that nobody rejected
    proposed: list[Suggestion] = field(default_factory=list)
    not_proposed: list[Suggestion] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # rejected posts no proposal removes


@dataclass(frozen=True, slots=True)
class FileEdit:
    path: Path
    before: str
    after: str


@dataclass(slots=True)
class Report:
    since: datetime
    rejected_alerts: int  # alerts marked not-relevant since `since` (of the searches looked at)
    searches: list[SearchSuggestions] = field(default_factory=list)
    unknown_searches: list[str] = field(default_factory=list)  # feedback on searches gone since
    edits: list[FileEdit] = field(default_factory=list)

    @property
    def proposed(self) -> list[Suggestion]:
        return [s for result in self.searches for s in result.proposed]

    def summary(self, base: Path) -> list[str]:
        """The evidence, as `#` lines that `git apply` and `patch` skip before the diff."""
        lines = [
            f"# listener suggest: {self.rejected_alerts} alert(s) marked not-relevant since "
            f"{self.since:%Y-%m-%d %H:%M} UTC"
        ]
        for sid in self.unknown_searches:
            lines.append(f"# search {sid}: no longer in the configuration, skipped")
        for found in self.searches:
            where = f" ({_relative(found.file, base)})" if found.file else ""
            lines.append(
                f"# search {found.search.id}{where}: {len(found.rejected)} rejected post(s) it "
                f"still finds, {found.kept} alerted post(s) nobody rejected"
            )
            if found.handled:
                lines.append(
                    f"#   the search no longer finds (nothing to do): {_ids(found.handled)}"
                )
            for s in found.proposed:
                lines.append(
                    f'#   {s.key} + "{s.phrase}": removes {len(s.removes)} rejected post(s) '
                    f"({_ids(s.removes)}), drops {len(s.drops)} other post(s)"
                )
            for s in found.not_proposed:
                why = (
                    f"also in {len(s.also_in)} post(s) nobody rejected ({_ids(s.also_in)})"
                    if s.also_in
                    else f"would also drop {len(s.drops)} other post(s) ({_ids(s.drops)})"
                )
                lines.append(
                    f'#   not proposed: {s.key} + "{s.phrase}" '
                    f"(in {len(s.removes)} rejected post(s)): {why}"
                )
            if found.uncovered:
                count = len(found.uncovered)
                lines.append(
                    f"#   no suggestion for {count} rejected post(s): {_ids(found.uncovered)}"
                )
        return lines

    def diff(self, base: Path) -> str:
        """One unified diff of every edited file, with paths relative to `base` (a/…, b/…), so
        `git apply` or `patch -p1` run in `base` applies it."""
        return "".join(unified_diff(e.before, e.after, _relative(e.path, base)) for e in self.edits)


def suggest(
    config: Config,
    store: Store,
    *,
    since: datetime,
    search_id: str | None = None,
    min_posts: int = 2,
    gazetteer: Gazetteer | None = None,
) -> Report:
    """Suggestions for every search with 'not-relevant' feedback on alerts since `since` (or for
    `search_id` only). Reads the store; writes nothing. KeyError for an unknown `search_id`."""
    searches = {s.id: s for s in config.searches}
    if search_id is not None and search_id not in searches:
        raise KeyError(search_id)
    verdicts = {row.alert_id: row.verdict for row in store.feedback(since)}
    posts: dict[str, Post] = {post.id: post for post in store.posts_since(since)}
    rejected: dict[str, set[tuple[str, str]]] = {}  # search → {(post id, org)}
    kept: dict[str, set[str]] = {}  # search → alerted post ids nobody rejected
    for alert in store.alerts_since(since):
        if search_id is not None and alert.search != search_id:
            continue
        if alert.message:
            message = AlertMessage.from_json(alert.message)
            if message.follow_up is not None and message.follow_up.kind == "reach":
                continue  # the post's own alert again, grown: not one more post
            posts.setdefault(alert.post_id, message.post)
        if alert.post_id not in posts:
            continue
        if verdicts.get(alert.id or 0) == "not-relevant":
            rejected.setdefault(alert.search, set()).add((alert.post_id, alert.org))
        else:
            kept.setdefault(alert.search, set()).add(alert.post_id)
    report = Report(since, sum(len(r) for r in rejected.values()))
    if not rejected:
        return report
    run = _Run(config, Classifier(config, gazetteer), posts, min_posts)
    order = list(searches)
    for sid in sorted(rejected, key=lambda s: (order.index(s) if s in searches else len(order), s)):
        if sid not in searches:
            report.unknown_searches.append(sid)
            continue
        result = run.search(searches[sid], rejected[sid], kept.get(sid, set()))
        result.file = query_file_of(config, sid)
        report.searches.append(result)
    report.edits = edit_queries(config, report.proposed)
    return report


class _Run:
    """The posts, their decisions under the current configuration, and the checks of changes."""

    def __init__(
        self,
        config: Config,
        baseline: Classifier,
        posts: Mapping[str, Post],
        min_posts: int,
    ) -> None:
        self.config = config
        self.baseline = baseline
        self.posts = posts
        # Folded and padded, to look for a phrase the way the matcher's exclusions do
        self.padded = {post_id: f" {fold(post.text)} " for post_id, post in posts.items()}
        self.min_posts = max(1, min_posts)
        self._decided: dict[str, tuple[str | None, str | None]] = {}

    def decided(self, post_id: str) -> tuple[str | None, str | None]:
        """(org, search) under the current configuration."""
        if post_id not in self._decided:
            decision = self.baseline.decide(self.posts[post_id])
            self._decided[post_id] = (decision.org, decision.query)
        return self._decided[post_id]

    def search(
        self, search: Search, rejected: set[tuple[str, str]], alerted_kept: set[str]
    ) -> SearchSuggestions:
        live = sorted(p for p, org in rejected if self.decided(p) == (org, search.id))
        handled = sorted({p for p, _ in rejected} - set(live))
        rejected_ids = {p for p, _ in rejected}
        kept = sorted(alerted_kept - rejected_ids)
        result = SearchSuggestions(search, None, live, handled, len(kept))
        if not live:
            return result
        vocabulary = _Vocabulary(search, self.config, self.baseline, [self.posts[p] for p in live])
        covers: dict[tuple[Key, str], set[str]] = {}
        for post_id in live:
            for candidate in vocabulary.candidates(self.posts[post_id].text):
                covers.setdefault(candidate, set()).add(post_id)
        blocked: list[Suggestion] = []
        for candidate in list(covers):
            key, phrase = candidate
            also_in = tuple(p for p in kept if f" {phrase} " in self.padded[p])
            if also_in:
                removes = tuple(sorted(covers[candidate]))
                blocked.append(Suggestion(search.id, key, phrase, removes, also_in=also_in))
                del covers[candidate]
        chosen: list[Suggestion] = []
        verified: dict[tuple[Key, str], int] = {}  # → how many were chosen when it was checked
        remaining = set(live)
        while True:
            eligible = [
                c for c in covers if covers[c] & remaining and len(covers[c]) >= self.min_posts
            ]
            if not eligible:
                break
            best = min(eligible, key=lambda c: vocabulary.rank(c, covers[c], remaining))
            if verified.get(best) != len(chosen):
                verified[best] = len(chosen)
                checked = self._check(search, rejected, chosen, *best)
                if checked.drops:
                    blocked.append(checked)
                    del covers[best]
                else:
                    covers[best] = set(checked.removes)
                continue  # rank again with what it really removes
            chosen.append(Suggestion(search.id, best[0], best[1], tuple(sorted(covers.pop(best)))))
            remaining -= set(chosen[-1].removes)
        result.proposed = chosen
        result.uncovered = sorted(remaining)
        blocked.sort(
            key=lambda s: (-len(s.removes), s.key != "sense_cues", len(s.phrase.split()), s.phrase)
        )
        for s in blocked:  # the best few, not 'koffie bij' after 'koffie' for the same posts
            if len(s.removes) < self.min_posts or len(result.not_proposed) == 3:
                continue
            if not any(
                t.removes == s.removes
                and (f" {t.phrase} " in f" {s.phrase} " or f" {s.phrase} " in f" {t.phrase} ")
                for t in result.not_proposed
            ):
                result.not_proposed.append(s)
        return result

    def _check(
        self,
        search: Search,
        rejected: set[tuple[str, str]],
        chosen: Sequence[Suggestion],
        key: Key,
        phrase: str,
    ) -> Suggestion:
        """Decide again, with the suggestion (and the ones chosen before) in the search, every
        stored post containing the phrase: which rejected posts it removes, which others change."""
        changed = with_suggestions(self.config, [*chosen, Suggestion(search.id, key, phrase)])
        classifier = Classifier(changed, self.baseline.gazetteer, self.baseline.geocode)
        removes, drops = [], []
        for post_id, padded in self.padded.items():
            if f" {phrase} " not in padded:
                continue
            before = self.decided(post_id)
            decision = classifier.decide(self.posts[post_id])
            if (decision.org, decision.query) == before:
                continue
            org, query = before
            if query == search.id and (post_id, org) in rejected:
                if decision.org != org:  # not when another search now alerts the same team
                    removes.append(post_id)
            else:
                drops.append(post_id)
        return Suggestion(search.id, key, phrase, tuple(sorted(removes)), tuple(sorted(drops)))


class _Vocabulary:
    """Which words of a search's rejected posts may become a suggestion, and how they rank."""

    def __init__(
        self, search: Search, config: Config, classifier: Classifier, rejected: Sequence[Post]
    ) -> None:
        self.search = search
        self.gazetteer = classifier.gazetteer
        orgs = _orgs_in_scope(search, config)
        self.index: AreaIndex = (
            classifier.index_by_org.get(search.org, AreaIndex(()))
            if search.org
            else classifier.all_index
        )
        phrases = [*search.terms, search.query or ""]
        for org in orgs:
            phrases += [org.name, *org.aliases, *(handle_local(h) for h in org.handles)]
            phrases += [b.name for b in org.branches] + [b.town or "" for b in org.branches]
            phrases += list(branch_names(org))
        self.protected_phrases = {fold(p) for p in phrases if fold(p)}
        self.protected_words = {w for p in self.protected_phrases for w in p.split()}
        self.existing = {fold(p) for p in (*search.exclude, *search.sense_cues)}
        self.generic: set[str] = set()  # the words a sense cue sits next to
        if search.kind == "local":
            self.generic = {fold(t).split()[-1] for t in search.terms if fold(t)}
            self.generic |= set(fold(search.query or "").split()) & set(GENERIC_WORDS)
        langs = {lang.lower().split("-")[0] for lang in search.languages}
        if not langs:
            langs = {"nl"} | {(p.lang or "").lower().split("-")[0] for p in rejected}
        self.languages = sorted(langs & LANGUAGES) or ["nl"]
        self._zipf: dict[str, float] = {}
        self._place: dict[str, bool] = {}

    def zipf(self, word: str) -> float:
        if word not in self._zipf:
            self._zipf[word] = max(zipf_frequency(word, lang) for lang in self.languages)
        return self._zipf[word]

    def informative(self, word: str) -> bool:
        """Neither very common, nor one of the search's own words, nor a place it relies on."""
        return (
            len(word) >= 2
            and not word.isdigit()
            and word not in self.protected_words
            and self.zipf(word) < COMMON_ZIPF
            and not self.relied_on_place(word)
        )

    def relied_on_place(self, words: str) -> bool:
        """A place inside one of the search's branch areas ('Leusden', 'Hooglanderveen')."""
        if words not in self._place:
            self._place[words] = any(
                self.index.inside(p.lat, p.lon) for p in self.gazetteer.candidates(words)
            )
        return self._place[words]

    def candidates(self, raw: str) -> set[tuple[Key, str]]:
        """The candidate (list, phrase) pairs of one post."""
        words = fold(_URL.sub(" ", raw)).split()
        found: set[tuple[Key, str]] = set()
        for word in words:
            if word not in self.generic and self.informative(word):
                found.add(("exclude", word))
        for first, second in pairwise(words):
            phrase = f"{first} {second}"
            if (first in self.generic) != (second in self.generic):  # 'audible bibliotheek'
                other = second if first in self.generic else first
                if self.informative(other):
                    found.add(("sense_cues", phrase))
            elif (
                not (first in self.generic or second in self.generic)
                and not ({first, second} & self.protected_words)
                and (self.informative(first) or self.informative(second))
                and not self.relied_on_place(phrase)
            ):
                found.add(("exclude", phrase))
        return {
            (key, phrase)
            for key, phrase in found
            if phrase not in self.existing
            and not any(f" {phrase} " in f" {p} " for p in self.protected_phrases)
        }

    def rank(
        self, candidate: tuple[Key, str], cover: set[str], remaining: set[str]
    ) -> tuple[Any, ...]:
        """Most rejected posts still left first, then most in all; a sense cue before an
        exclusion, one word before two, the rarer word first."""
        key, phrase = candidate
        rarity = min(self.zipf(w) for w in phrase.split() if w not in self.generic)
        return (
            -len(cover & remaining),
            -len(cover),
            key != "sense_cues",
            len(phrase.split()),
            rarity,
            phrase,
        )


def _orgs_in_scope(search: Search, config: Config) -> list[Organisation]:
    if search.org is not None:
        org = config.organisations.get(search.org)
        return [org] if org else []
    return list(config.organisations.values())


def with_suggestions(config: Config, suggestions: Iterable[Suggestion]) -> Config:
    """The configuration with the suggestions added to their searches (nothing is written)."""
    added: dict[str, dict[Key, list[str]]] = {}
    for s in suggestions:
        added.setdefault(s.search_id, {}).setdefault(s.key, []).append(s.phrase)
    searches = []
    for search in config.searches:
        extra = added.get(search.id)
        if extra:
            search = search.model_copy(
                update={key: [*getattr(search, key), *phrases] for key, phrases in extra.items()}
            )
        searches.append(search)
    return replace(config, searches=searches)


# --- the queries files ---------------------------------------------------------------------------


def _query_files(config: Config) -> list[Path]:
    return [f for f in config.files if f.suffix == ".toml" and f.parent == config.queries_dir]


def _search_tables(doc: tomlkit.TOMLDocument) -> Iterator[Table | InlineTable]:
    found = doc.get("searches")
    if isinstance(found, AoT | Array):
        for item in found:
            if isinstance(item, Table | InlineTable):
                yield item


def query_file_of(config: Config, search_id: str) -> Path | None:
    """The queries file where `[[searches]]` with this id is defined."""
    for path in _query_files(config):
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
        if any(table.get("id") == search_id for table in _search_tables(doc)):
            return path
    return None


def edit_queries(config: Config, suggestions: Sequence[Suggestion]) -> list[FileEdit]:
    """The queries files with the suggestions added, comments and layout kept (tomlkit)."""
    wanted: dict[str, list[Suggestion]] = {}
    for s in suggestions:
        wanted.setdefault(s.search_id, []).append(s)
    edits = []
    for path in _query_files(config) if wanted else ():
        before = path.read_text(encoding="utf-8")
        doc = tomlkit.parse(before)
        changed = False
        for table in _search_tables(doc):
            for s in wanted.get(str(table.get("id")), []):
                _add(table, s.key, s.phrase)
                changed = True
        if changed:
            edits.append(FileEdit(path, before, tomlkit.dumps(doc)))
    return edits


def _add(table: Table | InlineTable, key: Key, phrase: str) -> None:
    """Append to the list, or add the key after the search's last key (not after the comment
    or blank line that introduces the next search)."""
    existing = table.get(key)
    if isinstance(existing, Array):
        if all(fold(str(x)) != phrase for x in existing):
            existing.append(phrase)
        return
    if isinstance(table, InlineTable):
        table[key] = [phrase]
        return
    item = tomlkit.item([phrase])
    last = list(table.keys())[-1]
    before = table.value.item(last)
    if isinstance(before, Item):
        item.trivia.indent = before.trivia.indent
    # tomlkit has no public "insert after"; `add` would land behind the next search's comment.
    # tomlkit is pinned below 1.0 and tests/test_suggest.py applies the resulting diff.
    table.value._insert_after(last, key, item)


def unified_diff(before: str, after: str, path: str) -> str:
    """A unified diff that `git apply` and `patch -p1` accept, also for a file without a final
    newline."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def apply_dir(config: Config, cwd: Path) -> Path:
    """Where the diff's paths start: the working directory when the queries are under it, else
    the config's folder, else the queries folder itself."""
    queries = config.queries_dir.resolve()
    for base in (cwd.resolve(), config.base_dir.resolve()):
        if queries.is_relative_to(base):
            return base
    return queries


def _ids(post_ids: Sequence[str], show: int = 3) -> str:
    """A few post ids, and how many more."""
    more = len(post_ids) - show
    return ", ".join(post_ids[:show]) + (f", … {more} more" if more > 0 else "")


def _relative(path: Path, base: Path) -> str:
    return path.resolve().relative_to(base.resolve()).as_posix()
