"""`bench/throughput.py` still runs end to end: a tiny run prints every figure of its table.

The figures themselves are the benchmark's to print, not a test's to hold (a tiny run on a busy
machine says nothing about speed); what a test can hold is that every row is there with a
number, and that the fast and the reference path decided the subsample alike.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROWS = [
    "ready (first line → ready Classifier)",
    "peak RSS of that process",
    "warm-up: 100 posts of another seed",
    "national: 400 posts",
    "its 2 stretches: slowest–fastest",
    "peak RSS after it",
    "presearch=False (reference path)",
    "naive (partial_ratio × terms, geodesic)",
    "classifier / naive (national rate)",
    "10 branches → 1,000 branches: throughput kept",
    "50 terms → 5,000 terms: throughput kept",
    "peak RSS of this whole run",
]


def test_a_tiny_run_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "bench/throughput.py",
            *("--posts", "400", "--sample", "20", "--warmup", "100", "--stretches", "2"),
            *("--scale-posts", "100", "--scale-warmup", "50", "--folder", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for row in ROWS:
        line = next((line for line in lines if row in line), None)
        assert line is not None, f"no row {row!r} in:\n{done.stdout}"
        assert re.search(r"\d", line.replace(row, "")), line  # a figure beside the label
    differ = next(line for line in lines if "decided differently (org, branch)" in line)
    assert re.search(r"\b0 posts\b", differ), differ
    for setup in ("10 branches", "1,000 branches", "50 terms", "5,000 terms"):
        assert any(line.startswith(setup) for line in lines), setup
