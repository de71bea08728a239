"""Python's cyclic garbage collector paused while a cold restore applies its batches.

A restore allocates a container object or two per record (aiokafka's record, its headers list)
that live until the batch is written. The collector counts them, sees them survive, promotes
them, and every few batches runs a full collection over every object of the process — 15-20% of
a restore's CPU in a bare process (docs/BENCHMARKS.md), more in a worker holding more objects.
None of them is part of a cycle: reference counting frees them all when the batch is done.

Paused stretches follow each other back to back, so no automatic collection would run for the
whole restore: what the rest of the process leaves in cycles meanwhile (a worker's web server,
its other services) is collected by a full collection every :data:`FULL_EVERY`-th resume
(~300k records apart at the loader's 10k-record batches). A restore itself leaves none: with
the collector off for a whole 300k-row restore, one collection at the end found 8 objects.

Counted, so loaders restoring at once pause and resume it in any order; a collector that was
already disabled (by whoever) stays disabled.
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
def paused() -> Iterator[None]:
    """No automatic cyclic collection inside (across awaits too); resumed after the last one."""
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
            _resumes += 1
            if _resumes % FULL_EVERY == 0:
                gc.collect()
            gc.enable()
