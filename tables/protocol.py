"""The one table protocol every table kind implements.

Kafka-backed reference tables, in-memory tables (tests, the offline runner), versioned tables and,
later, external-database tables all look like this to their readers. The SQL layer knows tables
only through :class:`Table`; tables know nothing of SQL beyond feeding :class:`Change` records to
whoever subscribes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from core.errors import TablestreamError

#: A table key. Tables store and return keys as text (the message key, or the text form of the
#: key field, see :mod:`tables.keys`); lookups accept any scalar and compare by that text form,
#: so ``get(5)`` and ``get("5")`` find the same row.
Key = Any
#: A table value: a decoded JSON value, in practice an object (``dict``) for SQL rows.
Value = Any


class Op(enum.Enum):
    """What a change did to its key."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One applied change. ``old_value`` is None on insert, ``value`` is None on delete.

    ``timestamp`` is the source record's event time (ms). ``topic``/``partition``/``offset`` name
    the source record ("" / -1 when the change did not come from Kafka). ``version`` is the
    table's version after this change: it grows by one for every change a table applies (0 for
    changes made outside a table, such as the retractions of a rebuild).
    """

    key: Key
    op: Op
    value: Value | None
    old_value: Value | None
    timestamp: int = 0
    partition: int = -1
    offset: int = -1
    version: int = 0
    topic: str = ""


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One version of a key in a versioned table: valid from ``timestamp`` until the next one.

    ``value`` None means the key was deleted at ``timestamp``. ``version`` is the table version
    that wrote it (versions follow arrival order, timestamps event time).
    """

    timestamp: int
    version: int
    value: Value | None

    def as_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "version": self.version, "value": self.value}


#: Called synchronously after a change is durable and visible through ``get``.
ChangeListener = Callable[[Change], None]
#: Returned by ``subscribe``; call it to stop receiving changes.
Unsubscribe = Callable[[], None]


@dataclass(slots=True)
class PartitionStats:
    """Progress of one source partition: next offset to apply, and the fetch high-watermark."""

    position: int = 0
    highwater: int | None = None

    @property
    def lag(self) -> int | None:
        return None if self.highwater is None else max(0, self.highwater - self.position)


@dataclass(slots=True)
class TableStats:
    """What ``stats()`` reports; the seed's ``KTableStats`` plus per-partition lag and disk use."""

    name: str
    topic: str
    size: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    malformed: int = 0
    records_read: int = 0
    last_updated: float | None = None
    ready: bool = False
    running: bool = False
    bytes_on_disk: int = 0
    partitions: dict[int, PartitionStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic": self.topic,
            "size": self.size,
            "inserts": self.inserts,
            "updates": self.updates,
            "deletes": self.deletes,
            "malformed": self.malformed,
            "records_read": self.records_read,
            "last_updated": self.last_updated,
            "ready": self.ready,
            "running": self.running,
            "bytes_on_disk": self.bytes_on_disk,
            "partitions": {
                str(p): {"position": s.position, "highwater": s.highwater, "lag": s.lag}
                for p, s in sorted(self.partitions.items())
            },
        }


@runtime_checkable
class SecondaryIndex(Protocol):
    """Keys of the rows whose ``field`` equals a value, kept current on every change."""

    field: str

    def lookup(self, value: Any) -> frozenset[Key]: ...


