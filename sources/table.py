"""An external database's table behind the table protocol, with its cache, breaker and policy.

Two classes, by cache mode:

- :class:`LookupTable` (``cache='partial'|'none'``): rows fetched by key (or by a non-key column,
  pushed down) for a whole batch at once (:meth:`LookupTable.prefetch`, one round trip per table
  and ``max_keys_per_query`` keys), kept in a :class:`~sources.cache.LookupCache`. Only a
  ``PrefetchTable``: it cannot be scanned, so the planner never plans a scan of it.
- :class:`SnapshotTable` (``cache='full'``): the whole (projected) table loaded at start, reloaded
  every ``refresh`` and applied as a diff in one step (no await in between: atomic for the
  queries), with a change feed and indexes: a ``LocalTable`` like a Kafka-backed one, so
  uncorrelated subqueries get maintained results.

When the database cannot answer (after retries, or the breaker is open) the ``on_error`` policy
decides: ``wait`` holds the batch in :meth:`LookupTable.prefetch` until it answers; ``stale``
serves the last cached row even if expired; ``dead_letter`` fails the record with
:class:`~tables.protocol.TableUnavailableError` (dead letter ``source unavailable: <table>``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol

from mode import Service

from core.errors import ConfigError
from sources.batching import Caller, SourceUnavailable
from sources.breaker import Breaker
from sources.cache import MISS, LookupCache
from sources.config import SourceConfig, redact
from sources.types import BAD, fits, probe_converter
from tables.changes import DEFAULT_STREAM_QUEUE, ChangeStream
from tables.indexes import HashIndex
from tables.keys import key_text
from tables.memory import MemoryTable
from tables.protocol import (
    ChangeListener,
    Key,
    TableUnavailableError,
    Unsubscribe,
    Value,
)

logger = logging.getLogger(__name__)

E_CONNECT = "table {table!r}: cannot connect to {connector} ({option}={target}): {error}"
E_NO_TABLE = "table {table!r}: option table={remote!r}: no such table in {where}"
E_NO_COLUMN = "table {table!r}: column {column!r} is not in {remote!r} (columns: {columns})"
E_TYPE = "table {table!r}: column {column!r} is declared {declared} but is {actual} in {remote!r}"
#: Seconds between attempts while the ``wait`` policy holds a batch.
WAIT_RETRY = 0.5


class Database(Protocol):
    """One database connection pool, used from worker threads. No password in ``label``."""

    label: str
    #: The SQL of ``column = ANY(<list parameter>)`` for this driver (``{column}`` placeholder).
    any_clause: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def columns(self, table: str) -> dict[str, str] | None:
        """Column name → database type text (``numeric(12,2)``), None when there is no table."""
        ...

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    def quote(self, table: str) -> str:
        """``schema.table`` quoted as identifiers."""
        ...


class SourceStats:
    """What ``stats()`` shows for an external table (``/tables/`` and ``/queries/``)."""

    def __init__(self, table: ExternalTable) -> None:
        self.table = table

    def as_dict(self) -> dict[str, Any]:
        t = self.table
        out: dict[str, Any] = {
            "name": t.name,
            "kind": t.kind,
            "source": t.describe(),
            "ready": t.is_ready,
            "lookups": t.lookups,
            "single_fetches": t.single_fetches,
            "waits": t.waits,
            "unavailable": t.unavailable,
            "breaker": t.breaker.as_dict(),
        }
        out.update(t.cache_counts())
        out.update(t.caller.stats.as_dict())
        return out


class ExternalTable(Service):
    """What both cache modes share: config, database, breaker, calls, readiness, type check."""

    def __init__(self, config: SourceConfig, db: Database, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.db = db
        self.breaker = Breaker(config.breaker_failures, config.breaker_reset)
        self.caller = Caller(
            self.breaker, config.retries, config.backoff, config.max_inflight, redact
        )
        self.lookups = 0
        self.single_fetches = 0
        self.waits = 0
        self.unavailable = 0
        self._ready = False
        self._ready_event: asyncio.Event | None = None
        self._types = dict(config.columns)
        cols = ", ".join(_quote_ident(c) for c in config.column_names)
        self._select = f"SELECT {cols} FROM {db.quote(config.remote_table)}"
        self._key_index = config.column_names.index(config.key)

    # -- identity -------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"ExternalTable {self.config.table}"

    @property
    def name(self) -> str:
        return self.config.table

    @property
    def kind(self) -> str:
        return self.config.connector

    @property
    def key_field(self) -> str | None:
        return self.config.key

    def describe(self) -> str:
        c = self.config
        return (
            f"{c.connector} {self.db.label} table={c.remote_table} {c.cache_text()}"
            f" on_error={c.on_error}"
        )

    def stats(self) -> SourceStats:
        return SourceStats(self)

    def cache_counts(self) -> dict[str, int]:
        raise NotImplementedError

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        raise NotImplementedError

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        raise NotImplementedError

    # -- start ----------------------------------------------------------------------------------
    def open_sync(self) -> None:
        """Connect, check the declared columns against the database's, load what the mode
        loads. Raises ConfigError naming the table and the option. (Blocking: the offline
        runner calls it directly, the worker in a thread.)"""
        c = self.config
        option = "path" if c.connector == "duckdb" else "dsn"
        try:
            self.db.open()
            actual = self.db.columns(c.remote_table)
        except Exception as exc:
            raise ConfigError(
                E_CONNECT.format(
                    table=c.table,
                    connector=c.connector,
                    option=option,
                    target=redact(c.target),
                    error=redact(str(exc)).strip(),
                ),
                table=c.table,
                option=option,
            ) from exc
        if actual is None:
            raise ConfigError(
                E_NO_TABLE.format(table=c.table, remote=c.remote_table, where=self.db.label),
                table=c.table,
                option="table",
            )
        for column, declared in c.columns:
            db_type = actual.get(column)
            if db_type is None:
                raise ConfigError(
                    E_NO_COLUMN.format(
                        table=c.table,
                        column=column,
                        remote=c.remote_table,
                        columns=", ".join(actual),
                    ),
                    table=c.table,
                    column=column,
                )
            if not fits(declared, db_type):
                raise ConfigError(
                    E_TYPE.format(
                        table=c.table,
                        column=column,
                        declared=declared,
                        actual=db_type,
                        remote=c.remote_table,
                    ),
                    table=c.table,
                    column=column,
                )
        self.load_sync()
        self._ready = True

    def load_sync(self) -> None:
        """What the mode loads at start (nothing for a lookup table)."""

    def close_sync(self) -> None:
        self.db.close()

    async def on_start(self) -> None:
        self._ready_event = asyncio.Event()
        await asyncio.to_thread(self.open_sync)
        self._ready_event.set()

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.close_sync)

    @property
    def is_ready(self) -> bool:
        return self._ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        if self._ready:
            return True
        if self._ready_event is None:
            self._ready_event = asyncio.Event()
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- fetching -------------------------------------------------------------------------------
    def _sql_by(self, column: str | None) -> str:
        col = _quote_ident(column or self.config.key)
        return f"{self._select} WHERE {self.db.any_clause.format(column=col)}"

    def pushed_sql(self, column: str | None) -> str:
        return self._sql_by(column)

    def _to_rows(self, tuples: Iterable[tuple[Any, ...]]) -> list[tuple[Any, dict[str, Any]]]:
        names, ki = self.config.column_names, self._key_index
        return [(t[ki], dict(zip(names, t, strict=True))) for t in tuples]

    def _fetch(self, column: str | None, values: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        return self._to_rows(self.db.query(self._sql_by(column), [values]))

    def _fetch_all(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._to_rows(self.db.query(self._select, []))


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
        if column is None:
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
        step = self.config.max_keys_per_query
        chunks = [want[i : i + step] for i in range(0, len(want), step)]
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


class SnapshotTable(ExternalTable):
    """``cache='full'``: the table held in memory, reloaded every ``refresh``."""

    def __init__(self, config: SourceConfig, db: Database, **kwargs: Any) -> None:
        super().__init__(config, db, **kwargs)
        self._snap = MemoryTable(config.table, config.key)
        self.refreshes = 0
        self.refresh_failures = 0

    def cache_counts(self) -> dict[str, int]:
        return {
            "cached_rows": len(self._snap),
            "refreshes": self.refreshes,
            "refresh_failures": self.refresh_failures,
        }

    def load_sync(self) -> None:
        self.apply(self._fetch_all())

    def apply(self, rows: list[tuple[Any, dict[str, Any]]]) -> None:
        """Replace the snapshot by ``rows``: only the differences are applied (and published),
        all in one synchronous step."""
        table = self._snap
        fresh = {key_text(k): v for k, v in rows}
        for k in [k for k in table.keys() if k not in fresh]:  # noqa: SIM118
            table.put(k, None)
        for k, v in fresh.items():
            if table.get(k) != v:
                table.put(k, v)
        self.refreshes += 1

    async def refresh(self) -> bool:
        """Reload now; False (the old snapshot kept, counted) when the database cannot answer."""
        try:
            rows = await self.caller.acall(self._fetch_all, 0)
        except SourceUnavailable:
            self.refresh_failures += 1
            return False
        self.apply(rows)
        return True

    @Service.task
    async def _refresher(self) -> None:
        every = self.config.refresh
        if not every:
            return
        while not self.should_stop:
            await self.sleep(every)
            if self._ready:
                await self.refresh()

    # -- the LocalTable protocol, from the snapshot ----------------------------------------------
    def get(self, key: Key, default: Value | None = None) -> Value | None:
        return self._snap.get(key, default)

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        return self._snap.get_many(keys)

    def contains_key(self, key: Key) -> bool:
        return self._snap.contains_key(key)

    def keys(self) -> list[Key]:
        return self._snap.keys()

    def items(self) -> Iterator[tuple[Key, Value]]:
        return self._snap.items()

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]:
        return self._snap.page(limit, after)

    def __len__(self) -> int:
        return len(self._snap)

    def is_empty(self) -> bool:
        return self._snap.is_empty()

    def snapshot(self) -> dict[Key, Value]:
        return self._snap.snapshot()

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return self._snap.map_values(fn)

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return self._snap.filter(predicate)

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        return self._snap.subscribe(listener)

    def changes(self, maxsize: int = DEFAULT_STREAM_QUEUE) -> ChangeStream:
        return self._snap.changes(maxsize)

    def index(self, field: str) -> HashIndex:
        return self._snap.index(field)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create(config: SourceConfig, db: Database) -> ExternalTable:
    """The table class of the config's cache mode."""
    if config.cache == "full":
        return SnapshotTable(config, db)
    return LookupTable(config, db)
