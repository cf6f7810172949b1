"""listener.heap: what lives long is frozen out of the garbage collector's full collections,
and a reload's `settle` lets go of what was replaced."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from listener.config import load_config
from listener.heap import YOUNG_THRESHOLD, settle, unsettle
from listener.pipeline import Classifier
from listener.post import Post
from tests.support.configs import write_setup


class Node:
    """An object in a reference cycle: only the collector frees it, never its count."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    unsettle()


def test_settle_collects_the_garbage_there_is_then_freezes_what_is_alive() -> None:
    garbage = Node()
    gone = weakref.ref(garbage)
    alive = Node()
    del garbage
    assert gone() is not None  # a cycle: its reference count never drops to 0
    seconds = settle()
    assert gone() is None and seconds >= 0
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() == frozen  # a full collection leaves them where they are
    assert alive.me is alive


def test_a_frozen_cycle_that_is_dropped_goes_at_the_next_settle() -> None:
    """As on a reload: the old classifier was frozen with everything else; replacing it and
    settling again frees it."""
    old = Node()
    held = weakref.ref(old)
    settle()
    del old
    gc.collect()
    assert held() is not None  # frozen: the collector does not look at it
    settle()
    assert held() is None


def test_unsettle_hands_everything_back() -> None:
    settle()
    assert gc.get_freeze_count() > 0
    unsettle()
    assert gc.get_freeze_count() == 0


def test_a_classifier_let_go_of_is_freed(tmp_path: Path) -> None:
    """Nothing module-wide holds a classifier (a reload replaces it): once its posts are
    decided and it is dropped, a collection frees it."""
    classifier = Classifier(load_config(write_setup(tmp_path)))
    text = "De bieb in Leusden is dicht, mijn bibliotheek niet"
    post = Post.from_dict(
        {"id": "1", "source": "bluesky", "text": text, "created_at": "2026-11-23T08:00:00Z"}
    )
    assert classifier.decide(post).org is not None  # its local search asked what 'bieb' means
    held = weakref.ref(classifier)
    del classifier
    gc.collect()
    assert held() is None


def test_settle_lets_the_youngest_generation_grow_and_unsettle_puts_it_back() -> None:
    before = gc.get_threshold()
    settle()
    settle()  # a reload settles again: what unsettle restores is still what was there first
    assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    unsettle()
    assert gc.get_threshold() == before


def test_a_batch_of_decisions_held_until_it_is_saved_meets_no_collection(tmp_path: Path) -> None:
    """The daemon holds a batch's decisions (`Classifier.process`) until the batch is saved:
    once settled, 500 posts' worth is made and freed without the collector looking at it,
    where CPython's default threshold collects every 70 posts or so."""
    classifier = Classifier(load_config(write_setup(tmp_path)))
    posts = [
        Post.from_dict(
            {
                "id": str(i),
                "source": "bluesky",
                "text": f"Koffie nummer {i} vandaag",
                "created_at": "2026-11-23T08:00:00Z",
            }
        )
        for i in range(500)
    ]
    collections: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    def decide_batch() -> None:
        gc.collect()  # the counts start at 0
        gc.callbacks.append(noted)
        try:
            decided = [classifier.process(post, "bluesky", None) for post in posts]
            assert len(decided) == 500
        finally:
            gc.callbacks.remove(noted)

    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, whatever ran before
    try:
        decide_batch()
        assert collections  # the collector looks several times
        collections.clear()
        settle()
        decide_batch()
        assert collections == []
    finally:
        unsettle()
        gc.set_threshold(*thresholds)
