"""Accuracy on the labelled development corpus: listener beside keyword-only and radius-only.

Prints figures; asserts nothing. Targets (issue 3): organisation-level F1 >= 0.95 and branch
accuracy >= 0.90 on the posts tied to the right organisation. Urgency (issue 6): recall of
critical >= 0.95, exact level >= 0.80 on the posts about an organisation, and no critical post
two or more levels off.

    .venv/bin/python bench/accuracy.py [--corpus tests/corpus] [--mistakes] [--levels]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from listener.backtest import LEVELS_AND_NONE, LevelScores, backtest, read_posts, read_truth
from listener.config import load_config
from listener.pipeline import Classifier

ROOT = Path(__file__).resolve().parents[1]
TARGET_F1 = 0.95
TARGET_BRANCH = 0.90
TARGET_CRITICAL_RECALL = 0.95
TARGET_EXACT_LEVEL = 0.80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    parser.add_argument("--mistakes", action="store_true", help="list listener's mistakes")
    parser.add_argument("--levels", action="store_true", help="list the posts given another level")
    args = parser.parse_args()

    classifier = Classifier(load_config(args.corpus / "config.toml"))
    posts = read_posts(args.corpus / "posts.jsonl")
    report = backtest(classifier, posts, read_truth(args.corpus / "truth.jsonl"))

    print(f"corpus: {report.posts} posts, {report.about_an_organisation} about an organisation")
    print(f"{'':<14} {'organisation':^22}  {'branch':^22}")
    print(f"{'system':<14} {'P':>6} {'R':>7} {'F1':>7}  {'P':>6} {'R':>7} {'F1':>7}  accuracy")
    for name, s in report.systems.items():
        org = f"{s.precision:>6.3f} {s.recall:>7.3f} {s.f1:>7.3f}"
        branch = f"{s.branch_precision:>6.3f} {s.branch_recall:>7.3f} {s.branch_f1:>7.3f}"
        accuracy = f"{s.branch_accuracy:.3f} ({s.branch_right}/{s.branch_total})"
        print(f"{name:<14} {org}  {branch}  {accuracy}")
    ours = report.systems["listener"]
    f1_state = "met" if ours.f1 >= TARGET_F1 else "NOT met"
    branch_state = "met" if ours.branch_accuracy >= TARGET_BRANCH else "NOT met"
    print(f"target organisation F1 >= {TARGET_F1}: {f1_state}")
    print(f"target branch accuracy >= {TARGET_BRANCH}: {branch_state}")
    if args.mistakes:
        for m in report.mistakes:
            print(f"- {m.kind}: {m.id}: got {m.got}, expected {m.expected}: {m.text}")
    if report.levels is not None:
        print_levels(report.levels, args.levels)


def print_levels(levels: LevelScores, misses: bool) -> None:
    print("urgency levels (rows: truth, columns: listener)")
    print(f"{'':<10}" + "".join(f"{name:>9}" for name in LEVELS_AND_NONE))
    for truth, row in levels.confusion.items():
        print(f"{truth:<10}" + "".join(f"{row[name]:>9}" for name in LEVELS_AND_NONE))
    rho = "-" if levels.spearman is None else f"{levels.spearman:.3f}"
    print(
        f"critical recall {levels.critical_recall:.3f} "
        f"({levels.critical_found}/{levels.critical}), "
        f"exact level {levels.exact_rate:.3f} ({levels.exact}/{levels.about}), "
        f"critical two or more levels off: {levels.critical_two_off}, "
        f"Spearman (score vs true level) {rho}"
    )
    recall = "met" if levels.critical_recall >= TARGET_CRITICAL_RECALL else "NOT met"
    exact = "met" if levels.exact_rate >= TARGET_EXACT_LEVEL else "NOT met"
    two_off = "met" if levels.critical_two_off == 0 else "NOT met"
    print(f"target critical recall >= {TARGET_CRITICAL_RECALL}: {recall}")
    print(f"target exact level >= {TARGET_EXACT_LEVEL}: {exact}")
    print(f"target no critical post two levels off: {two_off}")
    if misses:
        for m in levels.misses:
            print(f"- {m.id}: got {m.got} ({m.score:g}), expected {m.expected}: {m.text}")
            for reason in m.reasons:
                print(f"      {reason}")


if __name__ == "__main__":
    main()
