"""listener.heap: what lives long is frozen out of the garbage collector's full collections,
and a reload's `settle` lets go of what was replaced."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from listener.config import load_config
from listener.heap import settle, unsettle
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
