"""What the row cache tests count and write (tests/unit/tables/test_rowcache*.py,
test_row_cache_*.py)."""

from __future__ import annotations

import random

from core import codec
from tables.apply import Applier
from tables.rowcache import RAW_ENTRY_OVERHEAD, RowCache
from tables.state import TableState
from tables.store import TableStore
from tests.support.records import TableRec as Rec


def raw_size(cache: RowCache) -> int:
    """The bytes level's size counted from what it holds (the cache keeps a running total)."""
    return sum(len(k) + RAW_ENTRY_OVERHEAD + len(v or b"") for k, v in cache.raw.items())


def row(i: int) -> dict[str, object]:
    """A user row of the row cache tests (four fields, ~430 bytes decoded)."""
    return {"id": i, "name": f"user-{i}", "tier": ("basic", "gold")[i % 2], "credit": i * 7919}


class ModelWriter:
    """Batches of upserts and deletes through the loader's apply + commit path into a table's
    state, and ``model``: the rows its store holds after them (what reads are checked against).
    ``rng`` is the test's one source of randomness."""

    def __init__(self, state: TableState, store: TableStore, seed: int) -> None:
        self.rng = random.Random(seed)
        self.model: dict[str, object] = {}
        self.offset = 0
        self.attach(state, store)

    def attach(self, state: TableState, store: TableStore) -> None:
        """Write into this state and store from now on (the same table after a restart)."""
        self.state, self.store = state, store
        self.applier = Applier("id", state.decode)

    def write(self, keys: list[int], deletes: float = 0.0) -> None:
        """One batch: each key deleted with chance ``deletes``, else written with a new value."""
        recs = []
        for k in keys:
            self.offset += 1
            if self.rng.random() < deletes:
                self.model.pop(str(k), None)
                recs.append(Rec(str(k).encode(), None, self.offset))
            else:
                self.model[str(k)] = value = row(k) | {"v": self.offset}
                recs.append(Rec(str(k).encode(), codec.dumps(value), self.offset))
        batch = self.state.batch()
        self.applier.apply(recs, self.store, batch, want_changes=False)
        self.state.commit(batch)
