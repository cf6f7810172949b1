"""Compare two versions of the searches on the same posts, before a change goes live.

`listener backtest --since 30d --against HEAD` replays the stored posts (or a posts file) through
the current configuration and an older one, and shows what the change would do:

* per search (every search id of either version): how many posts each version ties to an
  organisation through it, how many that search gains (added), loses (dropped), and keeps with
  another organisation or branch (changed);
* those posts, with the evidence of both versions. Overall a post is *added* (only the new
  version ties it to an organisation), *dropped* (only the old one does), *changed* (both do,
  with another organisation or branch) or *moved* (same organisation and branch, another search);
* the near-misses of the new version on the posts it does not match (neither version matched
  them, or only the old one did): a name just under a search's fuzzy threshold, a place just
  outside a branch's radius or polygon, so thresholds are moved on evidence;
* given truth, precision, recall and F1 of both versions side by side, scored as
  `listener.backtest` scores (organisation–post pairs, then branches). Without an older version
  the current one is scored beside the keyword-only and radius-only baselines.

The older version (`--against`) is found like this, in this order:

1. an existing directory holding the config file at the same path as the current config has in
   its project (the git repository holding it, or else the config's own folder), or else at the
   top of the directory: an older copy of the project;
2. an existing directory holding query files (`*.toml`) but no such config: the current
   configuration with its queries folder replaced by that directory (receivers and routes play
   no part in a decision, so they are left out);
3. anything else is a git ref (`HEAD`, `HEAD~3`, a branch, a tag, a commit) of the repository
   holding the config file: its tree at that ref is unpacked with `git archive` into a temporary
   folder, and the config at the same path in it is loaded (queries and alerts as they were).

Only searches, organisations and branches of the older version matter: the posts always come
from the current configuration's database (or the posts file), never from the older one's.

Truth comes from a truth file (`listener.backtest`'s format) and/or the feedback stored with
alerts: `relevant` → the alerted organisation and branch are right; `wrong-branch` → the
organisation is right and the branch is the one given (none: no particular branch);
`not-relevant` → the post is not about that organisation (about which one instead is unknown, so
an answer naming another organisation is not scored). A truth-file line wins over feedback for
the same post; a `relevant` or `wrong-branch` wins over `not-relevant` for another organisation.
Posts without truth are not scored. Feedback exists only for alerted posts, so with feedback
alone recall only counts what the live version alerted.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from listener.backtest import (
    Answer,
    KeywordBaseline,
    Mistake,
    RadiusBaseline,
    Scores,
    Truth,
    decision_answer,
    score,
)
from listener.config import Config, ConfigError, load_config
from listener.pipeline import Classifier, Decision
from listener.post import Post
from listener.store import Store

TEXT_CHARS = 160


class CompareError(ValueError):
    """An older version that cannot be loaded: no config there, an unknown ref, no repository."""


# --- the older version -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Against:
    """The older configuration, and how to name it in a report."""

    config: Config
    label: str  # 'HEAD (3f2a1c9d2e)', '../old', '../old-queries (queries folder)'


@contextmanager
def load_against(current: Config, spec: str, *, cwd: Path | None = None) -> Iterator[Against]:
    """The older configuration `spec` names (see the module doc). Its files may live in a
    temporary folder that is removed when the `with` block ends: build its Classifier inside."""
    folder = Path(spec).expanduser()
    if not folder.is_absolute():
        folder = (cwd or Path.cwd()) / folder
    if folder.is_dir():
        yield _from_directory(current, folder, spec)
        return
    with tempfile.TemporaryDirectory(prefix="listener-against-") as tmp:
        yield _from_git(current, spec, Path(tmp))


def _project_path(config: Config) -> Path:
    """The config file's path inside its project: its git repository, or else its own folder."""
    path = config.path.resolve()
    top = _repository(path.parent)
    if top is not None:
        try:
            return path.relative_to(top)
        except ValueError:
            pass
    return Path(path.name)


def _from_directory(current: Config, folder: Path, spec: str) -> Against:
    inside = _project_path(current)
    for candidate in dict.fromkeys((folder / inside, folder / inside.name)):
        if candidate.is_file():
            return Against(_load(candidate, spec), spec)
    if not any(folder.glob("*.toml")):
        raise CompareError(
            f"{spec}: holds neither {inside} (an older copy of the project) "
            "nor query files (*.toml)"
        )
    with tempfile.TemporaryDirectory(prefix="listener-against-") as tmp:
        (Path(tmp) / "alerts").mkdir()
        stub = Path(tmp) / "config.toml"
        stub.write_text(
            f'queries_dir = {json.dumps(str(folder))}\nalerts_dir = "alerts"\n', encoding="utf-8"
        )
        loaded = _load(stub, spec)
    main = current.main.model_copy(update={"queries_dir": str(folder)})
    config = dataclasses.replace(loaded, path=current.path, main=main)
    return Against(config, f"{spec} (queries folder)")


