"""Backtest: how well listener ties posts to organisations and branches, against a truth file.

A truth file has one JSON object per line: `{"id", "org", "branch", ...}` (org and branch null
when the post is about none of the organisations). Every system is scored the same way, over
(organisation, post) pairs: a true positive is the right organisation given for a post, a false
positive is any other organisation given for it, a miss is a post whose organisation was not
given. Branch level is scored the same way over the answers that name a branch: a named branch
that is wrong (or named where the truth has none) is a false positive, a branch the truth names
and the answer does not is a miss. Branch accuracy is counted on the posts tied to the right
organisation (null = null counts as right: "somewhere in Apeldoorn, branch unknown" is a
correct answer).

A truth may also say only which organisations a post is NOT about (`not_orgs`, from feedback
that an alert was not relevant): an answer naming one of them is a false positive, any other
answer is not scored, as what the post is about instead is unknown.

A truth line may also give the post's `urgency` (critical, high, normal, low, or none for a post
about no organisation). Then listener's levels are scored too (`LevelScores`): a confusion
matrix of true against given level ('none' when listener ties the post to no organisation),
recall of critical, the share of exact levels on the posts about an organisation, how many
critical posts were given a level two or more below, and Spearman's rank correlation of the
score with the true level. Lines without `urgency` are skipped there.

Two baselines run on the same posts, as the commercial tools work:
- keyword-only: every post that contains a search term exactly (name, alias, @handle or generic
  term). A brand term goes to its organisation; a generic term of a search without an
  organisation goes to every organisation, as each team's own keyword search would show it.
- radius-only: a post containing a search term whose own coordinates lie in a branch's area,
  tied to the nearest such branch; posts without coordinates are never found.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from listener.match import Text, handle_keys, mentions
from listener.pipeline import Classifier, Decision
from listener.post import Post, PostError


class BacktestError(ValueError):
    """A posts or truth file that cannot be used, with file and line."""


@dataclass(frozen=True, slots=True)
class Truth:
    id: str
    org: str | None
    branch: str | None
    not_orgs: tuple[str, ...] = ()  # with org None: only known not to be about these
    urgency: str | None = None  # critical, high, normal, low or none; None: not judged


@dataclass(frozen=True, slots=True)
class Answer:
    """What one system said about one post."""

    orgs: tuple[str, ...]
    branch: str | None = None
    evidence: tuple[str, ...] = ()


@dataclass(slots=True)
class Scores:
    true_positives: int = 0
    false_positives: int = 0
    misses: int = 0
    branch_right: int = 0
    branch_total: int = 0
    branch_true_positives: int = 0
    branch_false_positives: int = 0
    branch_misses: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.misses
        return self.true_positives / wanted if wanted else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def branch_precision(self) -> float:
        found = self.branch_true_positives + self.branch_false_positives
        return self.branch_true_positives / found if found else 0.0

    @property
    def branch_recall(self) -> float:
        wanted = self.branch_true_positives + self.branch_misses
        return self.branch_true_positives / wanted if wanted else 0.0

    @property
    def branch_f1(self) -> float:
        p, r = self.branch_precision, self.branch_recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def branch_accuracy(self) -> float:
        return self.branch_right / self.branch_total if self.branch_total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "misses": self.misses,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "branch_right": self.branch_right,
            "branch_total": self.branch_total,
            "branch_accuracy": round(self.branch_accuracy, 4),
            "branch_precision": round(self.branch_precision, 4),
            "branch_recall": round(self.branch_recall, 4),
            "branch_f1": round(self.branch_f1, 4),
        }


@dataclass(frozen=True, slots=True)
class Mistake:
    id: str
    kind: str  # false positive | miss | wrong organisation | wrong branch
    expected: str
    got: str
    text: str
    evidence: tuple[str, ...]


#: Levels from most to least urgent; 'none' is a post about no organisation.
LEVELS = ("critical", "high", "normal", "low")
LEVELS_AND_NONE = (*LEVELS, "none")


@dataclass(frozen=True, slots=True)
class LevelMiss:
    id: str
    expected: str
    got: str
    score: float
    text: str
    reasons: tuple[str, ...]


@dataclass(slots=True)
class LevelScores:
    """Listener's urgency levels against the truth's."""

    #: confusion[true level][listener's level] = posts, 'none' included on both sides.
    confusion: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t: dict.fromkeys(LEVELS_AND_NONE, 0) for t in LEVELS_AND_NONE}
    )
    about: int = 0  # posts about an organisation (by the truth) with a level
    exact: int = 0  # of which listener gave the same level
    critical: int = 0
    critical_found: int = 0
    critical_two_off: int = 0  # critical posts given normal, low or none
    spearman: float | None = None  # score against true level, posts about an organisation
    misses: list[LevelMiss] = field(default_factory=list)

    @property
    def exact_rate(self) -> float:
        return self.exact / self.about if self.about else 0.0

    @property
    def critical_recall(self) -> float:
        return self.critical_found / self.critical if self.critical else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "confusion": self.confusion,
            "about_an_organisation": self.about,
            "exact": self.exact,
            "exact_rate": round(self.exact_rate, 4),
            "critical": self.critical,
            "critical_found": self.critical_found,
            "critical_recall": round(self.critical_recall, 4),
            "critical_two_or_more_off": self.critical_two_off,
            "spearman": None if self.spearman is None else round(self.spearman, 4),
            "misses": [asdict(m) for m in self.misses],
        }


@dataclass(slots=True)
class Report:
    posts: int
    about_an_organisation: int
    systems: dict[str, Scores] = field(default_factory=dict)
    mistakes: list[Mistake] = field(default_factory=list)
    levels: LevelScores | None = None  # when the truth gives levels

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "about_an_organisation": self.about_an_organisation,
            "systems": {name: scores.as_dict() for name, scores in self.systems.items()},
            "mistakes": [asdict(m) for m in self.mistakes],
            "levels": self.levels.as_dict() if self.levels else None,
        }


def read_posts(path: Path) -> list[Post]:
    posts = []
    for number, line in _lines(path):
        try:
            posts.append(Post.from_dict(json.loads(line)))
        except (ValueError, PostError) as exc:
            raise BacktestError(f"{path}:{number}: {exc}") from None
    return posts


def read_truth(path: Path) -> dict[str, Truth]:
    truth: dict[str, Truth] = {}
    for number, line in _lines(path):
        try:
            data = json.loads(line)
            urgency = data.get("urgency")
            if urgency is not None and urgency not in LEVELS_AND_NONE:
                raise ValueError(f"urgency {urgency!r} is not one of {', '.join(LEVELS_AND_NONE)}")
            item = Truth(data["id"], data.get("org"), data.get("branch"), urgency=urgency)
        except (ValueError, KeyError, TypeError) as exc:
            raise BacktestError(f"{path}:{number}: not a truth line: {exc}") from None
        if item.id in truth:
            raise BacktestError(f"{path}:{number}: {item.id} has a truth line already")
        truth[item.id] = item
    return truth


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BacktestError(f"{path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def backtest(classifier: Classifier, posts: Sequence[Post], truth: Mapping[str, Truth]) -> Report:
    """Score listener and both baselines on the same posts."""
    missing = [p.id for p in posts if p.id not in truth]
    if missing:
        raise BacktestError(f"no truth for {len(missing)} post(s): {', '.join(missing[:5])}")
    report = Report(len(posts), sum(1 for p in posts if truth[p.id].org))
    decisions = {p.id: classifier.decide(p) for p in posts}
    keyword = KeywordBaseline(classifier)
    radius = RadiusBaseline(classifier)
    systems: dict[str, Callable[[Post], Answer]] = {
        "listener": lambda p: decision_answer(decisions[p.id]),
        "keyword-only": keyword.answer,
        "radius-only": radius.answer,
    }
    for name, answer_for in systems.items():
        scores, mistakes = score(posts, truth, answer_for)
        report.systems[name] = scores
        if name == "listener":
            report.mistakes += mistakes
    if any(truth[p.id].urgency is not None for p in posts):
        report.levels = score_levels(posts, truth, decisions)
    return report


def score_levels(
    posts: Iterable[Post], truth: Mapping[str, Truth], decisions: Mapping[str, Decision]
) -> LevelScores:
    """Listener's levels against the truth's, on the posts whose truth has a level."""
    scores = LevelScores()
    true_ranks: list[float] = []
    given: list[float] = []
    for post in posts:
        expected = truth[post.id].urgency if post.id in truth else None
        if expected is None:
            continue
        decision = decisions[post.id]
        got = decision.urgency if decision.org else "none"
        scores.confusion[expected][got] += 1
        if expected == "none":
            continue
        scores.about += 1
        true_ranks.append(len(LEVELS) - LEVELS.index(expected))
        given.append(decision.score if decision.org else 0.0)
        if got == expected:
            scores.exact += 1
        else:
            text = " ".join(post.text.split())[:160]
            scores.misses.append(
                LevelMiss(post.id, expected, got, decision.score, text, tuple(decision.reasons))
            )
        if expected == "critical":
            scores.critical += 1
            scores.critical_found += got == "critical"
            scores.critical_two_off += got in ("normal", "low", "none")
    scores.spearman = spearman(true_ranks, given)
    return scores


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the ranks, ties given their
    average rank; None with fewer than two pairs or when either side is all ties."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of the same length")
    if len(xs) < 2:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = average
        i = j + 1
    return out


def score(
    posts: Iterable[Post], truth: Mapping[str, Truth], answer_for: Callable[[Post], Answer]
) -> tuple[Scores, list[Mistake]]:
    """One system's scores and mistakes on the posts that have a truth (the others are skipped)."""
    scores, mistakes = Scores(), []
    for post in posts:
        if post.id in truth:
            mistakes += _score(scores, post, truth[post.id], answer_for(post))
    return scores, mistakes


