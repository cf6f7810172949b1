"""Accuracy on the labelled development corpus: listener beside keyword-only and radius-only.

Prints figures; asserts nothing. Targets (issue 3): organisation-level F1 >= 0.95 and branch
accuracy >= 0.90 on the posts tied to the right organisation.

    .venv/bin/python bench/accuracy.py [--corpus tests/corpus] [--mistakes]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from listener.backtest import backtest, read_posts, read_truth
from listener.config import load_config
from listener.pipeline import Classifier

ROOT = Path(__file__).resolve().parents[1]
TARGET_F1 = 0.95
TARGET_BRANCH = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "corpus")
    parser.add_argument("--mistakes", action="store_true", help="list listener's mistakes")
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


if __name__ == "__main__":
    main()
