"""The decision for one post: match → locate → score, then what to alert and to whom.

`Classifier.decide` is pure (no network, no database), so `listener classify`, `listener try` and
the daemon all decide the same way. For each saved search that applies to the post it checks the
terms; a brand match ties the post to that organisation (and to a branch when the post can be
located in one of its areas); a local match counts only when the post lies in a branch's area.
The best candidate wins: a brand match over a local one, then the higher match score, then the
nearer branch. `Classifier.alert_for` turns a decision into an alert and its receivers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from listener.alert import AlertMessage, branch_choices
from listener.branch import GENERIC_NAME_WORDS, BranchResolver, branch_names, searchable
from listener.config import Config
from listener.config.model import Search
from listener.geo.areas import Area, AreaIndex, BranchHit, load_area
from listener.geo.gazetteer import Gazetteer, default_gazetteer
from listener.geo.locate import Geocode, Located, Prepared, place, prepare
from listener.match import SearchMatcher, Term, Text, normal_handle, remembered_sense
from listener.metrics import Metrics, StageTimer
from listener.post import Post
from listener.presearch import Presearcher
from listener.route import route
from listener.text import fold
from listener.urgency.context import AuthorHistory, Context
from listener.urgency.hours import context_for
from listener.urgency.privacy import mask
from listener.urgency.score import score_post

if TYPE_CHECKING:  # the store (SQLAlchemy) is not needed to decide
    from listener.store import Decided, NewAlert

#: The author's history with an organisation before a moment: (handle, org id, before).
HistoryLookup = Callable[[str, str, datetime], AuthorHistory]

CONSOLE_FALLBACK = "console"
_UNTIMED = StageTimer(None)  # without metrics a timer keeps nothing: one does for every post


@dataclass(slots=True)
class Decision:
    post_id: str
    org: str | None = None
    branch: str | None = None
    query: str | None = None
    urgency: str = "none"
    score: float = 0.0
    labels: list[str] = field(default_factory=list)
    distance_km: float | None = None
    evidence: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    near_misses: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The decision as `decision.schema.json` has it."""
        return {
            "id": self.post_id,
            "org": self.org,
            "branch": self.branch,
            "query": self.query,
            "urgency": self.urgency,
            "score": self.score,
            "labels": self.labels,
            "distance_km": self.distance_km,
            "evidence": self.evidence + self.reasons,
        }


@dataclass(slots=True)
class _Candidate:
    rank: tuple[float, ...]
    search_id: str
    org: str
    located: Located
    branch: str | None
    distance_km: float | None


@dataclass(frozen=True, slots=True)
class _Group:
    """Local searches with the same terms, of several organisations (`Classifier._local_groups`)."""

    first: int  # id() of the first member's matcher
    label: str  # how rejections name them
    index: AreaIndex  # the branch areas of all their organisations
    search_of: dict[str, str]  # organisation → its search in the group


def _relabel(lines: list[str], search_id: str, label: str) -> list[str]:
    """Evidence a search's matcher wrote ('search X: …') as another search's, or a group's."""
    if label == search_id:
        return lines
    before, after = f"search {search_id}: ", f"search {label}: "
    return [after + line[len(before) :] if line.startswith(before) else line for line in lines]


