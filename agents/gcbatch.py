"""The cyclic garbage collector held off while one batch of a stateful query runs.

A batch allocates per record (decoded values, keys, output rows) and keeps some of it (new
groups and windows, their accumulators). With the collector's default threshold (a young
collection every 700 net allocations) the young generation is scanned dozens of times per batch,
each time walking what the batch still holds, and the survivors — the query's growing state —
are promoted into generations whose collections walk them again. Held off for the batch, the
first allocation after it runs one collection over what survived the whole batch. In process
(``bench/pipeline_aggregate``'s query, docs/BENCHMARKS.md) this took 15-20% off the CPU per event
of both stages. Reference counting still frees everything acyclic at once; a cycle made during a
batch waits for the end of the batch.

:mod:`tables.gcpause` does the same for a table's cold restore, whose paused stretches span
awaits and follow each other back to back (so it counts nested pauses and runs a full collection
now and then). Here a block is synchronous and batches have the collector running between them:
a plain disable/enable, and a block inside one of those pauses leaves the collector off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collect_after() -> Iterator[None]:
    """No cyclic collection inside the block (nor after it, if it was off before)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
