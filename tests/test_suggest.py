"""`listener suggest`: exclusions and sense cues from 'not-relevant' feedback, as a diff to apply.

Every test stores real alerts in a real SQLite file (decided by the real classifier, saved with
`Store.save_batch`), records feedback with `Store.add_feedback`, and applies the printed diff with
`git apply` and `patch` to see that the edited configuration loads and does what was promised.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.cli import app
from listener.config import Config, load_config
from listener.pipeline import Classifier
from listener.post import Post
from listener.store import Decided, Store
from listener.suggest import suggest, unified_diff
from tests.support.configs import QUERIES as BASE_QUERIES
from tests.support.configs import write_setup

runner = CliRunner()
NOW = datetime.now(UTC)

#: The organisation of the shared test setup, then two searches with comments to keep.
QUERIES = (
    "# Eemland: the organisation and what we look for.\n"
    + BASE_QUERIES.split("[[searches]]", 1)[0]
    + """\
[[searches]]
id = "eemland-brand"
org = "eemland"   # our own name, anywhere
kind = "brand"
interval = "5m"

# The generic words, near one of our branches.
[[searches]]
id = "de-bieb"
kind = "local"
terms = ["de bieb", "bibliotheek"]    # lower case is enough
"""
)

#: (post id, text, verdict or None for not judged)
POSTS = [
    # Someone's audiobook collection: two rejected posts, the word right before 'bibliotheek'.
    ("t:audible-1", "Mijn Audible bibliotheek staat vol thrillers, lekker luisteren in Leusden",
     "not-relevant"),
    ("t:audible-2", "Audible bibliotheek opgeschoond, thuis in Amersfoort", "not-relevant"),
    # Job ads for the brand: rejected.
    ("t:vacature-1", "Vacature: Bibliotheek Eemland zoekt een medewerker klantcontact",
     "not-relevant"),
    ("t:vacature-2", "Nieuwe vacature bij Bibliotheek Eemland, solliciteer voor 1 december",
     "not-relevant"),
    # Rejected, but 'koffie' is also in a post nobody rejected.
    ("t:koffie-1", "Koffie bij de bieb in Leusden was koud", "not-relevant"),
    ("t:koffie-2", "Koffie bij de bieb in Amersfoort: lauw", "not-relevant"),
    # Wanted.
    ("t:open", "De bieb in Leusden is weer open", "relevant"),
    ("t:koffie-ok", "Gratis koffie bij de bibliotheek in Amersfoort vanochtend", None),
    ("t:leesclub", "Bibliotheek Eemland heeft de beste leesclub", "relevant"),
    ("t:branch", "De bieb in Leusden is dicht, wat nu", "wrong-branch"),
]  # fmt: skip


def make_post(post_id: str, text: str) -> Post:
    return Post(id=post_id, source="bluesky", text=text, created_at=NOW - timedelta(days=2))


def populate(config: Config, posts: list[tuple[str, str, str | None]]) -> None:
    """Decide the posts, save them with their alerts, and record the verdicts."""
    classifier = Classifier(config)
    store = Store(config.database_url)
    try:
        decided = [classifier.process(make_post(i, text), None, None) for i, text, _ in posts]
        assert all(d.alert is not None for d in decided), [d.decision for d in decided]
        store.save_batch("replay:posts.jsonl", None, decided, now=NOW - timedelta(days=1))
        alert_of = {a.post_id: a.id for a in store.alerts_since(NOW - timedelta(days=30))}
        for post_id, _, verdict in posts:
            if verdict is not None:
                branch = "amersfoort" if verdict == "wrong-branch" else None
                store.add_feedback(alert_of[post_id] or 0, verdict, branch=branch)
    finally:
        store.close()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config with stored alerts and feedback; the working directory is its folder."""
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = write_setup(tmp_path, queries=QUERIES)
    populate(load_config(path), POSTS)
    yield path


def run_suggest(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["suggest", "--config", "config.toml", *args])
    return result.exit_code, result.stdout, result.output


def decide(config: Config, post_id: str) -> str | None:
    text = next(text for i, text, _ in POSTS if i == post_id)
    return Classifier(config).decide(make_post(post_id, text)).org