class StatsLike(Protocol):
    """What ``Table.stats()`` returns: anything that renders itself as JSON (the web views and
    ``/queries/`` show it generically)."""

    def as_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Table(Protocol):
    """The core every table kind implements: a name, a key, lookups, readiness and stats.

    Everything else is an opt-in capability (:class:`ScanTable`, :class:`ChangeFeedTable`,
    :class:`IndexedTable`, :class:`VersionedTable`, :class:`PrefetchTable`) that the planner,
    the agents' caches and the web views check with ``isinstance`` instead of assuming a
    Kafka-backed table. See docs/TABLES.md.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str:
        """The table kind (``kafka``, ``memory``, ``postgres``, ``duckdb``)."""
        ...

    @property
    def key_field(self) -> str | None:
        """The value field holding the key, or None when the key is the message key."""
        ...

    def get(self, key: Key, default: Value | None = None) -> Value | None: ...

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        """The rows of the keys that have one, keyed by the probe keys as given."""
        ...

    def describe(self) -> str:
        """Where reads come from, for EXPLAIN (connector, cache; never a password)."""
        ...

    def stats(self) -> StatsLike: ...

    @property
    def is_ready(self) -> bool: ...

    async def wait_until_ready(self, timeout: float | None = None) -> bool: ...


@runtime_checkable
class ScanTable(Table, Protocol):
    """Capability: every row is local and can be listed (maintained subqueries, scans, pages)."""

    def contains_key(self, key: Key) -> bool: ...

    def keys(self) -> list[Key]: ...

    def items(self) -> Iterator[tuple[Key, Value]]: ...

    def __len__(self) -> int: ...

    def is_empty(self) -> bool: ...

    def snapshot(self) -> dict[Key, Value]: ...

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]: ...

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]: ...


@runtime_checkable
class PageTable(Table, Protocol):
    """Capability: rows in key order, a page at a time (the web views)."""

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]: ...


@runtime_checkable
class ChangeFeedTable(Table, Protocol):
    """Capability: every change is published to subscribers once it is visible to ``get``.

    ``last``: the listener keeps only the last ``last`` changes; it is given at least the last
    ``last`` changes of every applied batch (the table may then skip making the others).
    """

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> Unsubscribe: ...


@runtime_checkable
class IndexedTable(Table, Protocol):
    """Capability: secondary indexes on value fields."""

    def index(self, field: str) -> SecondaryIndex:
        """The secondary index on ``field``, built on first request and maintained after."""
        ...


@runtime_checkable
class LocalTable(ScanTable, ChangeFeedTable, IndexedTable, Protocol):
    """All rows local, with a change feed and indexes: Kafka-backed and in-memory tables (and an
    external table with a full cache). What maintained subquery results need."""


@runtime_checkable
class PrefetchTable(Table, Protocol):
    """Capability: rows live elsewhere (an external database); a batch's probes are fetched
    ahead, in one round trip per table, so the per-record ``get``/``probe`` hit a cache.

    ``column`` None means the key column. ``probe`` answers the rows whose ``column`` equals
    ``value`` (a predicate on a non-key column, pushed down). Either may raise
    :class:`TableUnavailableError` when the source is down and the table's policy says so.
    """

    async def prefetch(self, column: str | None, values: Collection[Any]) -> None: ...

    def probe(self, column: str, value: Any) -> list[tuple[Key, Value]]: ...

    def pushed_sql(self, column: str | None) -> str:
        """The SQL text a fetch by ``column`` sends (EXPLAIN)."""
        ...


#: Set (to a fresh object) while a batch's probes are fetched ahead, across all its rounds: a
#: :class:`PrefetchTable` called several times in one batch (a key and a column, or a second
#: round) can tell those calls from a new batch's. None outside a prefetcher.
PREFETCH_BATCH: ContextVar[object | None] = ContextVar("PREFETCH_BATCH", default=None)


@runtime_checkable
class ConnectedTable(Table, Protocol):
    """Capability: the table connects to something at start; the offline runner opens and closes
    it without an event loop (the worker starts it as a service instead)."""

    def open_sync(self) -> None: ...

    def close_sync(self) -> None: ...


class TableUnavailableError(TablestreamError):
    """A table's source cannot answer now (``table`` field). The record that needed it goes to
    the dead letters with reason ``source unavailable: <table>``."""

    def __init__(self, table: str, cause: str = "") -> None:
        super().__init__(f"source unavailable: {table}" + (f" ({cause})" if cause else ""))
        self.fields.update(table=table)
        self.table = table


@runtime_checkable
class VersionedTable(LocalTable, Protocol):
    """A table that can also answer for the past (``versioned`` True when it keeps history).

    Reads of a table without history raise :class:`tables.versions.NotVersionedError`. An as-of
    read older than the retention answers None, or raises
    :class:`tables.versions.HistoryExpiredError` when the table says so (``as_of_expired``).
    """

    @property
    def versioned(self) -> bool: ...

    @property
    def version(self) -> int:
        """The table's current version (the ``version`` of its last change)."""
        ...

    @property
    def stream_time(self) -> int:
        """The newest event timestamp the table has seen (ms); retention by age counts from it."""
        ...

    def get_as_of(self, key: Key, timestamp: int) -> Value | None:
        """The key's value as of event time ``timestamp`` (ms); None when it had no row then."""
        ...

    def get_at_version(self, key: Key, version: int) -> Value | None:
        """The key's value once the table had applied its change ``version``."""
        ...

    def history(self, key: Key) -> list[VersionRecord]:
        """The key's retained versions, oldest first."""
        ...

    def get_changes_since(self, version: int) -> list[Change]:
        """The retained versions written after ``version``, as changes, in version order."""
        ...

    def compact(self, retain_versions: int) -> int:
        """Keep only the newest ``retain_versions`` versions of every key; returns how many went."""
        ...


@runtime_checkable
class SnapshotLogTable(Table, Protocol):
    """Capability: the table's past is a log of snapshots (an Apache Iceberg table), read by
    ``FOR SYSTEM_TIME AS OF`` (the snapshot current at that time, from the snapshot log) and by
    ``AT SNAPSHOT n`` / ``FOR SYSTEM_VERSION AS OF n`` (``version`` is the snapshot id).

    A time before the first snapshot answers None, or raises
    :class:`tables.versions.HistoryExpiredError` when the table says so (``as_of_expired``); an
    unknown snapshot id raises it too.
    """

    def get_as_of(self, key: Key, timestamp: int) -> Value | None:
        """The key's row in the snapshot current at ``timestamp`` (epoch ms)."""
        ...

    def get_at_version(self, key: Key, version: int) -> Value | None:
        """The key's row in snapshot ``version``."""
        ...

    def explain_as_of(self, timestamp: int | None, version: int | None) -> str:
        """EXPLAIN's words for a read as of ``timestamp`` or at ``version`` (both None: per
        record): the snapshot it reads when the table knows it now."""
        ...

    async def prefetch(self, column: str | None, values: Collection[Any]) -> None:
        """Before a batch runs: load the snapshots its records will read — ``column``
        :data:`AS_OF_TIMES` (``values``: epoch ms) or :data:`AT_VERSIONS` (snapshot ids)."""
        ...


#: The prefetch "columns" of a :class:`SnapshotLogTable`: a batch's as-of times, its versions.
AS_OF_TIMES = "FOR SYSTEM_TIME AS OF"
AT_VERSIONS = "AT SNAPSHOT"


RowMapping = Mapping[str, Any]
