"""``cache='partial'|'none'``: rows fetched by key (or a non-key column, pushed down) for a whole
batch at once, kept in a :class:`~sources.cache.LookupCache`; the ``on_error`` policies.
See :mod:`sources.table`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from typing import Any

from sources.batching import SourceUnavailable
from sources.cache import MISS, LookupCache
from sources.config import SourceConfig
from sources.table import WAIT_RETRY, Database, ExternalTable
from sources.types import BAD, probe_converter
from tables.keys import key_text
from tables.protocol import PREFETCH_BATCH, Key, TableUnavailableError, Value


class LookupTable(ExternalTable):
    """``cache='partial'`` (LRU + TTLs) or ``'none'`` (rows live for one batch)."""

    def __init__(self, config: SourceConfig, db: Database, **kwargs: Any) -> None:
        super().__init__(config, db, **kwargs)
        forever = 10.0**9
        ttl, missing = (
            (forever, forever)
            if config.cache == "none"
            else (config.cache_ttl, config.cache_missing_ttl)
        )
        self._cache = LookupCache(config.cache_max_rows, ttl, missing)
        self._probes = LookupCache(config.cache_max_rows, ttl, missing)
        self._convert: dict[str | None, Callable[[Any], Any]] = {
            None: probe_converter(self._types[config.key])
        }
        self._convert.update({c: probe_converter(t) for c, t in config.columns})
        #: Set when a batch's prefetch could not reach the source (stale / dead_letter): the
        #: batch's misses then take the policy at once instead of trying again per record.
        self._down = False
        self._batch: object | None = None

    def cache_counts(self) -> dict[str, int]:
        c = self._cache.counts()
        p = self._probes.counts()
        c.update({f"probe_{k}": v for k, v in p.items()})
        return c

    # -- per record -----------------------------------------------------------------------------
    def get(self, key: Key, default: Value | None = None) -> Value | None:
        self.lookups += 1
        k = self._convert[None](key)
        if k is BAD:
            return default
        v = self._cache.lookup(k)
        if v is MISS:
            v = self._miss(k)
        return default if v is None else v

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        get = self.get
        return {k: v for k in keys if (v := get(k)) is not None}

    def probe(self, column: str, value: Any) -> list[tuple[Key, Value]]:
        self.lookups += 1
        v = self._convert[column](value)
        if v is BAD:
            return []
        rows = self._probes.lookup((column, v))
        if rows is MISS:
            rows = self._probe_miss(column, v)
        return rows or []

    def _miss(self, k: Any) -> Any:
        """A key the batch's prefetch did not bring (its probe read another table's row)."""
        if not self._down:
            self.single_fetches += 1
            try:
                found = self.caller.call(lambda: self._fetch(None, [k]), 1)
            except SourceUnavailable:
                pass
            else:
                rows = {key: row for key, row in found}
                self._cache.put(rows, () if k in rows else (k,))
                return rows.get(k)
        return self._unavailable(self._cache, k)

    def _probe_miss(self, column: str, v: Any) -> Any:
        if not self._down:
            self.single_fetches += 1
            try:
                found = self.caller.call(lambda: self._fetch(column, [v]), 1)
            except SourceUnavailable:
                pass
            else:
                rows = [(key_text(key), row) for key, row in found]
                self._probes.put(
                    {(column, v): rows} if rows else {}, () if rows else ((column, v),)
                )
                return rows
        return self._unavailable(self._probes, (column, v))

    def _unavailable(self, cache: LookupCache, k: Any) -> Any:
        if self.config.on_error == "stale":
            v = cache.stale(k)
            if v is not MISS:
                return v
        self.unavailable += 1
        raise TableUnavailableError(self.name, self.caller.stats.last_error)

    # -- per batch ------------------------------------------------------------------------------
    async def prefetch(self, column: str | None, values: Collection[Any]) -> None:
        """Fetch the values of ``column`` (None: the key) the batch will probe and the cache
        lacks: ``max_keys_per_query`` per round trip, at most ``max_inflight`` at once."""
        batch = PREFETCH_BATCH.get()
        # A new batch (a caller outside a prefetcher: each key fetch is one): try the source
        # again, and without a cache forget the last batch's rows. Not between the calls of one
        # batch (its key and column fetches, its rounds): they fill the batch's cache together.
        if (column is None and batch is None) or (batch is not None and batch is not self._batch):
            self._batch = batch
            self._down = False
            if self.config.cache == "none":
                self._cache.clear()
                self._probes.clear()
        convert = self._convert[column]
        typed = {c for v in values if (c := convert(v)) is not BAD}
        cache = self._cache if column is None else self._probes
        want = cache.missing(typed if column is None else [(column, v) for v in typed])
        if column is not None:
            want = [v for _, v in want]
        if not want:
            return
        chunks = _chunks(want, self.config.max_keys_per_query, self.config.max_inflight)
        await asyncio.gather(*(self._prefetch_chunk(column, chunk) for chunk in chunks))

    async def _prefetch_chunk(self, column: str | None, chunk: list[Any]) -> None:
        while True:
            try:
                found = await self.caller.acall(lambda: self._fetch(column, chunk), len(chunk))
                break
            except SourceUnavailable:
                if self.config.on_error != "wait":
                    self._down = True
                    return
                # Hold the batch: nothing of it is processed or committed until the source
                # answers again (the breaker's half-open probe tells when).
                self.waits += 1
                await asyncio.sleep(WAIT_RETRY)
        if column is None:
            rows = dict(found)
            self._cache.put(rows, [k for k in chunk if k not in rows])
        else:
            by_value: dict[Any, list[tuple[Key, Value]]] = {}
            for key, row in found:
                by_value.setdefault(row[column], []).append((key_text(key), row))
            self._probes.put(
                {(column, v): rows for v, rows in by_value.items()},
                [(column, v) for v in chunk if v not in by_value],
            )


#: The fewest keys a query of a split batch carries: below it one more round trip costs more
#: than the database's work it takes off the others.
MIN_CHUNK = 250


def _chunks(want: list[Any], max_keys: int, max_inflight: int) -> list[list[Any]]:
    """``want`` split for the round trips of one batch: at most ``max_keys`` per query, and a
    large batch spread over up to ``max_inflight`` concurrent queries (the database looks them
    up on that many connections at once, on several cores)."""
    parts = max(1, min(max_inflight, len(want) // MIN_CHUNK))
    step = min(max_keys, -(-len(want) // parts))
    return [want[i : i + step] for i in range(0, len(want), step)]