def test_it_proposes_a_sense_cue_and_an_exclusion_that_remove_only_rejected_posts(
    setup: Path,
) -> None:
    config = load_config(setup)
    store = Store(config.database_url)
    try:
        report = suggest(config, store, since=NOW - timedelta(days=90))
    finally:
        store.close()
    proposed = {(s.search_id, s.key, s.phrase): s for s in report.proposed}
    assert set(proposed) == {
        ("de-bieb", "sense_cues", "audible bibliotheek"),
        ("eemland-brand", "exclude", "vacature"),
    }
    cue = proposed["de-bieb", "sense_cues", "audible bibliotheek"]
    assert cue.removes == ("t:audible-1", "t:audible-2")
    assert cue.drops == ()
    assert proposed["eemland-brand", "exclude", "vacature"].removes == (
        "t:vacature-1",
        "t:vacature-2",
    )
    local = next(s for s in report.searches if s.search.id == "de-bieb")
    assert local.file == setup.parent / "queries" / "eemland.toml"
    assert local.kept == 3  # relevant, wrong branch and not judged all count as wanted
    assert local.uncovered == ["t:koffie-1", "t:koffie-2"]


def test_a_word_that_also_occurs_in_a_post_nobody_rejected_is_not_proposed(setup: Path) -> None:
    config = load_config(setup)
    store = Store(config.database_url)
    try:
        report = suggest(config, store, since=NOW - timedelta(days=90), search_id="de-bieb")
    finally:
        store.close()
    assert [s.search.id for s in report.searches] == ["de-bieb"]
    assert all("koffie" not in s.phrase for s in report.proposed)
    local = report.searches[0]
    blocked = {s.phrase: s for s in local.not_proposed}
    assert blocked["koffie"].also_in == ("t:koffie-ok",)
    assert blocked["koffie"].removes == ("t:koffie-1", "t:koffie-2")

    code, stdout, _ = run_suggest("--search", "de-bieb")
    assert code == 0
    assert '#   not proposed: exclude + "koffie" (in 2 rejected post(s)): also in 1 post(s) ' in (
        stdout
    )
    assert "#   no suggestion for 2 rejected post(s): t:koffie-1, t:koffie-2" in stdout
    assert "koffie" not in stdout.split("--- a/", 1)[1]
    assert "vacature" not in stdout  # another search


def test_a_suggestion_that_would_drop_a_stored_post_nobody_rejected_is_not_proposed(
    setup: Path,
) -> None:
    """Not every post a search finds is alerted (a route can skip it): those count too."""
    config = load_config(setup)
    post = make_post("t:stored", "Audible bibliotheek en de bieb in Leusden: allebei top")
    decision = Classifier(config).decide(post)
    assert (decision.org, decision.query) == ("eemland", "de-bieb")
    store = Store(config.database_url)
    try:
        store.save_batch("replay:posts.jsonl", None, [Decided(post, decision.to_json(), None)])
        report = suggest(config, store, since=NOW - timedelta(days=90), search_id="de-bieb")
    finally:
        store.close()
    assert report.proposed == []
    blocked = {(s.key, s.phrase): s for s in report.searches[0].not_proposed}
    cue = blocked["sense_cues", "audible bibliotheek"]
    assert (cue.removes, cue.drops) == (("t:audible-1", "t:audible-2"), ("t:stored",))


