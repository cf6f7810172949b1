"""What a big query costs per post: a 50-term query with nested operators against simple ones.

Prints figures; asserts nothing. Each search's matcher runs on the tests' real-looking posts
(the development corpus, the demo feed and the end-to-end posts, repeated to --posts). The
budget it is compared with is issue 9's: 20,000 posts a second for the whole national workload
on one core, i.e. 50 µs a post for everything; until the presearcher (issue 9) skips the
searches a post cannot match, every search costs this much on every post.

    .venv/bin/python bench/query.py [--posts 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from listener.config.model import Organisation, Search
from listener.match import SearchMatcher, Text
from listener.post import Post, PostError

ROOT = Path(__file__).resolve().parents[1]
BUDGET_US = 50.0  # issue 9: 20,000 posts/s on one core

TOWNS = ["Amersfoort", "Leusden", "Hooglanderveen", "Soest", "Baarn", "Nijkerk", "Bunschoten",
         "Woudenberg", "Scherpenzeel", "Barneveld"]  # fmt: skip
TOPICS = ["dicht", "gesloten", "storing", "wifi", "inloggen", "boete", "reservering", "pas*",
          "openingstijden", "zelfservice"]  # fmt: skip


def big_query() -> str:
    """50 terms: names with typos, wildcards, phrases, NEAR, ONEAR, NOT, filters."""
    towns = " OR ".join(TOWNS)
    topics = " OR ".join(TOPICS)
    names = " OR ".join(f'"bibliotheek {t}"~1' for t in TOWNS)
    return (
        f"(({names}) OR ((bieb* OR bibliotheek OR #bieb) NEAR/4 ({towns})) OR "
        f"((bieb OR bibliotheek) ONEAR/6 ({topics}) AND ({towns})) OR "
        f'("de bieb" NEAR/3 NOT open) OR Eemland~1 OR 😡) '
        f'NOT (vacature* OR steam OR python OR "game bibliotheek") -author:@spambot lang:nl'
    )


def posts(count: int) -> list[Post]:
    sample: list[Post] = []
    for name in ("tests/corpus/posts.jsonl", "demo/posts.jsonl", "tests/data/e2e-posts.jsonl"):
        path = ROOT / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                sample.append(Post.from_dict(json.loads(line)))
            except (ValueError, PostError):
                continue
    return [sample[i % len(sample)] for i in range(count)]


def firehose(count: int, on_topic: list[Post], share: float = 0.02) -> list[Post]:
    """A firehose-like mix: `share` of the posts from the corpus, the rest sentences of common
    Dutch (70%) and English words (wordfreq's lists), 6 to 30 words long; deterministic."""
    import random

    from wordfreq import top_n_list

    rng = random.Random(5)
    vocab = {"nl": top_n_list("nl", 5000), "en": top_n_list("en", 5000)}
    out: list[Post] = []
    for i in range(count):
        if rng.random() < share:
            out.append(on_topic[i % len(on_topic)])
            continue
        lang = "nl" if rng.random() < 0.7 else "en"
        words = rng.choices(vocab[lang], k=rng.randint(6, 30))
        text = " ".join(words).capitalize() + rng.choice([".", "!", "?", " 😂", " 🙃", ""])
        out.append(Post(id=f"f{i}", source="bluesky", text=text, lang=lang,
                        created_at=on_topic[0].created_at))  # fmt: skip
    return out


def measure(matcher: SearchMatcher, items: list[tuple[Post, Text]]) -> tuple[float, int]:
    matched = 0
    t0 = time.perf_counter()
    for post, text in items:
        matched += matcher.match(post, text).matched
    return (time.perf_counter() - t0) / len(items) * 1e6, matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000, help="posts to match, per mix")
    args = parser.parse_args()
    org = Organisation(id="eemland", name="Bibliotheek Eemland", aliases=["Bieb Eemland"],
                       handles=["@bibliotheekeemland"])  # fmt: skip
    query = big_query()
    searches = {
        "old form: 5 local terms": Search(
            id="a", kind="local", terms=["de bieb", "de bibliotheek", "bieb", "bibliotheek"]
        ),
        "brand: names, aliases, handle": Search(id="b", org="eemland", kind="brand"),
        "one NEAR": Search(id="c", kind="local", query="bieb NEAR/3 (dicht OR gesloten)"),
        "50 terms, nested": Search(id="d", org="eemland", kind="brand", query=query),
    }
    terms = query.count(" OR ") + query.count(" NOT ") + query.count("NEAR/") + 6
    print(f"the big query has about {terms} terms and filters:\n  {query}")
    on_topic = posts(args.posts)
    for title, items in (
        ("on-topic posts (the corpus: most mention the library)", on_topic),
        ("a firehose mix (2% from the corpus, 98% everyday text)", firehose(args.posts, on_topic)),
    ):
        t0 = time.perf_counter()
        for p in items:
            Text.of(p.text)
        tokenise_us = (time.perf_counter() - t0) / len(items) * 1e6
        prepared = [(p, Text.of(p.text)) for p in items]
        print(f"\n{title}: {len(items):,} posts")
        print(f"  {'fold and cut a post into words (once for all searches)':40} "
              f"{tokenise_us:7.1f} µs a post")  # fmt: skip
        for name, search in searches.items():
            matcher = SearchMatcher(search, org if search.org else None)
            per_post, matched = measure(matcher, prepared)
            share = per_post / BUDGET_US
            print(f"  {name:55} {per_post:7.1f} µs a post, {matched:6,} matched, "
                  f"{share:4.0%} of the {BUDGET_US:.0f} µs budget")  # fmt: skip


if __name__ == "__main__":
    main()
