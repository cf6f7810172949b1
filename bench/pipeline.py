"""Start-up time and per-post cost of match → locate → score on the example configuration.

Prints figures; asserts nothing. The posts are the demo feed and the hand-labelled end-to-end
posts, repeated to --posts. A fuller national-scale benchmark is bench/throughput.py's job
(issue 9).

    .venv/bin/python bench/pipeline.py [--posts 20000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000, help="posts to classify")
    args = parser.parse_args()

    started = time.perf_counter()
    from listener.config import load_config
    from listener.geo.gazetteer import Gazetteer
    from listener.pipeline import Classifier
    from listener.post import Post, PostError

    imported = time.perf_counter()
    config = load_config(ROOT / "config.example.toml")
    configured = time.perf_counter()
    gazetteer = Gazetteer.load()
    loaded = time.perf_counter()
    classifier = Classifier(config, gazetteer)
    built = time.perf_counter()

    sample: list[Post] = []
    for name in ("demo/posts.jsonl", "tests/data/e2e-posts.jsonl"):
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            try:
                sample.append(Post.from_dict(json.loads(line)))
            except (ValueError, PostError):
                continue  # the e2e file holds deliberately broken lines
    posts = [sample[i % len(sample)] for i in range(args.posts)]

    decided = alerted = 0
    t0 = time.perf_counter()
    for post in posts:
        decision = classifier.decide(post)
        decided += 1
        alerted += decision.org is not None
    elapsed = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    ms = 1000
    row("imports", f"{ms * (imported - started):.0f} ms")
    row("config (example)", f"{ms * (configured - imported):.0f} ms")
    row(
        "gazetteer load",
        f"{ms * (loaded - configured):.0f} ms",
        f"{len(gazetteer.places):,} places",
    )
    areas = f"{len(config.searches)} searches, {len(classifier.all_areas)} branches"
    row("classifier build", f"{ms * (built - loaded):.0f} ms", areas)
    row("start-up total", f"{ms * (built - started):.0f} ms")
    row(
        "posts classified",
        f"{decided:,}",
        f"{alerted:,} about an organisation, {len(sample)} distinct",
    )
    per_post = f"{1e6 * elapsed / decided:.0f} µs a post, one core"
    row("throughput", f"{decided / elapsed:,.0f} posts/s", per_post)
    row("peak RSS", f"{peak_mb:.0f} MB")


def row(label: str, value: str, note: str = "") -> None:
    print(f"{label:<20} {value:>16}" + (f"  ({note})" if note else ""))


if __name__ == "__main__":
    main()