class Classifier:
    def __init__(
        self,
        config: Config,
        gazetteer: Gazetteer | None = None,
        geocode: Geocode | None = None,
        *,
        presearch: bool = True,
        near_misses: bool | None = None,
    ) -> None:
        """`presearch=False` verifies every search on every post: the reference path the fast
        one is tested against (`listener.presearch`), and what `listener try` explains with, so
        near-misses of searches the presearch rules out still show. `near_misses` (default: on
        the reference path only) fills `Decision.near_misses`; the daemon keeps none, and
        looking for them costs time on every post with a search term."""
        self.config = config
        self.near_misses = not presearch if near_misses is None else near_misses
        self.gazetteer = gazetteer or default_gazetteer()
        self.geocode = geocode
        self.names = self._library_names(config)
        self.name_words = {  # 'coda' of 'CODA Apeldoorn'; not 'bibliotheek' or 'de'
            w for n in self.names for w in n.split() if w not in GENERIC_NAME_WORDS and len(w) > 2
        }
        self._sense = remembered_sense(self.is_name)  # one memory for all the matchers
        self.matchers = [self._matcher(s) for s in config.searches]
        self.areas_by_org: dict[str, list[Area]] = {
            org.id: [
                Area(
                    org.id,
                    b.id,
                    b.name,
                    b.lat,
                    b.lon,
                    b.radius_km,
                    polygon=load_area(b.area, config.queries_dir) if b.area else None,
                )
                for b in org.branches
            ]
            for org in config.organisations.values()
        }
        self.all_areas = [a for areas in self.areas_by_org.values() for a in areas]
        self.index_by_org = {org: AreaIndex(areas) for org, areas in self.areas_by_org.items()}
        self.all_index = AreaIndex(self.all_areas)
        self._no_areas = AreaIndex(())
        self.group_of = self._local_groups()
        # A group of local searches is decided by its first member: only those are indexed.
        self._indexed = [
            i
            for i, matcher in enumerate(self.matchers)
            if (group := self.group_of.get(id(matcher))) is None or group.first == id(matcher)
        ]
        self.presearcher = (
            Presearcher([self.matchers[i] for i in self._indexed]) if presearch else None
        )
        self.branches = BranchResolver(config.organisations, self.index_by_org, self.gazetteer)
        self.org_of_handle = {
            normal_handle(h): org.id for org in config.organisations.values() for h in org.handles
        }

    def _local_groups(self) -> dict[int, _Group]:
        """Local searches of several organisations that look for the same words ('de bieb',
        'bibliotheek'), as each organisation of a regional service or a national installation
        has one: matched once, and located once in all their organisations' branch areas, the
        post then being the search of the organisation whose branch holds it. By matcher id."""
        by_terms: dict[tuple[object, ...], list[SearchMatcher]] = {}
        for matcher in self.matchers:
            search = matcher.search
            if search.kind != "local" or not search.org:
                continue
            same = (
                tuple(t.folded for t in matcher.terms),
                search.query,
                tuple(search.exclude),
                tuple(search.sense_cues),
                search.fuzzy,
                tuple(sorted(search.sources)),
                tuple(sorted(search.languages)),
            )
            by_terms.setdefault(same, []).append(matcher)
        groups: dict[int, _Group] = {}
        for members in by_terms.values():
            orgs = {m.search.org: m.search.id for m in members if m.search.org}
            if len(members) < 2 or len(orgs) < len(members):
                continue  # alone, or two searches of one organisation: each on its own
            first = members[0].search
            group = _Group(
                first=id(members[0]),
                label=f"{first.id} (and {len(members) - 1} more local searches with its terms)",
                index=AreaIndex([a for org in orgs for a in self.areas_by_org.get(org, ())]),
                search_of=orgs,
            )
            for matcher in members:
                groups[id(matcher)] = group
        return groups

    def _library_names(self, config: Config) -> set[str]:
        """Folded names of the organisations and their branches."""
        names = set()
        for org in config.organisations.values():
            names |= {fold(n) for n in (org.name, *org.aliases)}
            names |= set(branch_names(org))
        return names

    def is_name(self, words: str) -> bool:
        """A place or a library's own name: 'Leusden', 'Den Bosch', 'CODA', 'Eemhuis'."""
        folded = fold(words)
        return bool(folded) and (
            folded in self.names
            or folded in self.name_words
            or bool(self.gazetteer.candidates(words))
        )

    def _matcher(self, search: Search) -> SearchMatcher:
        """A brand search also finds its branches' own names ('Eemhuis', 'dok Zuid') when they
        cannot pass for a word (`searchable`) and are not places, nor part of the place the
        branch is named after ('pinte' of 'Bibliotheek De Pinte'): places are the locate
        stage's job."""
        org = self.config.organisations.get(search.org) if search.org else None
        extra = []
        if search.kind == "brand" and org is not None:
            written = {b.id: b.name for b in org.branches}
            for name, branch in branch_names(org).items():
                if searchable(name) and not self._in_a_place(name, written[branch]):
                    extra.append(Term(name, name, "branch"))
        return SearchMatcher(search, org, self.is_name, extra, self.near_misses, self._sense)

    def _in_a_place(self, name: str, branch_name: str) -> bool:
        """Whether a branch's distinctive words are a place ('leusden') or part of one its
        full name holds ('gillis waas' of 'Bib Sint-Gillis-Waas' in Sint-Niklaas's branches)."""
        if self.gazetteer.candidates(name):
            return True
        padded = f" {name} "
        return any(
            padded in f" {fold(m.written)} " for m in self.gazetteer.find_in_text(branch_name)
        )

    def candidates(self, text: str) -> list[SearchMatcher]:
        """The matchers to verify on a post's text, in their order: those the presearcher
        finds it can match (for most posts none; one per group of local searches), or every
        one on the reference path."""
        if self.presearcher is None:
            return self.matchers
        found = self.presearcher.candidates(text)
        if not found:
            return []  # most posts
        indexed, matchers = self._indexed, self.matchers
        return [matchers[indexed[i]] for i in found]

    def decide(
        self,
        post: Post,
        fetched_by: str | None = None,
        now: datetime | None = None,
        history: HistoryLookup | None = None,
        metrics: Metrics | None = None,
    ) -> Decision:
        """Match, locate and score one post. `now` is when the decision is made (default: when
        the post was written); `history` looks up the author's earlier posts about the
        organisation (the daemon's store; None offline); `metrics` times the stages."""
        if metrics is None:  # offline, and the benchmark: nothing timed
            stages = _UNTIMED
            matchers = self.candidates(post.text)
            if not matchers:
                return Decision(post_id=post.id)  # most posts
        else:
            stages = StageTimer(metrics)
            with stages.stage("match"):
                matchers = self.candidates(post.text)
            if not matchers:
                stages.observe()
                return Decision(post_id=post.id)
        with stages.stage("match"):
            text = Text.of(post.text)
        decision = Decision(post_id=post.id)
        prepared: Prepared | None = None  # the post's places, read once for every index
        located_cache: dict[object, Located] = {}

        def located_in(where: object, index: AreaIndex, nearest: bool = True) -> Located:
            nonlocal prepared
            if where not in located_cache:
                with stages.stage("locate"):
                    if prepared is None:
                        prepared = prepare(post, self.gazetteer, self.geocode)
                    located_cache[where] = place(prepared, index, self.near_misses, nearest)
            return located_cache[where]

        candidates: list[_Candidate] = []
        done: set[int] = set()  # groups of local searches already decided
        for matcher in matchers:
            search = matcher.search
            group = self.group_of.get(id(matcher))
            if group is not None:
                if group.first in done:
                    continue
                done.add(group.first)
            with stages.stage("match"):
                if not matcher.applies_to(post, fetched_by):
                    continue
                result = matcher.match(post, text, fetched_by)
            label = search.id if group is None else group.label
            decision.near_misses += _relabel(result.near_misses, search.id, label)
            if not result.matched:
                decision.evidence += _relabel(result.evidence, search.id, label)  # rejections
                continue
            if group is not None:
                # Outside every branch area of a group, the nearest of its organisations'
                # branches (hundreds) is not looked up: the post is no candidate, and the areas
                # it lies just outside are what its near-misses show.
                located = located_in(group.first, group.index, nearest=False)
            elif search.org:
                located = located_in(search.org, self.index_by_org.get(search.org, self._no_areas))
            else:
                located = located_in(None, self.all_index)
            hit = located.branch
            if search.kind == "brand":
                assert search.org is not None
                candidates.append(
                    _Candidate(
                        (1, result.score, -(hit.distance_km if hit else 1e9)),
                        search.id,
                        search.org,
                        located,
                        hit.area.branch_id if hit else None,
                        round(hit.distance_km, 2) if hit else None,
                    )
                )
                decision.evidence += result.evidence
                if hit is None:  # branch unknown: a place just outside an area is worth seeing
                    decision.near_misses += [
                        m for m in located.near_misses if m not in decision.near_misses
                    ]
            elif hit is not None:
                # in a group, the search of the organisation whose branch holds the post
                search_id = search.id if group is None else group.search_of[hit.area.org_id]
                candidates.append(
                    _Candidate(
                        (0, result.score, -hit.distance_km),
                        search_id,
                        hit.area.org_id,
                        located,
                        hit.area.branch_id,
                        round(hit.distance_km, 2),
                    )
                )
                decision.evidence += _relabel(result.evidence, search.id, search_id)
            else:
                decision.evidence += _relabel(result.evidence, search.id, label)
                decision.evidence.append(
                    f"search {label}: rejected, not located in any branch's area"
                )
                decision.evidence += located.evidence
                decision.near_misses += located.near_misses
        own = self._own_org(post)
        if own is not None and any(c.org == own for c in candidates):
            candidates = [c for c in candidates if c.org != own]
            decision.evidence.append(f"posted by {own}'s own account: not an alert for {own}")
        if not candidates:
            stages.observe()
            return decision
        best = max(candidates, key=lambda c: c.rank)
        decision.org, decision.branch, decision.query = best.org, best.branch, best.search_id
        decision.distance_km = best.distance_km
        decision.evidence += [e for e in best.located.evidence if e not in decision.evidence]
        profile = post.author.location if post.author else None
        with stages.stage("locate"):
            choice = self.branches.choose(
                best.org, text, best.located, best.branch, best.distance_km, profile
            )
        decision.branch, decision.distance_km = choice.branch, choice.distance_km
        decision.evidence += choice.evidence
        with stages.stage("score"):
            context = self._context(post, decision.org, decision.branch, now, history)
            urgency = score_post(post, self.config.urgency, context)
        decision.urgency, decision.score = urgency.level, urgency.score
        decision.labels, decision.reasons = urgency.labels, urgency.reasons
        stages.observe()
        return decision

    def _context(
        self,
        post: Post,
        org_id: str,
        branch: str | None,
        now: datetime | None,
        history: HistoryLookup | None,
    ) -> Context:
        """The time, opening hours, holiday and author history the score takes."""
        when = now or post.created_at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        handle = post.author.handle if post.author else None
        earlier = history(handle, org_id, when) if history and handle else None
        org = self.config.organisations[org_id]
        holidays = self.config.urgency.holidays
        return context_for(when, self.config.main.timezone, org, branch, holidays, earlier)

    def areas_containing(self, lat: float, lon: float) -> list[BranchHit]:
        """Every branch area holding the point, nearest branch first."""
        return self.all_index.containing(lat, lon)

    def _own_org(self, post: Post) -> str | None:
        """The organisation whose own account wrote the post, if any."""
        handle = post.author.handle if post.author else None
        return self.org_of_handle.get(normal_handle(handle)) if handle else None

    def alert_for(
        self, post: Post, decision: Decision, active: Collection[str] | None = None
    ) -> NewAlert | None:
        """The alert for a decision and the receivers it goes to, or None when nothing routes it."""
        if decision.org is None or decision.query is None:
            return None
        receivers = route(
            self.config.routes,
            org=decision.org,
            search=decision.query,
            level=decision.urgency,
            branch=decision.branch,
            labels=decision.labels,
            source=post.source,
            default=self.config.default_receiver,
        )
        if not receivers:
            return None
        if active is not None:
            usable = [r for r in receivers if r in active]
            receivers = usable or [CONSOLE_FALLBACK]
        org = self.config.organisations[decision.org]
        branch = next((b for b in org.branches if b.id == decision.branch), None)
        # Personal data posted in public is not copied into alerts: the team sees its kind
        # ('[phone number]') and opens the post itself to ask for its removal.
        masked = mask(post.text, self.config.urgency.privacy)
        message = AlertMessage(
            alert_id=0,
            post=replace(post, text=masked) if masked != post.text else post,
            org_id=org.id,
            org_name=org.name,
            branch_id=branch.id if branch else None,
            branch_name=branch.name if branch else None,
            search_id=decision.query,
            level=decision.urgency,
            score=decision.score,
            labels=list(decision.labels),
            reasons=list(decision.reasons),
            evidence=list(decision.evidence),
            distance_km=decision.distance_km,
            branch_choices=branch_choices(org, branch),
        )
        from listener.store import NewAlert

        return NewAlert(message, receivers)

    def process(
        self,
        post: Post,
        fetched_by: str | None,
        active: Collection[str] | None,
        now: datetime | None = None,
        history: HistoryLookup | None = None,
        metrics: Metrics | None = None,
    ) -> Decided:
        decision = self.decide(post, fetched_by, now, history, metrics)
        from listener.store import Decided

        return Decided(post, decision.to_json(), self.alert_for(post, decision, active))
