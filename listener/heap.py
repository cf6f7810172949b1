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
"""

from __future__ import annotations

import gc
import time


def settle() -> float:
    """Collect what is garbage now, then freeze everything left (see the module doc). Returns
    the seconds it took (a full collection: tens of milliseconds)."""
    started = time.perf_counter()
    gc.unfreeze()  # what an earlier settle froze: a replaced classifier is garbage by now
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


def unsettle() -> None:
    """Hand the frozen objects back to the collector (a daemon stopping in a longer process)."""
    gc.unfreeze()
