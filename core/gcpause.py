"""Python's cyclic garbage collector paused while a batch runs: a table's cold restore, a batch
of a stateful query (stage 1, each stage-2 task).

Both allocate a container object or more per record (aiokafka's record, decoded values, keys,
output rows) and keep some of it until the batch is written (and a stateful query its new groups
and windows). With the default thresholds (a young collection every 700 net allocations) the
young generation is scanned dozens of times per batch, the survivors are promoted, and every few
batches a full collection walks every object of the process: 15-20% of a restore's CPU, and of
both stages of a stateful query (docs/BENCHMARKS.md). Reference counting still frees everything
acyclic at once; a cycle made during a batch waits for the first collection after it.

Counted, so loaders restoring at once (across awaits) and query batches pause and resume it in
any order; a collector that was already disabled (by whoever) stays disabled.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Resumes between the full collections a run of paused stretches makes.
FULL_EVERY = 32

_depth = 0
_disabled_here = False
_resumes = 0


@contextlib.contextmanager
def paused(*, periodic_full: bool = False) -> Iterator[None]:
    """No automatic cyclic collection inside (across awaits too); resumed after the last one.

    ``periodic_full``: every :data:`FULL_EVERY` resumes a full collection (a restore's long run of
    pauses; a query batch leaves it to the collector's own thresholds, a full collection being a
    latency tail there)."""
    global _depth, _disabled_here, _resumes
    if _depth == 0 and gc.isenabled():
        gc.disable()
        _disabled_here = True
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _disabled_here:
            _disabled_here = False
            if periodic_full:
                _resumes += 1
                if _resumes % FULL_EVERY == 0:
                    gc.collect()
            gc.enable()
