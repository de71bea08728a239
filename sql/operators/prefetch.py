"""Probes of external tables fetched ahead, one round trip per table and round of a batch.

A lookup into an external table (:class:`~tables.protocol.PrefetchTable`) must not cost a
database round trip per record. At compile time every key lookup and remote probe on such a
table is registered here (:mod:`sql.compile.prefetch`); before a batch runs,
:class:`Prefetcher` evaluates the probe values for every record of the batch and hands each
table the distinct ones at once (``= ANY($1)``). The per-record path then hits the table's cache.

A probe value may read another joined table's row (``JOIN users u ON u.id = o.user_id JOIN
accounts a ON a.id = u.account_id``): it is fetched in a later *round*. Each joined table whose
access has a probe value is a :class:`Filler`; a probe reading a filler's row is evaluated after
the filler's own round was fetched, by finding the filler's rows as the join does (from the
cache the earlier round filled, or from a local table), for every record. Round 1 reads the
stream record alone. Probe values reading something no filler finds (a scanned table, a
subquery's own tables) cannot be known ahead: those misses are fetched one at a time by the
table (counted in its stats as single fetches), as EXPLAIN says (``fetched per record``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sql.runtime import Env, Fn
from tables import PREFETCH_BATCH, PrefetchTable, SnapshotLogTable

_EMPTY: dict[str, Any] = {}


@dataclass(frozen=True, slots=True, eq=False)
class Filler:
    """A joined table's rows as its join finds them (``source``), for probes reading them."""

    vs: int
    ms: int
    source: Fn
    #: INNER: a record without a match needs nothing after it; LEFT: goes on with NULLs.
    left: bool
    #: After which round its rows can be found without a database (0: a local table).
    round: int
    #: The fillers its own access reads (transitively), in join order.
    after: tuple[Filler, ...] = ()


@dataclass(frozen=True, slots=True)
class Probe:
    """One prefetchable probe: ``table``'s ``column`` (None: the key) equals ``value(env)``
    (a table with snapshots: the snapshots its as-of reads need, see
    :func:`sql.compile.prefetch.register_as_of_prefetch`)."""

    table: PrefetchTable | SnapshotLogTable
    column: str | None
    value: Fn
    #: Env slots the probe value reads besides the probed table's own.
    reads: frozenset[int]
    #: 1: reads the stream record alone; n: after the rounds that bring what ``fillers`` find.
    round: int = 1
    #: The joined tables' rows the value reads (with what they read), in join order.
    fillers: tuple[Filler, ...] = ()


#: A record as the prefetcher needs it: (value, key, timestamp).
Record = tuple[Any, Any, "int | None"]


class Prefetcher:
    """Evaluates a batch's probe values and fetches them, round by round, tables concurrently."""

    def __init__(self, env_size: int, vs: int, ms: int, probes: Sequence[Probe]) -> None:
        self.env: list[Any] = [None] * env_size
        self.vs, self.ms = vs, ms
        self.probes = tuple(probes)
        rounds = sorted({p.round for p in self.probes})
        self.rounds = [tuple(p for p in self.probes if p.round == r) for r in rounds]

    def values(self, records: Iterable[Record], probes: Sequence[Probe]) -> list[set[Any]]:
        """The distinct non-NULL probe values of each of ``probes`` over ``records``."""
        env, vs, ms = self.env, self.vs, self.ms
        out: list[set[Any]] = [set() for _ in probes]
        fns = [(p.value, out[i].add) for i, p in enumerate(probes)]
        fillers = sorted({f for p in probes for f in p.fillers}, key=lambda f: f.vs)

        def evaluate(env: Env) -> None:
            for fn, add in fns:
                try:
                    v = fn(env)
                    if v is not None:
                        add(v)
                except Exception:
                    continue

        run = evaluate if not fillers else _expand(fillers, evaluate)
        for value, key, ts in records:
            env[vs] = value
            env[ms] = (key, ts, ts, -1, -1)
            run(env)
        return out

    async def fetch(self, records: Iterable[Record]) -> None:
        """Fetch what the batch's records will probe; per round, one call per table and column."""
        token = PREFETCH_BATCH.set(object())
        try:
            batch = records if len(self.rounds) == 1 else list(records)
            for probes in self.rounds:
                await self._fetch_round(batch, probes)
        finally:
            PREFETCH_BATCH.reset(token)

    async def _fetch_round(self, records: Iterable[Record], probes: Sequence[Probe]) -> None:
        wanted: dict[tuple[int, str | None], tuple[PrefetchTable | SnapshotLogTable, set[Any]]]
        wanted = {}
        for probe, values in zip(probes, self.values(records, probes), strict=True):
            if not values:
                continue
            slot = wanted.setdefault((id(probe.table), probe.column), (probe.table, set()))
            slot[1].update(values)
        calls = [t.prefetch(col, vals) for (_, col), (t, vals) in wanted.items()]
        if len(calls) == 1:
            await calls[0]
        elif calls:
            await asyncio.gather(*calls)


def _expand(fillers: Sequence[Filler], evaluate: Any) -> Any:
    """``evaluate(env)`` once per combination of the fillers' rows for the record in ``env``
    (a LEFT join without a match: once with NULLs; an INNER one: never, the record joins
    nothing). A filler that cannot answer (its source is down) ends the record's expansion: its
    probes are then fetched, or fail, per record as the policy says."""
    n = len(fillers)

    def step(env: Env, i: int) -> None:
        if i == n:
            evaluate(env)
            return
        f = fillers[i]
        matched = False
        try:
            rows = f.source(env)
            for k, v in rows:
                env[f.vs] = v if isinstance(v, dict) else _EMPTY
                env[f.ms] = k
                matched = True
                step(env, i + 1)
        except Exception:
            return
        if not matched and f.left:
            env[f.vs], env[f.ms] = _EMPTY, None
            step(env, i + 1)

    return lambda env: step(env, 0)
