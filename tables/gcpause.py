"""Python's cyclic garbage collector paused while a cold restore applies its batches.

A restore allocates a container object or two per record (aiokafka's record, its headers list)
that live until the batch is written. The collector counts them, sees them survive, promotes
them, and every few batches runs a full collection over every object of the process — 15-20% of
a restore's CPU in a bare process (docs/BENCHMARKS.md), more in a worker holding more objects.
None of them is part of a cycle: reference counting frees them all when the batch is done.

Counted, so loaders restoring at once pause and resume it in any order; a collector that was
already disabled (by whoever) stays disabled.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_depth = 0
_disabled_here = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic cyclic collection inside (across awaits too); resumed after the last one."""
    global _depth, _disabled_here
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
            gc.enable()
