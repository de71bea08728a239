"""An external database's table behind the table protocol, with its cache, breaker and policy.

Two classes, by cache mode, on the base :class:`ExternalTable` here:

- ``sources.lookup.LookupTable`` (``cache='partial'|'none'``): rows fetched by key (or by a
  non-key column, pushed down) for a whole batch at once (its ``prefetch``, one round trip per
  table and ``max_keys_per_query`` keys), kept in a :class:`~sources.cache.LookupCache`. Only a
  ``PrefetchTable``: it cannot be scanned, so the planner never plans a scan of it.
- ``sources.snapshot.SnapshotTable`` (``cache='full'``): the whole (projected) table loaded at
  start, reloaded every ``refresh`` and applied as a diff in one step (no await in between:
  atomic for the queries), with a change feed and indexes: a ``LocalTable`` like a Kafka-backed
  one, so uncorrelated subqueries get maintained results.

When the database cannot answer (after retries, or the breaker is open) the ``on_error`` policy
decides: ``wait`` holds the batch in :meth:`LookupTable.prefetch` until it answers; ``stale``
serves the last cached row even if expired; ``dead_letter`` fails the record with
:class:`~tables.protocol.TableUnavailableError` (dead letter ``source unavailable: <table>``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from core.errors import ConfigError
from sources.batching import Caller
from sources.breaker import Breaker
from sources.config import SourceConfig, redact
from sources.lifecycle import OpenedInThread
from sources.types import fits
from tables.protocol import (
    Key,
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
        counts = getattr(t.db, "counts", None)  # a database's own (chdb: queries timed out)
        if counts is not None:
            out.update(counts())
        return out


class ExternalTable(OpenedInThread):
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
        self._types = dict(config.columns)
        cols = ", ".join(quote_ident(c) for c in config.column_names)
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
        option = getattr(self.db, "option", "path" if c.connector == "duckdb" else "dsn")
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

    # -- fetching -------------------------------------------------------------------------------
    def _sql_by(self, column: str | None) -> str:
        col = quote_ident(column or self.config.key)
        return f"{self._select} WHERE {self.db.any_clause.format(column=col)}"

    def pushed_sql(self, column: str | None) -> str:
        return self._sql_by(column)

    def _to_rows(self, tuples: Iterable[tuple[Any, ...]]) -> list[tuple[Any, dict[str, Any]]]:
        names, ki = self.config.column_names, self._key_index
        # (names and tuples come from the same SELECT: zip without strict's per-row check)
        return [(t[ki], dict(zip(names, t))) for t in tuples]  # noqa: B905

    def _fetch(self, column: str | None, values: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        return self._to_rows(self.db.query(self._sql_by(column), [values]))

    def _fetch_all(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._to_rows(self.db.query(self._select, []))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(table: str) -> str:
    """``schema.table`` (or ``table``) quoted as SQL identifiers, part by part."""
    return ".".join(quote_ident(p) for p in table.split("."))
