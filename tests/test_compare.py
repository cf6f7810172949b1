"""Comparing two versions of the searches on the same posts: directories and git refs, what a
change adds, drops and changes per search, near-misses, and truth from a file or from feedback."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.backtest import Truth
from listener.cli import app
from listener.compare import (
    CompareError,
    Comparison,
    compare,
    feedback_truth,
    load_against,
    merge_truth,
)
from listener.config import Config, load_config
from listener.pipeline import Classifier
from listener.post import Geo, Post
from listener.store import Store
from tests.support.configs import QUERIES, write_setup

# The change under test: a search renamed, Leusden's radius 2.5 → 4 km, Amersfoort's 5 → 4.5 km,
# and 'vacature' excluded from the local search.
NEW_QUERIES = (
    QUERIES.replace('id = "eemland-brand"', 'id = "eemland-names"')
    .replace("radius_km = 2.5", "radius_km = 4")
    .replace("radius_km = 5", "radius_km = 4.5")
    .replace(
        'terms = ["de bieb", "bibliotheek"]',
        'terms = ["de bieb", "bibliotheek"]\nexclude = ["vacature"]',
    )
)
NOW = datetime.now(UTC).replace(microsecond=0)


def make_posts(created_at: datetime = NOW - timedelta(days=1)) -> list[Post]:
    def post(pid: str, text: str, geo: Geo | None = None) -> Post:
        return Post(pid, "bluesky", text, created_at, geo=geo)

    return [
        post("p-brand", "Bieb Eemland is vandaag dicht"),  # same answer, renamed search: moved
        post("p-leusden", "de bieb in Leusden is dicht"),  # unchanged
        post("p-far", "de bieb is dicht", Geo(52.1325, 5.48)),  # 3.3 km from Leusden: added
        post("p-between", "de bieb is dicht", Geo(52.1175, 5.38894)),  # now in both: changed
        post("p-vacature", "de bieb in Leusden is dicht, en heeft een vacature"),  # dropped
        post("p-shrunk", "de bieb is dicht", Geo(52.1982, 5.3875)),  # 4.8 km from A'foort: dropped
        post("p-fuzzy", "Bibliotheek Eemlnad is dicht"),  # never matched, a fuzzy near-miss
        post("p-nothing", "lekker weer vandaag"),
    ]


@pytest.fixture
def old_dir(tmp_path: Path) -> Path:
    write_setup(tmp_path / "old")
    return tmp_path / "old"


@pytest.fixture
def new_config(tmp_path: Path) -> Config:
    return load_config(write_setup(tmp_path / "new", queries=NEW_QUERIES))


def run_compare(new: Config, old: Config, posts: list[Post], truth=None) -> Comparison:
    return compare(Classifier(new, presearch=False), Classifier(old, presearch=False), posts, truth)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "commit.gpgsign=false",
            "-C",
            str(repo),
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def against_error(current: Config, spec: str) -> str:
    """The error loading `spec` as the older version gives."""
    with pytest.raises(CompareError) as caught, load_against(current, spec):
        pass
    return str(caught.value)


# --- what a change does --------------------------------------------------------------------------


def test_a_change_is_counted_per_search_of_either_version(
    new_config: Config, old_dir: Path
) -> None:
    with load_against(new_config, str(old_dir)) as older:
        report = run_compare(new_config, older.config, make_posts())
    counts = {row.search: row for row in report.searches}
    assert set(counts) == {"eemland-brand", "eemland-names", "de-bieb"}
    renamed, gone, local = counts["eemland-names"], counts["eemland-brand"], counts["de-bieb"]
    assert (renamed.in_old, renamed.in_new) == (False, True)
    assert (gone.in_old, gone.in_new) == (True, False)
    assert (renamed.old, renamed.new, renamed.added, renamed.dropped) == (0, 1, 1, 0)
    assert (gone.old, gone.new, gone.added, gone.dropped) == (1, 0, 0, 1)
    assert (local.old, local.new, local.added, local.dropped, local.changed) == (4, 3, 1, 2, 1)


def test_added_dropped_changed_and_moved_posts_carry_both_versions_evidence(
    new_config: Config, old_dir: Path
) -> None:
    with load_against(new_config, str(old_dir)) as older:
        report = run_compare(new_config, older.config, make_posts())
    kinds = {c.post_id: c.kind for c in report.changes}
    assert kinds == {
        "p-far": "added",
        "p-vacature": "dropped",
        "p-shrunk": "dropped",
        "p-between": "changed",
        "p-brand": "moved",
    }
    assert [c.kind for c in report.changes] == ["added", "dropped", "dropped", "changed", "moved"]
    by_id = {c.post_id: c for c in report.changes}
    added = by_id["p-far"]
    assert added.old.org is None and (added.new.org, added.new.branch) == ("eemland", "leusden")
    assert any("3.3 km from branch leusden (radius 4 km)" in e for e in added.new.evidence)
    dropped = by_id["p-vacature"]
    assert (dropped.old.org, dropped.old.branch, dropped.old.search) == (
        "eemland",
        "leusden",
        "de-bieb",
    )
    assert any("vacature" in e for e in dropped.new.evidence), dropped.new.evidence
    changed = by_id["p-between"]
    assert (changed.old.branch, changed.new.branch) == ("amersfoort", None)
    assert changed.new.where == "eemland/(branch unknown) via de-bieb"
    assert any("halfway between leusden and amersfoort" in e for e in changed.new.evidence)
    moved = by_id["p-brand"]
    assert (moved.old.search, moved.new.search) == ("eemland-brand", "eemland-names")


def test_near_misses_of_the_new_version_fuzzy_and_distance(
    new_config: Config, old_dir: Path
) -> None:
    with load_against(new_config, str(old_dir)) as older:
        report = run_compare(new_config, older.config, make_posts())
    misses = {m.post_id: m for m in report.near_misses}
    assert set(misses) == {"p-fuzzy", "p-shrunk"}  # p-far was one before; now it matches
    assert misses["p-fuzzy"].old is not None and misses["p-fuzzy"].old.org is None
    assert misses["p-fuzzy"].near_misses == (
        "search eemland-names: 'bibliotheek eemlnad' is like name 'Bibliotheek Eemland' "
        "(fuzzy 86, needs 88)",
    )
    shrunk = misses["p-shrunk"]
    assert shrunk.old is not None and shrunk.old.org == "eemland"  # the old version only
    assert "4.8 km from branch amersfoort: 0.3 km outside its 4.5 km radius" in shrunk.near_misses


def test_near_misses_reach_try_and_the_backtest(
    new_config: Config, old_dir: Path, tmp_path: Path
) -> None:
    config = str(new_config.path)
    runner = CliRunner()
    fuzzy = runner.invoke(app, ["try", "-c", config, "Bibliotheek Eemlnad is dicht"])
    assert "'bibliotheek eemlnad' is like name 'Bibliotheek Eemland' (fuzzy 86" in fuzzy.output
    # a brand match whose post lies just outside a branch's radius: the branch stays unknown
    near = ["try", "-c", config, "Bieb Eemland is dicht", "--lat", "52.1982", "--lon", "5.3875"]
    result = runner.invoke(app, near)
    assert "about: eemland (branch unknown)" in result.output, result.output
    missed = result.output.split("near-misses:", 1)[1]
    assert "4.8 km from branch amersfoort: 0.3 km outside its 4.5 km radius" in missed

    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in make_posts()))
    args = ["backtest", "-c", config, "--posts", str(posts), "--against", str(old_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    listed = result.output.split("near-misses", 1)[1]
    assert "p-fuzzy" in listed and "(fuzzy 86, needs 88)" in listed
    assert "p-shrunk (old: eemland/amersfoort via de-bieb)" in listed
    assert "0.3 km outside its 4.5 km radius" in listed


# --- where the older version comes from ----------------------------------------------------------


def test_a_folder_of_query_files_replaces_the_current_queries(
    new_config: Config, old_dir: Path
) -> None:
    with load_against(new_config, str(old_dir / "queries")) as older:
        assert older.label.endswith("(queries folder)")
        assert [s.id for s in older.config.searches] == ["eemland-brand", "de-bieb"]
        assert older.config.receivers == {}  # receivers and routes play no part
        report = run_compare(new_config, older.config, make_posts())
    assert {c.post_id: c.kind for c in report.changes}["p-far"] == "added"
    assert sum(len(report.of_kind(k)) for k in ("added", "dropped", "changed", "moved")) == 5


def test_a_relative_directory_is_taken_from_the_working_directory(
    new_config: Config, old_dir: Path
) -> None:
    with load_against(new_config, "old", cwd=old_dir.parent) as older:
        assert older.config.path == old_dir / "config.toml"


def test_a_git_ref_loads_the_config_at_the_same_path_as_it_was(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("no config yet\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    config_path = write_setup(repo / "deploy")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the searches as they are live")
    (repo / "deploy" / "queries" / "eemland.toml").write_text(NEW_QUERIES)  # the edit, uncommitted
    current = load_config(config_path)
    commit = git(repo, "rev-parse", "HEAD")

    with load_against(current, "HEAD") as older:
        assert older.label == f"HEAD ({commit[:10]})"
        assert older.config.path.name == "config.toml"
        assert older.config.path.parent.name == "deploy"
        assert [s.id for s in older.config.searches] == ["eemland-brand", "de-bieb"]
        report = run_compare(current, older.config, make_posts())
        temporary = older.config.path
    assert not temporary.exists(), "the unpacked tree is removed afterwards"
    assert {c.post_id: c.kind for c in report.changes} == {
        "p-far": "added",
        "p-vacature": "dropped",
        "p-shrunk": "dropped",
        "p-between": "changed",
        "p-brand": "moved",
    }

    first = git(repo, "rev-parse", "HEAD~1")
    assert against_error(current, "HEAD~1") == (
        f"HEAD~1: deploy/config.toml does not exist at HEAD~1 ({first[:10]}) in {repo.resolve()}"
    )
    assert against_error(current, "no-such-branch") == (
        f"no-such-branch: neither a directory nor a git ref known in {repo.resolve()}"
    )


def test_a_config_that_does_not_load_at_the_ref_names_the_ref_not_a_temporary_folder(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    config_path = write_setup(repo, queries=QUERIES.replace('org = "eemland"', 'org = "nope"', 1))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "broken")
    write_setup(repo)
    message = against_error(load_config(config_path), "HEAD")
    assert "the configuration at HEAD (" in message
    assert "queries/eemland.toml" in message and "unknown organisation 'nope'" in message
    assert "listener-against-" not in message


def test_without_a_directory_or_a_repository_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    current = load_config(write_setup(tmp_path / "alone"))
    assert "is not in a git repository, so it cannot be a git ref" in against_error(current, "HEAD")
    (tmp_path / "empty").mkdir()
    message = against_error(current, str(tmp_path / "empty"))
    assert "holds neither config.toml (an older copy of the project) nor query files" in message


# --- truth ---------------------------------------------------------------------------------------


def stored(new_config: Config, old_dir: Path, posts: list[Post]) -> Store:
    """The new config's database with the posts as the old (live) version decided and alerted
    them, and feedback on four of its alerts."""
    live = Classifier(load_config(old_dir / "config.toml"))
    store = Store(new_config.database_url)
    store.save_batch("replay", None, [live.process(p, None, None) for p in posts])
    alerts = {row.post_id: row.id for row in store.alerts_since(NOW - timedelta(days=365))}
    assert set(alerts) == {"p-brand", "p-leusden", "p-between", "p-vacature", "p-shrunk"}
    store.add_feedback(alerts["p-between"], "wrong-branch", branch=None)  # no particular branch
    store.add_feedback(alerts["p-vacature"], "relevant")
    store.add_feedback(alerts["p-vacature"], "not-relevant")  # the newest feedback counts
    store.add_feedback(alerts["p-leusden"], "relevant")
    store.add_feedback(alerts["p-shrunk"], "relevant")
    return store


def test_feedback_becomes_truth(new_config: Config, old_dir: Path) -> None:
    store = stored(new_config, old_dir, make_posts())
    try:
        truth = feedback_truth(store)
    finally:
        store.close()
    assert truth == {
        "p-between": Truth("p-between", "eemland", None),
        "p-vacature": Truth("p-vacature", None, None, ("eemland",)),
        "p-leusden": Truth("p-leusden", "eemland", "leusden"),  # the alert's branch was right
        "p-shrunk": Truth("p-shrunk", "eemland", "amersfoort"),
    }


def test_both_versions_are_scored_on_feedback_side_by_side(
    new_config: Config, old_dir: Path
) -> None:
    posts = make_posts()
    store = stored(new_config, old_dir, posts)
    try:
        truth = feedback_truth(store)
    finally:
        store.close()
    with load_against(new_config, str(old_dir)) as older:
        report = run_compare(new_config, older.config, posts, truth)
    assert report.truth_posts == 4
    old, new = report.systems["old"], report.systems["new"]
    # old: right org for three, the not-relevant one is a false positive
    assert (old.true_positives, old.false_positives, old.misses) == (3, 1, 0)
    # new: drops the not-relevant one (not scored: it names nothing) and the Amersfoort one (a miss)
    assert (new.true_positives, new.false_positives, new.misses) == (2, 0, 1)
    assert (old.precision, old.recall) == (0.75, 1.0)
    assert new.precision == 1.0 and new.recall == pytest.approx(2 / 3)
    assert (old.branch_right, new.branch_right) == (2, 2)  # p-between: unknown is right now
    assert {m.id for m in report.mistakes["new"]} == {"p-shrunk"}


def test_a_truth_file_wins_over_feedback_for_the_same_post(
    new_config: Config, old_dir: Path, tmp_path: Path
) -> None:
    posts = make_posts()
    store = stored(new_config, old_dir, posts)
    try:
        feedback = feedback_truth(store)
    finally:
        store.close()
    file = {"p-vacature": Truth("p-vacature", "eemland", "leusden")}
    truth = merge_truth(file, feedback)
    assert truth["p-vacature"] == Truth("p-vacature", "eemland", "leusden")
    assert truth["p-shrunk"] == feedback["p-shrunk"]
    with load_against(new_config, str(old_dir)) as older:
        report = run_compare(new_config, older.config, posts, truth)
    old, new = report.systems["old"], report.systems["new"]
    assert (old.true_positives, old.false_positives, old.misses) == (4, 0, 0)
    assert (new.true_positives, new.false_positives, new.misses) == (2, 0, 2)


# --- the command ---------------------------------------------------------------------------------


def test_backtest_since_replays_stored_posts_against_an_older_directory(
    new_config: Config, old_dir: Path, tmp_path: Path
) -> None:
    posts = make_posts()
    stale = Post("p-stale", "bluesky", "de bieb is dicht", NOW - timedelta(days=60))
    stored(new_config, old_dir, [*posts, stale]).close()
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"id": "p-vacature", "org": "eemland", "branch": "leusden"}\n')
    runner = CliRunner()
    args = ["backtest", "-c", str(new_config.path), "--since", "30d", "--against", str(old_dir)]

    result = runner.invoke(app, [*args, "--truth", str(truth), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["posts"] == len(posts)  # the stale post is older than 30 days
    assert data["truth_posts"] == 4
    assert data["truth_from"] == {"file": 1, "feedback": 3}
    assert (data["old"], data["new"]) == (str(old_dir), str(new_config.path))
    assert [c["id"] for c in data["changes"] if c["kind"] == "added"] == ["p-far"]
    local = next(s for s in data["searches"] if s["search"] == "de-bieb")
    assert (local["old"], local["new"], local["added"], local["dropped"]) == (4, 3, 1, 2)
    assert data["systems"]["new"]["misses"] == 2
    assert not (old_dir / "listener.db").exists(), "posts come from the current database only"

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = result.output
    order = [
        text.index("de-bieb"),  # the counts per search come first
        text.index("added (1):"),
        text.index("p-far: nothing → eemland/leusden via de-bieb"),
        text.index("dropped (2):"),
        text.index("changed (1):"),
        text.index("moved (1):"),
        text.index("near-misses"),
        text.index("truth for 4 posts: 0 from --truth, 4 from feedback"),
        text.index("org P"),
    ]
    assert order == sorted(order)
    assert "was:" in text and "now:" in text


def test_backtest_since_without_against_scores_the_current_version_beside_the_baselines(
    new_config: Config, old_dir: Path
) -> None:
    stored(new_config, old_dir, make_posts()).close()
    args = ["backtest", "-c", str(new_config.path), "--since", "30d", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["old"] is None and data["changes"] == []
    assert set(data["systems"]) == {"listener", "keyword-only", "radius-only"}
    assert {s["search"]: s["new"] for s in data["searches"]} == {"eemland-names": 1, "de-bieb": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --since"),
        (["--since", "30d", "--posts", "x.jsonl"], "give exactly one of --since"),
        (["--posts", "x.jsonl"], "--posts needs --truth, --against or both"),
        (["--since", "soon"], "--since: bad duration 'soon'"),
    ],
)
def test_backtest_options_that_do_not_fit_are_usage_errors(
    new_config: Config, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["backtest", "-c", str(new_config.path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_backtest_with_an_unknown_ref_exits_1_with_the_reason(
    new_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    args = ["backtest", "-c", str(new_config.path), "--since", "30d", "--against", "v9"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "v9: not a directory" in result.output