def decision_answer(decision: Decision) -> Answer:
    """What listener's decision says, with its evidence and near-misses."""
    orgs = (decision.org,) if decision.org else ()
    return Answer(orgs, decision.branch, tuple(decision.evidence + decision.near_misses))


def _score(scores: Scores, post: Post, truth: Truth, answer: Answer) -> list[Mistake]:
    mistakes = []
    if truth.org is None and truth.not_orgs:
        named = tuple(org for org in answer.orgs if org in truth.not_orgs)
        if not named:
            return []  # about some other organisation, or none: unknown, so not scored
        answer = Answer(named, answer.branch, answer.evidence)

    def mistake(kind: str, expected: str, got: str) -> None:
        text = " ".join(post.text.split())[:160]
        mistakes.append(Mistake(post.id, kind, expected, got, text, answer.evidence))

    expected = _where(truth.org, truth.branch)
    right_branch = (
        answer.branch is not None and truth.org in answer.orgs and answer.branch == truth.branch
    )
    if right_branch:
        scores.branch_true_positives += 1
    elif answer.branch is not None:
        scores.branch_false_positives += 1
    if truth.branch is not None and not right_branch:
        scores.branch_misses += 1
    wrong = [org for org in answer.orgs if org != truth.org]
    scores.false_positives += len(wrong)
    if truth.org is not None and truth.org in answer.orgs:
        scores.true_positives += 1
        scores.branch_total += 1
        if answer.branch == truth.branch:
            scores.branch_right += 1
        else:
            mistake("wrong branch", expected, _where(truth.org, answer.branch))
    elif truth.org is not None:
        scores.misses += 1
        kind = "wrong organisation" if wrong else "miss"
        mistake(kind, expected, _where(wrong[0], answer.branch) if wrong else "nothing")
    elif wrong:
        mistake("false positive", "nothing", _where(wrong[0], answer.branch))
    return mistakes