def test_the_printed_diff_applies_with_git_apply_and_patch_and_then_rejects_those_posts(
    setup: Path, tmp_path: Path
) -> None:
    before = (tmp_path / "queries" / "eemland.toml").read_text()
    code, stdout, output = run_suggest()
    assert code == 0, output
    assert (tmp_path / "queries" / "eemland.toml").read_text() == before  # nothing written
    assert (
        '#   sense_cues + "audible bibliotheek": removes 2 rejected post(s) '
        "(t:audible-1, t:audible-2), drops 0 other post(s)" in stdout
    )
    assert '#   exclude + "vacature": removes 2 rejected post(s)' in stdout
    assert "--- a/queries/eemland.toml\n+++ b/queries/eemland.toml\n" in stdout
    assert "git apply fix.diff" in output and "patch -p1" in output
    added = [line for line in stdout.splitlines() if line.startswith("+") and "+++" not in line]
    assert added == ['+exclude = ["vacature"]', '+sense_cues = ["audible bibliotheek"]']
    (tmp_path / "fix.diff").write_text(stdout)

    for tool in ("git", "patch"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
        copy = tmp_path / f"with-{tool}"
        shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("with-*", "*.db*"))
        command = ["git", "apply", "../fix.diff"] if tool == "git" else ["patch", "-p1"]
        if tool == "git":
            subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
        subprocess.run(
            command,
            cwd=copy,
            input=stdout if tool == "patch" else None,
            text=True,
            check=True,
            capture_output=True,
        )
        edited = (copy / "queries" / "eemland.toml").read_text()
        assert "# The generic words, near one of our branches." in edited
        assert 'org = "eemland"   # our own name, anywhere\nkind = "brand"' in edited
        assert (
            'terms = ["de bieb", "bibliotheek"]    # lower case is enough\n'
            'sense_cues = ["audible bibliotheek"]\n' in edited
        )
        assert 'interval = "5m"\nexclude = ["vacature"]\n\n# The generic words' in edited
        config = load_config(copy / "config.toml")
        searches = {s.id: s for s in config.searches}
        assert searches["de-bieb"].sense_cues == ["audible bibliotheek"]
        assert searches["eemland-brand"].exclude == ["vacature"]
        for post_id in ("t:audible-1", "t:audible-2", "t:vacature-1", "t:vacature-2"):
            assert decide(config, post_id) is None, post_id
        for post_id in ("t:open", "t:koffie-ok", "t:leesclub", "t:branch"):
            assert decide(config, post_id) == "eemland", post_id


def test_existing_lists_are_extended_and_a_file_without_a_final_newline_still_patches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    monkeypatch.chdir(tmp_path)
    queries = QUERIES + 'sense_cues = [\n  "de bieb fm",   # the radio show\n]\nexclude = ["x"]'
    path = write_setup(tmp_path, queries=queries)
    populate(load_config(path), POSTS)
    code, stdout, output = run_suggest("--search", "de-bieb")
    assert code == 0, output
    assert "\\ No newline at end of file" in stdout
    subprocess.run(["patch", "-p1"], input=stdout, text=True, check=True, capture_output=True)
    edited = (tmp_path / "queries" / "eemland.toml").read_text()
    assert edited.endswith(
        'sense_cues = [\n  "de bieb fm",   # the radio show\n  "audible bibliotheek",\n]\n'
        'exclude = ["x"]'
    )
    assert load_config(path).searches[1].sense_cues == ["de bieb fm", "audible bibliotheek"]


def test_nothing_is_proposed_below_min_posts(setup: Path) -> None:
    code, stdout, _ = run_suggest("--min-posts", "3")
    assert code == 0
    assert "--- a/" not in stdout
    assert "# No safe suggestion" in stdout


def test_without_feedback_it_says_so_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LISTENER_DATABASE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = write_setup(tmp_path, queries=QUERIES)
    code, _, output = run_suggest()
    assert code == 0
    assert "no database yet" in output
    assert not (tmp_path / "listener.db").exists()  # it writes nothing, not even a database
    populate(load_config(path), [(i, text, v) for i, text, v in POSTS if v != "not-relevant"])
    code, stdout, output = run_suggest("--since", "30d")
    assert code == 0, output
    assert "No alert was marked not-relevant in the last 30d: nothing to suggest." in output
    assert stdout.count("\n") == 1


def test_an_unknown_search_or_a_bad_since_is_an_error(setup: Path) -> None:
    code, _, output = run_suggest("--search", "nope")
    assert code == 1
    assert (
        "--search: no search 'nope' in the configuration (there are: eemland-brand, de-bieb)"
        in (output)
    )
    code, _, output = run_suggest("--since", "3 months")
    assert code == 2
    assert "--since: bad duration '3 months'" in output


def test_unified_diff_marks_a_missing_final_newline() -> None:
    diff = unified_diff("a = 1", "a = 1\nb = 2", "q.toml")
    assert diff.splitlines() == [
        "--- a/q.toml",
        "+++ b/q.toml",
        "@@ -1 +1,2 @@",
        "-a = 1",
        "\\ No newline at end of file",
        "+a = 1",
        "+b = 2",
        "\\ No newline at end of file",
    ]
