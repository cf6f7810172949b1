"""Backtest: scores over (organisation, post) pairs, both baselines, and the command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from listener.backtest import (
    Answer,
    BacktestError,
    KeywordBaseline,
    RadiusBaseline,
    Scores,
    Truth,
    _score,
    backtest,
    ranks,
    read_posts,
    read_truth,
    score_levels,
    spearman,
)
from listener.cli import app
from listener.config import load_config
from listener.pipeline import Classifier, Decision
from listener.post import Geo, Post
from tests.support.configs import ROOT

CONFIG = ROOT / "config.example.toml"
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(load_config(CONFIG))


def post(text: str, geo: Geo | None = None, pid: str = "p") -> Post:
    return Post(pid, "bluesky", text, datetime(2026, 11, 20, tzinfo=UTC), geo=geo)


def test_scores_count_pairs_and_branches() -> None:
    scores = Scores()
    p = post("x")
    _score(scores, p, Truth("p", "a", "b1"), Answer(("a",), "b1"))  # right, right branch
    _score(scores, p, Truth("p", "a", "b1"), Answer(("a",), None))  # right, branch unknown
    _score(scores, p, Truth("p", None, None), Answer(("a", "b")))  # two false positives
    _score(scores, p, Truth("p", "a", None), Answer(("b",)))  # wrong org: miss + false positive
    _score(scores, p, Truth("p", "a", None), Answer(()))  # miss
    assert (scores.true_positives, scores.false_positives, scores.misses) == (2, 3, 2)
    assert scores.precision == pytest.approx(2 / 5)
    assert scores.recall == pytest.approx(2 / 4)
    assert scores.f1 == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert (scores.branch_right, scores.branch_total) == (1, 2)


def test_a_mistake_says_what_was_expected_and_got() -> None:
    mistakes = _score(Scores(), post("de bieb"), Truth("p", None, None), Answer(("a",), "x"))
    [m] = mistakes
    assert (m.kind, m.expected, m.got) == ("false positive", "nothing", "a/x")


def test_keyword_only_gives_a_generic_term_to_every_organisation(classifier: Classifier) -> None:
    keyword = KeywordBaseline(classifier)
    assert set(keyword.answer(post("mijn Steam bibliotheek")).orgs) == {"eemland", "coda"}
    assert keyword.answer(post("CODA Apeldoorn is mooi")).orgs == ("coda",)
    assert keyword.answer(post("lekker weer")).orgs == ()


def test_radius_only_needs_a_term_and_coordinates_in_an_area(classifier: Classifier) -> None:
    radius = RadiusBaseline(classifier)
    in_leusden = Geo(52.1325, 5.43194)
    assert radius.answer(post("de bieb is dicht", in_leusden)) == Answer(("eemland",), "leusden")
    assert radius.answer(post("de bieb in Leusden is dicht")) == Answer(())
    assert radius.answer(post("lekker weer", in_leusden)) == Answer(())


def test_listener_beats_both_baselines_on_the_hand_labelled_posts(
    classifier: Classifier, tmp_path: Path
) -> None:
    posts_file = valid_e2e_posts(tmp_path)
    report = backtest(classifier, read_posts(posts_file), read_truth(DATA / "e2e-truth.jsonl"))
    ours, keyword, radius = (report.systems[n] for n in ("listener", "keyword-only", "radius-only"))
    assert ours.f1 > keyword.f1 and ours.f1 > radius.f1
    assert radius.precision == 1.0 and radius.recall < 0.1  # few posts carry coordinates
    assert keyword.false_positives > ours.false_positives


def valid_e2e_posts(folder: Path) -> Path:
    """The end-to-end posts without their deliberately broken lines and the repeated one."""
    seen, lines = set(), []
    for line in (DATA / "e2e-posts.jsonl").read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if "text" in data and data["id"] not in seen:
            seen.add(data["id"])
            lines.append(line)
    path = folder / "posts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_post_without_truth_is_an_error(classifier: Classifier) -> None:
    with pytest.raises(BacktestError, match="no truth for 1 post"):
        backtest(classifier, [post("x", pid="lonely")], {})


def test_a_bad_truth_line_names_file_and_line(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"id": "a", "org": null}\n{"org": "x"}\n')
    with pytest.raises(BacktestError, match=f"{truth}:2: not a truth line"):
        read_truth(truth)


def test_the_command_prints_the_table_and_json(tmp_path: Path) -> None:
    posts_file = valid_e2e_posts(tmp_path)
    args = [
        "backtest",
        "-c",
        str(CONFIG),
        "--posts",
        str(posts_file),
        "--truth",
        str(DATA / "e2e-truth.jsonl"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "listener" in result.output and "keyword-only" in result.output
    assert "radius-only" in result.output
    result = CliRunner().invoke(app, [*args, "--json"])
    data = json.loads(result.output)
    assert set(data["systems"]) == {"listener", "keyword-only", "radius-only"}
    assert data["posts"] == 33


def test_branch_level_scores_count_named_branches() -> None:
    scores = Scores()
    p = post("x")
    _score(scores, p, Truth("p", "a", "b1"), Answer(("a",), "b1"))  # right branch
    _score(scores, p, Truth("p", "a", "b1"), Answer(("a",), "b2"))  # wrong: fp and miss
    _score(scores, p, Truth("p", "a", None), Answer(("a",), "b2"))  # named where none is: fp
    _score(scores, p, Truth("p", "a", "b1"), Answer(("a",), None))  # not named: miss
    _score(scores, p, Truth("p", "a", None), Answer(("a",), None))  # unknown = unknown: nothing
    assert (scores.branch_true_positives, scores.branch_false_positives) == (1, 2)
    assert scores.branch_misses == 2
    assert scores.branch_precision == pytest.approx(1 / 3)
    assert scores.branch_recall == pytest.approx(1 / 3)
    assert (scores.branch_right, scores.branch_total) == (2, 5)


def test_spearman_gives_ties_their_average_rank() -> None:
    assert ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [5, 6, 7, 7]) == pytest.approx(4 / 18**0.5)  # by hand
    assert spearman([1, 1], [2, 3]) is None


def test_levels_are_scored_against_the_truth() -> None:
    posts = [post("x", pid=f"p{i}") for i in range(5)]
    truth = {
        "p0": Truth("p0", "a", None, urgency="critical"),
        "p1": Truth("p1", "a", None, urgency="critical"),
        "p2": Truth("p2", "a", None, urgency="low"),
        "p3": Truth("p3", None, None, urgency="none"),
        "p4": Truth("p4", "a", None),  # no urgency: skipped
    }
    decisions = {
        "p0": Decision("p0", org="a", urgency="critical", score=80),
        "p1": Decision("p1", org="a", urgency="normal", score=30),
        "p2": Decision("p2", org="a", urgency="low", score=5),
        "p3": Decision("p3"),
        "p4": Decision("p4", org="a", urgency="high", score=50),
    }
    levels = score_levels(posts, truth, decisions)
    assert levels.confusion["critical"]["critical"] == 1
    assert levels.confusion["critical"]["normal"] == 1
    assert levels.confusion["none"]["none"] == 1
    assert (levels.about, levels.exact) == (3, 2)
    assert (levels.critical, levels.critical_found, levels.critical_two_off) == (2, 1, 1)
    assert levels.critical_recall == 0.5
    assert [m.id for m in levels.misses] == ["p1"]
    assert levels.spearman == pytest.approx(0.866, abs=1e-3)


def test_a_truth_line_with_an_unknown_level_names_file_and_line(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"id": "a", "org": "x", "urgency": "urgent"}\n')
    with pytest.raises(BacktestError, match=f"{truth}:1: not a truth line: urgency 'urgent'"):
        read_truth(truth)


def test_the_command_prints_the_levels_when_the_truth_has_them(tmp_path: Path) -> None:
    corpus = Path(__file__).parent / "corpus"
    args = ["backtest", "-c", str(corpus / "config.toml"), "--posts", str(corpus / "posts.jsonl")]
    result = CliRunner().invoke(app, [*args, "--truth", str(corpus / "truth.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    levels = json.loads(result.output)["levels"]
    assert levels["critical"] == 7 and levels["about_an_organisation"] == 201
    assert levels["critical_recall"] >= 0.95  # issue 6's targets on the development corpus
    assert levels["exact_rate"] >= 0.80
    assert levels["critical_two_or_more_off"] == 0
    result = CliRunner().invoke(app, [*args, "--truth", str(corpus / "truth.jsonl")])
    assert "critical recall 1.000 (7/7)" in result.output
    assert "urgency level: truth (rows) against listener (columns)" in result.output