def _from_git(current: Config, spec: str, tmp: Path) -> Against:
    top = _repository(current.path.resolve().parent)
    if top is None:
        raise CompareError(
            f"{spec}: not a directory, and {current.path} is not in a git repository, "
            "so it cannot be a git ref either"
        )
    commit = None
    if not spec.startswith("-"):
        found = _git(top, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
        commit = found.stdout.decode().strip() if found.returncode == 0 else None
    if not commit:
        raise CompareError(f"{spec}: neither a directory nor a git ref known in {top}")
    inside = _project_path(current)
    archive = tmp / "tree.tar"
    with archive.open("wb") as out:
        made = subprocess.run(
            ["git", "-C", str(top), "archive", "--format=tar", commit],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    if made.returncode != 0:
        reason = made.stderr.decode(errors="replace").strip()
        raise CompareError(f"{spec}: git archive failed: {reason}")
    tree = tmp / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    label = f"{spec} ({commit[:10]})"
    if not (tree / inside).is_file():
        raise CompareError(f"{spec}: {inside} does not exist at {label} in {top}")
    try:
        config = load_config(tree / inside)
    except ConfigError as exc:
        problems = "\n".join(str(p).replace(str(tree), label) for p in exc.problems)
        message = f"{spec}: the configuration at {label} does not load:\n{problems}"
        raise CompareError(message) from None
    return Against(config, label)


def _load(path: Path, spec: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        problems = "\n".join(str(p) for p in exc.problems)
        raise CompareError(f"{spec}: the configuration there does not load:\n{problems}") from None


def _repository(folder: Path) -> Path | None:
    """The top folder of the git repository holding `folder`, or None."""
    try:
        found = _git(folder, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        return None  # git is not installed
    if found.returncode != 0:
        return None
    return Path(found.stdout.decode().strip()).resolve()


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=False)


# --- truth -------------------------------------------------------------------------------------


def feedback_truth(store: Store, post_ids: Sequence[str] | None = None) -> dict[str, Truth]:
    """Truth from the feedback stored with alerts (see the module doc), for `post_ids` if given."""
    wanted = set(post_ids) if post_ids is not None else None
    positive: dict[str, Truth] = {}
    negative: dict[str, list[str]] = {}
    for row in store.feedback():
        if wanted is not None and row.post_id not in wanted:
            continue
        if row.verdict == "not-relevant":
            negative.setdefault(row.post_id, []).append(row.org)
        elif row.verdict == "wrong-branch":
            positive[row.post_id] = Truth(row.post_id, row.org, row.branch)
        elif row.verdict == "relevant":
            alert = store.alert(row.alert_id)
            branch = alert.branch if alert is not None else None
            positive[row.post_id] = Truth(row.post_id, row.org, branch)
    truth = {
        post_id: Truth(post_id, None, None, tuple(dict.fromkeys(orgs)))
        for post_id, orgs in negative.items()
    }
    truth.update(positive)
    return truth


def merge_truth(file: Mapping[str, Truth], feedback: Mapping[str, Truth]) -> dict[str, Truth]:
    """Both truths; the truth file wins for a post both have."""
    return {**feedback, **file}


# --- the comparison ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one version decided about one post."""

    org: str | None
    branch: str | None
    search: str | None
    evidence: tuple[str, ...]
    near_misses: tuple[str, ...]

    @classmethod
    def of(cls, decision: Decision) -> Outcome:
        return cls(
            decision.org,
            decision.branch,
            decision.query if decision.org else None,
            tuple(decision.evidence),
            tuple(dict.fromkeys(decision.near_misses)),
        )

    @property
    def where(self) -> str:
        if self.org is None:
            return "nothing"
        branch = self.branch or "(branch unknown)"
        return f"{self.org}/{branch} via {self.search}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "branch": self.branch,
            "search": self.search,
            "evidence": list(self.evidence),
            "near_misses": list(self.near_misses),
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A post the two versions decide differently."""

    kind: str  # added | dropped | changed | moved
    post_id: str
    text: str
    old: Outcome
    new: Outcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.post_id,
            "text": self.text,
            "old": self.old.as_dict(),
            "new": self.new.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A post the new version does not match, and what almost matched it."""

    post_id: str
    text: str
    old: Outcome | None  # what the old version decided (it may have matched)
    near_misses: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.post_id,
            "text": self.text,
            "old": self.old.as_dict() if self.old else None,
            "near_misses": list(self.near_misses),
        }


@dataclass(slots=True)
class SearchCounts:
    """One search: posts each version ties to an organisation through it, and the difference.
    `old` is None when there is no older version; `in_old`/`in_new` say where the search exists."""

    search: str
    in_old: bool
    in_new: bool
    old: int | None = None
    new: int = 0
    added: int = 0
    dropped: int = 0
    changed: int = 0


@dataclass(slots=True)
class Comparison:
    posts: int
    old_label: str | None
    new_label: str
    searches: list[SearchCounts] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    truth_posts: int = 0
    systems: dict[str, Scores] = field(default_factory=dict)
    mistakes: dict[str, list[Mistake]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "old": self.old_label,
            "new": self.new_label,
            "searches": [asdict(s) for s in self.searches],
            "changes": [c.as_dict() for c in self.changes],
            "near_misses": [n.as_dict() for n in self.near_misses],
            "truth_posts": self.truth_posts,
            "systems": {name: s.as_dict() for name, s in self.systems.items()},
            "mistakes": {name: [asdict(m) for m in ms] for name, ms in self.mistakes.items()},
        }


KINDS = ("added", "dropped", "changed", "moved")


def compare(
    new: Classifier,
    old: Classifier | None,
    posts: Sequence[Post],
    truth: Mapping[str, Truth] | None = None,
    *,
    new_label: str = "new",
    old_label: str = "old",
) -> Comparison:
    """Decide every post with both versions and compare (see the module doc); the labels say
    which version is which. The scores are named `old` and `new`; without `old`, the counts and
    near-misses are the new version's, scored as `listener` beside the two baselines."""
    report = Comparison(len(posts), old_label if old else None, new_label)
    truth = truth or {}
    decided: list[tuple[Post, Outcome | None, Outcome]] = []
    answers: dict[str, dict[str, Answer]] = {"old": {}, "new": {}}
    for post in posts:
        new_decision = new.decide(post)
        answers["new"][post.id] = decision_answer(new_decision)
        was = None
        if old is not None:
            old_decision = old.decide(post)
            answers["old"][post.id] = decision_answer(old_decision)
            was = Outcome.of(old_decision)
        decided.append((post, was, Outcome.of(new_decision)))

    report.searches = _count(new, old, decided)
    for post, was, now in decided:
        if was is not None:
            kind = _kind(was, now)
            if kind is not None:
                report.changes.append(Change(kind, post.id, _short(post.text), was, now))
        if now.org is None and now.near_misses:
            report.near_misses.append(NearMiss(post.id, _short(post.text), was, now.near_misses))
    report.changes.sort(key=lambda c: KINDS.index(c.kind))

    report.truth_posts = sum(1 for p in posts if p.id in truth)
    if report.truth_posts:
        if old is not None:
            systems = {
                "old": lambda p: answers["old"][p.id],
                "new": lambda p: answers["new"][p.id],
            }
        else:
            systems = {
                "listener": lambda p: answers["new"][p.id],
                "keyword-only": KeywordBaseline(new).answer,
                "radius-only": RadiusBaseline(new).answer,
            }
        for name, answer_for in systems.items():
            report.systems[name], report.mistakes[name] = score(posts, truth, answer_for)
    return report


def _kind(old: Outcome, new: Outcome) -> str | None:
    if old.org is None and new.org is None:
        return None
    if old.org is None:
        return "added"
    if new.org is None:
        return "dropped"
    if (old.org, old.branch) != (new.org, new.branch):
        return "changed"
    return "moved" if old.search != new.search else None


def _count(
    new: Classifier, old: Classifier | None, decided: Sequence[tuple[Post, Outcome | None, Outcome]]
) -> list[SearchCounts]:
    new_ids = [s.id for s in new.config.searches]
    old_ids = [s.id for s in old.config.searches] if old is not None else []
    counts = []
    for search in dict.fromkeys(new_ids + old_ids):
        row = SearchCounts(search, search in old_ids, search in new_ids)
        row.old = 0 if old is not None else None
        for _, was, now in decided:
            row.new += now.search == search
            if was is None:
                continue
            assert row.old is not None
            row.old += was.search == search
            if now.search == search and was.search != search:
                row.added += 1
            elif was.search == search and now.search != search:
                row.dropped += 1
            elif was.search == search and (was.org, was.branch) != (now.org, now.branch):
                row.changed += 1
        counts.append(row)
    return counts


def _short(text: str) -> str:
    return " ".join(text.split())[:TEXT_CHARS]
