"""An in-memory table: the same protocol, no Kafka. Used by the offline runner and by tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tables.changes import DEFAULT_STREAM_QUEUE, ChangeFeed, ChangeStream
from tables.indexes import HashIndex, IndexRegistry
from tables.keys import key_text
from tables.protocol import (
    Change,
    ChangeListener,
    Key,
    Op,
    TableStats,
    Unsubscribe,
    Value,
    VersionRecord,
)
from tables.spec import TableSpec
from tables.versions import (
    E_EXPIRED,
    E_NOT_VERSIONED,
    HistoryExpiredError,
    MemoryHistory,
    NotVersionedError,
    VersionPolicy,
    find_at_version,
    records,
)


class MemoryTable:
    """A dict-backed table that publishes changes exactly like the Kafka-backed one.

    Keys are normalized to their text form (:func:`tables.keys.key_text`), as in every table.
    With ``versions`` or ``history_retention_ms`` it keeps history like a versioned
    :class:`~tables.reference.ReferenceTable` (same rules, :mod:`tables.versions`): ``put``'s
    ``timestamp`` is the event time, and an out-of-order one changes only the past.
    """

    def __init__(
        self,
        name: str,
        key_field: str | None = None,
        topic: str = "",
        *,
        versions: int | None = None,
        history_retention_ms: int | None = None,
        as_of_expired: str = "null",
    ) -> None:
        self._name = name
        self._key_field = key_field
        self._topic = topic or name
        self._rows: dict[Key, Value] = {}
        self._feed = ChangeFeed(name)
        self._indexes = IndexRegistry(self.items, self._feed.subscribe)
        self._stats = TableStats(name=name, topic=self._topic, ready=True, running=True)
        self._version = 0
        self._history: MemoryHistory | None = None
        if versions is not None or history_retention_ms is not None:
            policy = VersionPolicy(versions, history_retention_ms, as_of_expired == "error")
            self._history = MemoryHistory(policy)

    @classmethod
    def from_spec(cls, spec: TableSpec) -> MemoryTable:
        return cls(
            spec.name,
            spec.key_field,
            spec.topic,
            versions=spec.versions,
            history_retention_ms=spec.history_retention_ms,
            as_of_expired=spec.as_of_expired,
        )

    # -- writes ---------------------------------------------------------------------------------
    def put(self, key: Key, value: Value | None, timestamp: int = 0) -> Change | None:
        """Insert, update or (``value is None``) delete ``key``; returns the change, if any.

        On a versioned table a ``timestamp`` older than the key's latest version only adds to its
        history (no change to the present, None returned).
        """
        key = key_text(key)
        seq = self._version + 1
        if self._history is not None:
            written, latest = self._history.put(key, seq, timestamp, value)
            if written:
                self._version = seq
            if not latest:
                return None
        old = self._rows.get(key)
        if value is None:
            if key not in self._rows:
                return None
            del self._rows[key]
            op = Op.DELETE
            self._stats.deletes += 1
        elif key in self._rows:
            self._rows[key] = value
            op = Op.UPDATE
            self._stats.updates += 1
        else:
            self._rows[key] = value
            op = Op.INSERT
            self._stats.inserts += 1
        self._version = seq
        change = Change(key, op, value, old, timestamp, version=seq, topic=self._topic)
        self._stats.last_updated = time.time()
        self._feed.publish(change)
        return change

    def put_row(self, row: dict[str, Any], timestamp: int = 0) -> Change | None:
        """Insert or update a row keyed by its ``key_field``."""
        if self._key_field is None:
            raise ValueError(f"table {self._name!r} has no key field; use put(key, value)")
        return self.put(row[self._key_field], row, timestamp)

    def delete(self, key: Key, timestamp: int = 0) -> Change | None:
        return self.put(key, None, timestamp)

    # -- the Table protocol -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> str:
        return "memory"

    @property
    def key_field(self) -> str | None:
        return self._key_field

    def describe(self) -> str:
        return "memory"

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        get = self.get
        return {k: v for k in keys if (v := get(k)) is not None}

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]:
        """Up to ``limit`` rows in key order, starting after key ``after``."""
        keys = sorted(k for k in self._rows if after is None or k > after)[:limit]
        return [(k, self._rows[k]) for k in keys]

    @property
    def topic(self) -> str:
        return self._topic

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        try:
            return self._rows.get(key_text(key), default)
        except TypeError:
            return default

    def contains_key(self, key: Key) -> bool:
        try:
            return key_text(key) in self._rows
        except TypeError:
            return False

    def keys(self) -> list[Key]:
        return list(self._rows)

    def items(self) -> Iterator[tuple[Key, Value]]:
        return iter(list(self._rows.items()))

    def __len__(self) -> int:
        return len(self._rows)

    def is_empty(self) -> bool:
        return not self._rows

    def snapshot(self) -> dict[Key, Value]:
        return dict(self._rows)

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return {k: fn(v) for k, v in self._rows.items()}

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return {k: v for k, v in self._rows.items() if predicate(k, v)}

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> Unsubscribe:
        return self._feed.subscribe(listener, last=last)

    def changes(self, maxsize: int = DEFAULT_STREAM_QUEUE) -> ChangeStream:
        """``async for change in table.changes()``; see :class:`tables.changes.ChangeStream`."""
        return self._feed.stream(maxsize)

    def index(self, field: str) -> HashIndex:
        return self._indexes.get(field)

    def stats(self) -> TableStats:
        self._stats.size = len(self._rows)
        return self._stats

    @property
    def is_ready(self) -> bool:
        return True

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        return True

    # -- the VersionedTable protocol ------------------------------------------------------------
    @property
    def versioned(self) -> bool:
        return self._history is not None

    @property
    def version(self) -> int:
        return self._version

    @property
    def stream_time(self) -> int:
        return 0 if self._history is None else self._history.stream_time

    def _need_history(self) -> MemoryHistory:
        if self._history is None:
            raise NotVersionedError(E_NOT_VERSIONED.format(table=self._name), table=self._name)
        return self._history

    def get_as_of(self, key: Key, timestamp: int) -> Value | None:
        history = self._need_history()
        try:
            k = key_text(key)
        except TypeError:
            return None
        found, expired = history.as_of(k, timestamp)
        if expired and history.policy.expired_is_error:
            raise HistoryExpiredError(
                E_EXPIRED.format(table=self._name, key=k, timestamp=timestamp),
                table=self._name,
                key=k,
                timestamp=timestamp,
            )
        return None if found is None else found.value

    def get_at_version(self, key: Key, version: int) -> Value | None:
        found = find_at_version(self._need_history().get(key_text(key)), version)
        return None if found is None else found.value

    def history(self, key: Key) -> list[VersionRecord]:
        return records(self._need_history().get(key_text(key)), lambda v: v)

    def get_changes_since(self, version: int) -> list[Change]:
        return self._need_history().changes_since(version)

    def compact(self, retain_versions: int) -> int:
        return self._need_history().compact(retain_versions)
