"""The author's history with an organisation, counted on a real SQLite file from saved batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from listener.config import load_config
from listener.daemon import Daemon, history_lookup
from listener.post import Author, Post
from listener.store import Decided, DecisionRow, PostAuthorRow, Store
from listener.urgency.context import AuthorHistory
from tests.support.configs import write_setup

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'listener.db'}")
    yield s
    s.close()


_count = 0


def said(
    handle: str | None,
    org: str | None,
    labels: list[str],
    days_ago: float,
    source: str = "bluesky",
) -> Decided:
    """A decided post by `handle`, about `org`, created `days_ago` before NOW."""
    global _count
    _count += 1
    post = Post(
        id=f"{source}:{_count}",
        source=source,
        text=f"post {_count}",
        created_at=NOW - timedelta(days=days_ago),
        author=Author(handle=handle) if handle is not None else None,
    )
    decision = {
        "id": post.id,
        "org": org,
        "branch": None,
        "query": "q" if org else None,
        "urgency": "normal",
        "score": 20.0,
        "labels": labels,
    }
    return Decided(post, decision)


def save(store: Store, *items: Decided) -> None:
    store.save_batch("replay:test", None, items, NOW)


def test_the_third_complaint_sees_the_two_before_it(store: Store) -> None:
    save(
        store,
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=12),
        said("marieke.bsky.social", "eemland", ["outage", "complaint"], days_ago=3),
        said("marieke.bsky.social", "eemland", ["praise"], days_ago=20),
        said("marieke.bsky.social", "eemland", [], days_ago=1),
    )
    history = store.author_history("marieke.bsky.social", "eemland", NOW)
    assert history == AuthorHistory(posts=4, complaints=2, praise=1)


def test_the_handle_is_compared_normalised(store: Store) -> None:
    save(store, said("@Marieke.bsky.social", "eemland", ["complaint"], days_ago=2))
    assert store.author_history("marieke.bsky.social.", "eemland", NOW).complaints == 1
    assert store.author_history("@MARIEKE.bsky.social", "eemland", NOW).posts == 1


def test_posts_about_another_organisation_or_none_do_not_count(store: Store) -> None:
    save(
        store,
        said("marieke.bsky.social", "coda", ["complaint"], days_ago=2),
        said("marieke.bsky.social", None, ["complaint"], days_ago=2),
        said("marieke.bsky.social", "eemland", ["praise"], days_ago=2),
    )
    assert store.author_history("marieke.bsky.social", "eemland", NOW) == AuthorHistory(1, 0, 1)
    assert store.author_history("marieke.bsky.social", "coda", NOW) == AuthorHistory(1, 1, 0)


def test_other_authors_do_not_count(store: Store) -> None:
    save(
        store,
        said("jan.bsky.social", "eemland", ["complaint"], days_ago=2),
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=2),
        said(None, "eemland", ["complaint"], days_ago=2),
    )
    assert store.author_history("marieke.bsky.social", "eemland", NOW).posts == 1
    assert store.author_history("", "eemland", NOW) == AuthorHistory()


def test_only_the_window_before_the_given_time_counts(store: Store) -> None:
    save(
        store,
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=31),  # too old
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=29),
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=6),
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=0),  # at `before`
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=-1),  # after it
    )
    assert store.author_history("marieke.bsky.social", "eemland", NOW).complaints == 2
    assert store.author_history("marieke.bsky.social", "eemland", NOW, days=7).complaints == 1
    earlier = NOW - timedelta(days=10)  # 40 to 10 days ago: the 31 and the 29
    assert store.author_history("marieke.bsky.social", "eemland", earlier).complaints == 2
    later = NOW + timedelta(days=2)  # 28 days ago to 2 days on: the 6, the 0 and the -1
    assert store.author_history("marieke.bsky.social", "eemland", later).complaints == 3


def test_before_in_another_time_zone_is_the_same_instant(store: Store) -> None:
    save(store, said("marieke.bsky.social", "eemland", ["complaint"], days_ago=1 / 24))  # 11:00 UTC
    amsterdam = NOW.astimezone(ZoneInfo("Europe/Amsterdam"))  # 13:00 local, 12:00 UTC
    assert store.author_history("marieke.bsky.social", "eemland", amsterdam).posts == 1
    just_before = amsterdam - timedelta(hours=1, minutes=1)
    assert store.author_history("marieke.bsky.social", "eemland", just_before).posts == 0


def test_the_same_name_on_another_network_is_kept_apart_when_a_source_is_given(
    store: Store,
) -> None:
    save(
        store,
        said("marieke", "eemland", ["complaint"], days_ago=2, source="x"),
        said("marieke", "eemland", ["praise"], days_ago=2, source="reddit"),
    )
    assert store.author_history("marieke", "eemland", NOW, source="x") == AuthorHistory(1, 1, 0)
    assert store.author_history("marieke", "eemland", NOW) == AuthorHistory(2, 1, 1)


def test_a_post_seen_again_is_counted_once(store: Store) -> None:
    item = said("marieke.bsky.social", "eemland", ["complaint"], days_ago=2)
    save(store, item)
    save(store, item)
    assert store.author_history("marieke.bsky.social", "eemland", NOW).posts == 1


def test_pruning_old_posts_removes_their_author_rows_too(store: Store) -> None:
    save(
        store,
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=100),
        said("marieke.bsky.social", "eemland", ["complaint"], days_ago=2),
    )
    assert store.prune_posts(NOW - timedelta(days=90)) == 1
    with Session(store.engine) as session:
        rows = session.exec(select(PostAuthorRow.handle)).all()
    assert rows == ["marieke.bsky.social"]
    assert store.author_history("marieke.bsky.social", "eemland", NOW).posts == 1


def test_the_daemons_lookup_counts_on_the_posts_own_network(store: Store) -> None:
    save(
        store,
        said("marieke", "eemland", ["complaint"], days_ago=3, source="x"),
        said("marieke", "eemland", ["complaint"], days_ago=2, source="x"),
        said("marieke", "eemland", ["complaint"], days_ago=1, source="reddit"),
    )
    on_x = history_lookup(store, "x")
    assert on_x("@Marieke", "eemland", NOW) == AuthorHistory(posts=2, complaints=2, praise=0)
    assert on_x("marieke", "coda", NOW) == AuthorHistory()
    assert history_lookup(store, "reddit")("marieke", "eemland", NOW).complaints == 1


def test_the_daemon_tells_the_score_about_the_authors_earlier_complaints(tmp_path: Path) -> None:
    """Three complaints by one author, read one per batch by the replay source: the third is
    decided knowing the two before it (posts of the batch being decided are not saved yet)."""
    posts = tmp_path / "three.jsonl"
    lines = []
    for n, day in enumerate((1, 10, 19), start=1):
        post = Post(
            id=f"bluesky:c{n}",
            source="bluesky",
            text=f"de bieb in Leusden is wéér dicht, nu al de {n}e keer",
            created_at=datetime(2026, 11, day, 10, 0, tzinfo=UTC),
            author=Author(handle="marieke.bsky.social", location="Leusden"),
        )
        lines.append(json.dumps(post.to_dict()))
    posts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(write_setup(tmp_path, extra_main="batch = 1", posts=posts))
    daemon = Daemon.from_config(config, env={})
    daemon.clock = lambda: NOW
    try:
        (source,) = daemon.sources
        assert daemon.poll(source).new_posts == 3
        with Session(daemon.store.engine) as session:
            rows = session.exec(select(DecisionRow).order_by(col(DecisionRow.post_id))).all()
        evidence = {row.post_id: " | ".join(json.loads(row.evidence)) for row in rows}
        assert all('"complaint"' in row.labels for row in rows)
        assert "complaint this month" not in evidence["bluesky:c1"]
        assert "second complaint this month" in evidence["bluesky:c2"]
        assert "third complaint this month" in evidence["bluesky:c3"]
    finally:
        daemon.store.close()