def _where(org: str | None, branch: str | None) -> str:
    if org is None:
        return "nothing"
    return f"{org}/{branch}" if branch else f"{org}/(branch unknown)"


class KeywordBaseline:
    """Every post that contains a search term exactly; no location, no other senses."""

    def __init__(self, classifier: Classifier) -> None:
        self.matchers = classifier.matchers
        self.everyone = tuple(classifier.config.organisations)

    def terms_found(self, post: Post) -> tuple[str, ...]:
        """The organisations the post's exact terms point at ('*' for a generic term)."""
        text = Text.of(post.text)
        written = {key for m in mentions(post.text) for key in handle_keys(m)}
        found: list[str] = []
        for matcher in self.matchers:
            if not matcher.applies_to(post):
                continue
            hit = any(text.has(term.folded) for term in matcher.terms) or bool(
                written & set(matcher.handle_keys)
            )
            if hit:
                found.append(matcher.search.org or "*")
        return tuple(dict.fromkeys(found))

    def answer(self, post: Post) -> Answer:
        found = self.terms_found(post)
        orgs = self.everyone if "*" in found else found
        return Answer(tuple(orgs))


class RadiusBaseline:
    """Posts with a search term whose coordinates lie in a branch's area: the nearest branch."""

    def __init__(self, classifier: Classifier) -> None:
        self.keywords = KeywordBaseline(classifier)
        self.classifier = classifier

    def answer(self, post: Post) -> Answer:
        if post.geo is None or not self.keywords.terms_found(post):
            return Answer(())
        hits = self.classifier.areas_containing(post.geo.lat, post.geo.lon)
        if not hits:
            return Answer(())
        nearest = hits[0]
        return Answer((nearest.area.org_id,), nearest.area.branch_id)
