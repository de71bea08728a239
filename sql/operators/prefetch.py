"""Probes of external tables fetched ahead, one round trip per table and batch.

A lookup into an external table (:class:`~tables.protocol.PrefetchTable`) must not cost a
database round trip per record. At compile time every key lookup and remote probe on such a
table whose probe value is a function of the stream record alone is registered here; before a
batch runs, :class:`Prefetcher` evaluates those probe values for every record of the batch and
hands each table the distinct ones at once (``= ANY($1)``). The per-record path then hits the
table's cache. Probe values that read another joined table's row cannot be known ahead: those
misses are fetched one at a time by the table (counted in its stats as single fetches).
Registration at compile time and EXPLAIN's source text: :mod:`sql.compile.prefetch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sql.runtime import Fn
from tables.protocol import PrefetchTable, SnapshotLogTable


@dataclass(frozen=True, slots=True)
class Probe:
    """One prefetchable probe: ``table``'s ``column`` (None: the key) equals ``value(env)``
    (a table with snapshots: the snapshot an as-of read needs, see
    :func:`sql.compile.prefetch.register_as_of_prefetch`)."""

    table: PrefetchTable | SnapshotLogTable
    column: str | None
    value: Fn
    #: Env slots the probe value reads besides the probed table's own.
    reads: frozenset[int]


#: A record as the prefetcher needs it: (value, key, timestamp).
Record = tuple[Any, Any, "int | None"]


class Prefetcher:
    """Evaluates a batch's probe values and fetches them, all tables concurrently."""

    def __init__(self, env_size: int, vs: int, ms: int, probes: Sequence[Probe]) -> None:
        self.env: list[Any] = [None] * env_size
        self.vs, self.ms = vs, ms
        self.probes = tuple(probes)

    def values(self, records: Iterable[Record]) -> list[set[Any]]:
        """The distinct non-NULL probe values of each probe over ``records``."""
        env, vs, ms = self.env, self.vs, self.ms
        out: list[set[Any]] = [set() for _ in self.probes]
        fns = [(p.value, out[i].add) for i, p in enumerate(self.probes)]
        for value, key, ts in records:
            env[vs] = value
            env[ms] = (key, ts, ts, -1, -1)
            for fn, add in fns:
                try:
                    v = fn(env)
                    if v is not None:
                        add(v)
                except Exception:
                    continue
        return out

    async def fetch(self, records: Iterable[Record]) -> None:
        """Fetch what the batch's records will probe; one call per table and column."""
        wanted: dict[tuple[int, str | None], tuple[PrefetchTable | SnapshotLogTable, set[Any]]] = {}
        for probe, values in zip(self.probes, self.values(records), strict=True):
            if not values:
                continue
            slot = wanted.setdefault((id(probe.table), probe.column), (probe.table, set()))
            slot[1].update(values)
        calls = [t.prefetch(col, vals) for (_, col), (t, vals) in wanted.items()]
        if len(calls) == 1:
            await calls[0]
        elif calls:
            await asyncio.gather(*calls)
