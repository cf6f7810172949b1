"""Keeping Python's garbage collector off the objects that live as long as the daemon.

The gazetteer, the area indexes, the matchers and the presearcher's automaton are some 160,000
objects the collector tracks (at national scale) and never frees, as they live until the
process ends or the configuration is reloaded. Each full collection walks every one of them
again: 50 ms with one classifier, 0.1–0.2 s in a process holding more (a benchmark's setups,
a batch of posts), a pause in whatever poll happens to trigger it. `settle` moves what is alive
once they are built into the collector's permanent generation (`gc.freeze`), which collections
skip; what is made afterwards (posts, decisions, what the classifier learns on the way) is
collected as before.

Frozen objects are still freed when nothing refers to them; only a reference cycle among them
would stay until the next `settle`, which first takes everything back (`gc.unfreeze`) and
collects: a reload replaces the classifier, then settles again, so the old one goes then.

`settle` also lets the youngest generation grow to YOUNG_THRESHOLD container objects before it
is collected (CPython's default is 700). The daemon holds a whole batch's decisions (about ten
containers a post: the decision, its lists, its JSON, the alert; 500 posts a Jetstream batch)
until the batch is saved. With 700, collections ran every 70 posts of a batch, found all of
them alive, and moved them on to the older generations, whose collections are the costly ones;
with 10,000 a batch meets one collection at most, and is mostly freed by reference counting
before any collection looks at it. Measured on the national setup, 500-post batches decided and
saved to SQLite, the threshold alternating batch by batch: deciding +9–14%, deciding and saving
+4–8% (10,000 and 50,000: the same).
"""

from __future__ import annotations

import gc
import time

#: Container objects made (net of those freed) before the youngest generation is collected, once
#: settled (see the module doc).
YOUNG_THRESHOLD = 10_000

_thresholds_before: tuple[int, int, int] | None = None  # what `unsettle` puts back


def settle() -> float:
    """Collect what is garbage now, then freeze everything left, and let the youngest
    generation grow to YOUNG_THRESHOLD (see the module doc). Returns the seconds it took (a full
    collection: tens of milliseconds)."""
    global _thresholds_before
    started = time.perf_counter()
    gc.unfreeze()  # what an earlier settle froze: a replaced classifier is garbage by now
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if _thresholds_before is None:
        _thresholds_before = (young, middle, old)
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return time.perf_counter() - started


def unsettle() -> None:
    """Hand the frozen objects back to the collector, and its thresholds as they were before the
    first `settle` (a daemon stopping in a longer process)."""
    global _thresholds_before
    gc.unfreeze()
    if _thresholds_before is not None:
        gc.set_threshold(*_thresholds_before)
        _thresholds_before = None
