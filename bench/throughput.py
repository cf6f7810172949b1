"""Throughput of match → locate → score at national scale, against issue 9's targets.

Prints a table; asserts nothing. The setup and the posts are `bench/national.py`'s: 170
organisations (three quarters Dutch, a quarter Flemish) with 1,000 branches, a brand and a local
search each, and a firehose of everyday posts of which about 2% name a search term.

    .venv/bin/python bench/throughput.py                  # the full run (a few minutes at most)
    .venv/bin/python bench/throughput.py --posts 20000 --sample 500 --scale-posts 5000   # quick
    .venv/bin/python bench/throughput.py --profile 20000  # cProfile of Classifier.decide only

What is measured, in one process on one core (the posts are generated in chunks of 5,000 between
the timed stretches, so only `Classifier.decide` is on the clock):

- **start-up**: a fresh Python process imports listener, loads the national config, the
  gazetteer, and builds `Classifier(config, gazetteer)` (its matchers, presearcher and area
  indexes) and settles the garbage collector as the daemon does (`listener.heap.settle`: one
  full collection, then what is alive is frozen out of later ones); the time from its first
  line to a ready classifier, then its first decision (lazy set-up shows there), and its peak
  RSS at that point. The process's wall time, interpreter start included, is printed beside
  it.
- **warm-up**: a daemon decides posts for days, and what it learns on the way stays (the words
  the presearcher has looked up, the answers an area index remembers per point, lazily built
  indexes). So each classifier first decides `--warmup` posts of another seed (20,000; about
  ten minutes of a busy firehose), timed on their own and printed as the cold figure; the
  figures after it are the steady state. Each classifier is settled once built, as the
  daemon's is when it starts: without that, every full collection here would walk all the
  setups, the naive matcher and the posts this process holds (0.1–0.2 s each, a few of them
  inside the timed stretches), which a daemon with one classifier does not carry.
- **national**: posts/s of `Classifier(config).decide(post)` over `--posts` posts (200,000), or
  as many as fit in `--budget` seconds of classifying (then it says so), and this process's
  peak RSS afterwards (the classifier, a 5,000-post chunk, and the generator's word lists).
- **naive**: `--sample` other posts (2,000, seed 1) through a naive matcher written here as a
  straightforward non-indexed one would be: every post against every term with rapidfuzz
  `fuzz.partial_ratio` (lower-cased, at the search's `fuzzy`), and every post that matched
  against every branch by geopy's geodesic distance (from the post's coordinates, else the
  first capitalised word the gazetteer knows, else the profile location). This machine's
  speed moves by a quarter from one minute to the next, so the national posts run in
  `--stretches` stretches (10), each followed by its share of the naive posts: both rates are
  timed over the same minutes, and their ratio is the one held against the target. The
  stretches' own rates and ratios are printed as a spread.
- **subsample**: the naive matcher's posts through the same classifier and through
  `Classifier(config, presearch=False)` (every search verified on every post: the reference
  path); the number of posts the fast and the reference path decide differently
  (organisation or branch) is printed, and the subsample's ratios for what they are worth (a
  fraction of a second of the classifier's time).
- **scaling**: posts/s at 10, 100 and 1,000 branches (10 organisations, their natural ~90
  terms) and at 50, 500 and 5,000 terms (10 organisations, 100 branches), on `--scale-posts`
  posts each (60,000, capped at `--scale-budget` seconds) after a warm-up of
  `--scale-warmup` posts (10,000; its rate is printed too), each setup with its own posts.
  The six setups take turns, a stretch each per round, so the rates compared were timed over
  the same minutes.

Targets (issue 9) are printed beside the figures: ≥ 20,000 posts/s national; ≥ 100× the naive
matcher; peak RSS < 300 MB; start-up < 2 s; from 10 to 1,000 branches and from 50 to 5,000
terms throughput falls by less than half. The setups go to a temporary folder (or `--folder`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.national

from geopy.distance import geodesic  # noqa: E402
from rapidfuzz import fuzz  # noqa: E402

from bench import national  # noqa: E402
from listener.config import Config, load_config  # noqa: E402
from listener.config.model import Search  # noqa: E402
from listener.geo.gazetteer import Gazetteer, default_gazetteer  # noqa: E402
from listener.pipeline import Classifier, Decision  # noqa: E402
from listener.post import Post  # noqa: E402

try:
    from listener.heap import settle
except ImportError:  # a listener from before it (for comparing revisions)

    def settle() -> float:
        return 0.0


CHUNK = 5000

STARTUP = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from listener.config import load_config
from listener.geo.gazetteer import Gazetteer
from listener.pipeline import Classifier
from listener.post import Post
t1 = time.perf_counter()
config = load_config(sys.argv[1])
t2 = time.perf_counter()
gazetteer = Gazetteer.load()
t3 = time.perf_counter()
classifier = Classifier(config, gazetteer)
t4 = time.perf_counter()
try:
    from listener.heap import settle
except ImportError:  # a listener from before it
    settle = lambda: 0.0
settle()
t4b = time.perf_counter()
post = Post.from_dict({"id": "1", "source": "bluesky", "text": "de bieb in Leusden is dicht",
                       "created_at": "2026-11-23T08:00:00Z"})
classifier.decide(post)
t5 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "config": t2 - t1, "gazetteer": t3 - t2,
                  "classifier": t4 - t3, "settle": t4b - t4, "ready": t4b - t0,
                  "first": t5 - t4b,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass
class Run:
    posts: int
    seconds: float
    matched: int
    capped: bool = False
    decided: list[tuple[str | None, str | None]] = field(default_factory=list)  # org, branch

    @property
    def rate(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0

    def add(self, other: Run) -> None:
        """Count another stretch of the same classifier in."""
        self.posts += other.posts
        self.seconds += other.seconds
        self.matched += other.matched
        self.capped = self.capped or other.capped
        self.decided += other.decided


def warmed(
    classifier: Classifier, setup: Config | national.Workload, count: int, budget: float
) -> Run:
    """Decide `count` posts of another seed than the measured ones, before the clock."""
    return classify(classifier, national.iter_posts(setup, count, seed=2), budget)


def classify(
    decide: Classifier | NaiveMatcher, stream: Iterable[Post], budget: float | None = None
) -> Run:
    """Decide posts in chunks, timing only the decisions; stop after `budget` seconds."""
    run = Run(0, 0.0, 0)
    iterator = iter(stream)
    while chunk := list(islice(iterator, CHUNK)):
        for post in chunk:
            t0 = time.perf_counter()
            decision = decide.decide(post)
            run.seconds += time.perf_counter() - t0
            run.posts += 1
            run.matched += decision.org is not None
            run.decided.append((decision.org, decision.branch))
            if budget is not None and run.seconds > budget:
                run.capped = True
                return run
    return run


def interleaved(
    classifier: Classifier,
    stream: Iterable[Post],
    naive: NaiveMatcher,
    sample: list[Post],
    args: argparse.Namespace,
) -> tuple[Run, Run, list[tuple[float, float]]]:
    """The national posts in `--stretches` stretches, each followed by its share of the
    subsample through the naive matcher: both are timed over the same minutes, so a ratio is
    not a slow minute of one against a fast minute of the other. The national run, the naive
    run, and each stretch's (national rate, naive rate)."""
    whole, slow = Run(0, 0.0, 0), Run(0, 0.0, 0)
    iterator = iter(stream)
    per_stretch = -(-args.posts // args.stretches)
    per_naive = -(-len(sample) // args.stretches)
    rates: list[tuple[float, float]] = []
    for k in range(args.stretches):
        left = args.budget - whole.seconds
        if left <= 0:
            whole.capped = True
            break
        part = classify(classifier, islice(iterator, per_stretch), left)
        if not part.posts:
            break  # the posts ran out
        naive_part = classify(naive, sample[k * per_naive : (k + 1) * per_naive])
        whole.add(part)
        slow.add(naive_part)
        rates.append((part.rate, naive_part.rate))
    return whole, slow, rates


@dataclass
class Setup:
    """One scaling setup: its classifier, its posts, and its run so far."""

    label: str
    classifier: Classifier
    stream: Iterator[Post]
    first: Run  # the warm-up
    built: float  # seconds to build the classifier
    terms: int
    run: Run = field(default_factory=lambda: Run(0, 0.0, 0))


def round_robin(setups: list[Setup], args: argparse.Namespace) -> None:
    """The scaling setups' posts in `--stretches` rounds, each setup a stretch per round, so
    what one figure is held against was timed over the same minutes."""
    per_round = -(-args.scale_posts // args.stretches)
    for _ in range(args.stretches):
        for setup in setups:
            left = args.scale_budget - setup.run.seconds
            if left <= 0:
                setup.run.capped = True
                continue
            setup.run.add(classify(setup.classifier, islice(setup.stream, per_round), left))


def spread(values: list[float]) -> tuple[float, float, float]:
    """The lowest, the median and the highest of some figures (zeros without any)."""
    if not values:
        return 0.0, 0.0, 0.0
    return min(values), statistics.median(values), max(values)


class NaiveMatcher:
    """A straightforward matcher without indexes: every term against every post with rapidfuzz
    `partial_ratio`, every branch against every matched post by geodesic distance."""

    def __init__(self, config: Config, gazetteer: Gazetteer) -> None:
        self.gazetteer = gazetteer
        self.terms: list[tuple[str, Search]] = []
        for search in config.searches:
            words = list(search.terms)
            org = config.organisations.get(search.org) if search.org else None
            if search.kind == "brand" and org is not None:
                words += [org.name, *org.aliases]
                words += [h.lstrip("@").split("@")[0].split(".")[0] for h in org.handles]
            self.terms += [(word.lower(), search) for word in words]
        self.branches = [
            (org.id, branch.id, (branch.lat, branch.lon), branch.radius_km)
            for org in config.organisations.values()
            for branch in org.branches
        ]

    def decide(self, post: Post) -> Decision:
        decision = Decision(post_id=post.id)
        text = post.text.lower()
        matched: dict[str, tuple[float, Search]] = {}
        for term, search in self.terms:
            score = fuzz.partial_ratio(term, text, score_cutoff=search.fuzzy)
            if score and score > matched.get(search.id, (0.0, search))[0]:
                matched[search.id] = (score, search)
        if not matched:
            return decision
        point = self.where(post)
        hits: list[tuple[float, str, str]] = []
        if point is not None:
            for org_id, branch_id, at, radius in self.branches:
                distance = geodesic(point, at).km
                if distance <= radius:
                    hits.append((distance, org_id, branch_id))
        hits.sort()
        best: tuple[tuple[int, float], str, str | None] | None = None
        for score, search in matched.values():
            near = next((h for h in hits if search.org in (None, h[1])), None)
            if search.kind == "brand" and search.org is not None:
                found = ((1, score), search.org, near[2] if near else None)
            elif near is not None:
                found = ((0, score), near[1], near[2])
            else:
                continue
            if best is None or found[0] > best[0]:
                best = found
        if best is not None:
            decision.org, decision.branch = best[1], best[2]
        return decision

    def where(self, post: Post) -> tuple[float, float] | None:
        if post.geo is not None:
            return post.geo.lat, post.geo.lon
        for word in post.text.split():
            word = word.strip(".,!?;:()'\"")
            if word[:1].isupper():
                places = self.gazetteer.candidates(word)
                if places:
                    return places[0].lat, places[0].lon
        location = post.author.location if post.author else None
        places = self.gazetteer.candidates(location) if location else []
        return (places[0].lat, places[0].lon) if places else None


def startup(config_path: Path) -> tuple[dict[str, float], float]:
    """Start-up figures from a fresh process, and that process's wall time."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STARTUP, str(config_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile(classifier: Classifier, sample: list[Post], top: int = 25) -> None:
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for post in sample:
        classifier.decide(post)
    profiler.disable()
    elapsed = time.perf_counter() - t0
    print(f"profiled {len(sample):,} posts in {elapsed:.1f} s (with the profiler's overhead)")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        text = out.getvalue()
        print(f"\n--- top {top} by {order} ---")
        print(text[text.find("   ncalls") :].rstrip())


def row(label: str, value: str, target: str = "", verdict: str = "") -> None:
    print(f"{label:<44} {value:>16}  {target:<14} {verdict}")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--posts", type=int, default=200_000, help="national posts (200,000)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of national run")
    parser.add_argument("--sample", type=int, default=2000, help="naive/reference subsample")
    parser.add_argument("--scale-posts", type=int, default=60_000, help="posts per scaling run")
    parser.add_argument("--scale-budget", type=float, default=8.0, help="seconds per scaling run")
    parser.add_argument("--warmup", type=int, default=20_000, help="posts before the clock")
    parser.add_argument("--scale-warmup", type=int, default=10_000, help="the same per setup")
    parser.add_argument(
        "--stretches", type=int, default=10, help="interleaved stretches of each run (10)"
    )
    parser.add_argument("--profile", type=int, default=0, help="only profile N national posts")
    parser.add_argument("--folder", type=Path, help="where the setups go (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="listener-national-") as temp:
        folder = args.folder or Path(temp)
        run(args, folder)


def run(args: argparse.Namespace, folder: Path) -> None:
    gazetteer = default_gazetteer()  # the one bench.national draws place names from too
    national_path = national.write_setup(folder / "national", gazetteer=gazetteer)
    config = load_config(national_path)
    workload = national.Workload.of(config)

    if args.profile:
        classifier = Classifier(config, gazetteer)
        settle()
        warmed(classifier, workload, args.warmup, args.budget)
        profile(classifier, national.posts(workload, args.profile))
        return

    started, wall = startup(national_path)
    t0 = time.perf_counter()
    classifier = Classifier(config, gazetteer)
    build = time.perf_counter() - t0
    settle()  # as the daemon does once it is built (`listener.heap`)
    cold = warmed(classifier, workload, args.warmup, args.budget)
    sample = national.posts(workload, args.sample, seed=1)  # posts the run has not seen
    naive_matcher = NaiveMatcher(config, gazetteer)
    whole, naive, ratios = interleaved(
        classifier, national.iter_posts(workload, args.posts), naive_matcher, sample, args
    )
    rss = peak_mb()

    fast = classify(classifier, sample)
    try:
        reference_classifier: Classifier | None = Classifier(config, gazetteer, presearch=False)
    except TypeError:  # a listener without the flag
        reference_classifier = None
    if reference_classifier is not None:  # its answers per point warm up on these posts
        settle()
        classify(reference_classifier, national.iter_posts(workload, args.sample, seed=2))
    reference = classify(reference_classifier, sample) if reference_classifier else None
    differ = (
        sum(a != b for a, b in zip(fast.decided, reference.decided, strict=True))
        if reference
        else 0
    )

    grid: list[tuple[str, int, int | None]] = [
        (f"{b:,} branches", b, None) for b in (10, 100, 1000)
    ]
    grid += [(f"{t:,} terms", 100, t) for t in (50, 500, 5000)]
    setups: list[Setup] = []
    for label, branch_count, terms in grid:
        where = folder / label.replace(",", "").replace(" ", "-")
        path = national.write_setup(
            where, branches=branch_count, organisations=10, terms=terms, gazetteer=gazetteer
        )
        scaled = load_config(path)
        t0 = time.perf_counter()
        scaled_classifier = Classifier(scaled, gazetteer)
        built = time.perf_counter() - t0
        settle()
        first = warmed(scaled_classifier, scaled, args.scale_warmup, args.scale_budget)
        stream = national.iter_posts(scaled, args.scale_posts)
        setups.append(
            Setup(label, scaled_classifier, stream, first, built, national.term_count(scaled))
        )
    round_robin(setups, args)
    total_rss = peak_mb()

    branches = sum(len(o.branches) for o in config.organisations.values())
    print(
        f"national setup: {len(config.organisations)} organisations, {branches:,} branches, "
        f"{len(config.searches)} searches, {national.term_count(config):,} terms"
    )
    print(f"{'':<44} {'figure':>16}  {'target':<14}")
    ms = 1000
    row("start-up, fresh process: imports", f"{ms * started['imports']:.0f} ms")
    row("  config loaded", f"{ms * started['config']:.0f} ms")
    row("  gazetteer loaded", f"{ms * started['gazetteer']:.0f} ms")
    row("  classifier built (matchers, indexes)", f"{ms * started['classifier']:.0f} ms")
    row("  garbage collector settled (gc.freeze)", f"{ms * started.get('settle', 0):.0f} ms")
    row(
        "  ready (first line → ready Classifier)",
        f"{started['ready']:.2f} s",
        "< 2 s",
        met(started["ready"] < 2),
    )
    row("  first decision after that", f"{ms * started['first']:.0f} ms")
    row("  process wall time, interpreter included", f"{wall:.2f} s")
    row("  peak RSS of that process", f"{started['rss_mb']:.0f} MB")
    row("classifier build in this process", f"{ms * build:.0f} ms")
    capped = f" (budget {args.budget:.0f} s)" if cold.capped else ""
    row(f"warm-up: {cold.posts:,} posts of another seed{capped}", f"{cold.rate:,.0f} posts/s")
    capped = f" (budget {args.budget:.0f} s)" if whole.capped else ""
    row(
        f"national: {whole.posts:,} posts{capped}",
        f"{whole.rate:,.0f} posts/s",
        "≥ 20,000/s",
        met(whole.rate >= 20_000),
    )
    row(
        "  µs a post; about an organisation",
        f"{1e6 * whole.seconds / max(whole.posts, 1):,.0f} µs",
        f"{whole.matched:,} posts",
    )
    low, middle, high = spread([r for r, _ in ratios])
    row(
        f"  its {len(ratios)} stretches: slowest–fastest",
        f"{low:,.0f}–{high:,.0f}",
        f"median {middle:,.0f}",
    )
    row("  peak RSS after it", f"{rss:.0f} MB", "< 300 MB", met(rss < 300))
    row(f"subsample: {len(sample):,} posts, classifier", f"{fast.rate:,.0f} posts/s")
    if reference is not None:
        row("  presearch=False (reference path)", f"{reference.rate:,.0f} posts/s")
        row("  classifier / reference", f"{fast.rate / reference.rate:,.1f}×")
        row("  decided differently (org, branch)", f"{differ:,} posts")
    else:
        row("  presearch=False (reference path)", "n/a", "no such flag")
    row("  naive (partial_ratio × terms, geodesic)", f"{naive.rate:,.1f} posts/s")
    row("  naive: posts about an organisation", f"{naive.matched:,}", f"listener {fast.matched:,}")
    row("  subsample classifier / naive", f"{fast.rate / naive.rate:,.0f}×" if naive.rate else "-")
    ratio = whole.rate / naive.rate if naive.rate else 0.0
    row("  classifier / naive (national rate)", f"{ratio:,.0f}×", "≥ 100×", met(ratio >= 100))
    low, middle, high = spread([r / n for r, n in ratios if n])
    row(
        "  the same per stretch: lowest–highest",
        f"{low:,.0f}–{high:,.0f}×",
        f"median {middle:,.0f}×",
    )
    print()
    print(
        f"{'scaling (10 organisations)':<28} {'terms':>6} {'build':>8} {'warm-up/s':>10} "
        f"{'posts':>8} {'posts/s':>10}"
    )
    for setup in setups:
        result = setup.run
        capped = " (budget)" if result.capped else ""
        print(
            f"{setup.label:<28} {setup.terms:>6,} {ms * setup.built:>6.0f}ms "
            f"{setup.first.rate:>10,.0f} {result.posts:>8,} {result.rate:>10,.0f}{capped}"
        )
    rates = {setup.label: setup.run.rate for setup in setups}
    for smallest, largest in (("10 branches", "1,000 branches"), ("50 terms", "5,000 terms")):
        kept = rates[largest] / rates[smallest] if rates[smallest] else 0.0
        row(
            f"  {smallest} → {largest}: throughput kept",
            f"{100 * kept:.0f}%",
            "> 50%",
            met(kept > 0.5),
        )
    print(f"peak RSS of this whole run: {total_rss:.0f} MB")


if __name__ == "__main__":
    main()
