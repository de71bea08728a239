"""History of versioned tables: the rules every store shares, and the in-memory history.

A key's history is a list of :class:`Version` ordered by event timestamp; a version is valid from
its timestamp until the next one's, and a delete is a version whose value is None. Records are
placed by event time, not arrival: an out-of-order record lands in the past and changes the
present only when its timestamp is the newest (ties go to the later arrival). Retention keeps at
most ``max_versions`` per key and every version still needed to answer as-of reads at or after
``stream_time - retention_ms`` (stream time: the newest timestamp the table has seen, as in Kafka
Streams' versioned stores); as-of reads before that are *expired*. When retention drops a key's
oldest versions its new first version is marked ``truncated``: a read before it is expired too,
not "no row".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import TablestreamError
from tables.protocol import Change, Key, Op, Value, VersionRecord

if TYPE_CHECKING:
    from tables.spec import TableSpec

E_NOT_VERSIONED = (
    "table {table!r} keeps no history: declare it WITH (versions='N') or "
    "WITH (history_retention='7d')"
)
E_EXPIRED = (
    "table {table!r}: key {key!r} as of {timestamp} is older than the history the table keeps"
)
E_RETAIN = "retain_versions must be >= 1, got {retain}"


class NotVersionedError(TablestreamError):
    """A history read on a table that keeps no history."""


class HistoryExpiredError(TablestreamError):
    """An as-of read older than the retained history (tables WITH (as_of_expired='error'))."""


@dataclass(slots=True)
class Version:
    """One stored version: ``value`` is the stored form (bytes in RocksDB), None for a delete.

    ``count`` (the key's number of versions, kept on its latest) and ``dirty`` (must be written)
    serve the RocksDB store; the in-memory history ignores them.
    """

    timestamp: int
    seq: int
    value: Any
    truncated: bool = False
    count: int = 0
    dirty: bool = True


def _ts(v: Version) -> int:
    return v.timestamp


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """How much history a table keeps, and what an as-of read before it answers."""

    max_versions: int | None = None
    retention_ms: int | None = None
    expired_is_error: bool = False

    @classmethod
    def of(cls, spec: TableSpec) -> VersionPolicy | None:
        if not spec.versioned:
            return None
        return cls(spec.versions, spec.history_retention_ms, spec.as_of_expired == "error")

    def horizon(self, stream_time: int) -> int | None:
        """The oldest timestamp as-of reads still answer (None: no age bound)."""
        return None if self.retention_ms is None else stream_time - self.retention_ms


def put_version(history: list[Version], new: Version) -> tuple[bool, bool]:
    """Place ``new`` by timestamp (an equal timestamp replaces). Returns (written, is_latest).

    Deletes are kept even where they change nothing yet: a record arriving later with an older
    timestamp must still find itself hidden by them.
    """
    i = bisect_right(history, new.timestamp, key=_ts)
    if i > 0 and history[i - 1].timestamp == new.timestamp:
        new.truncated = history[i - 1].truncated
        history[i - 1] = new
        return True, i == len(history)
    latest = i == len(history)
    if i == 0 and history and history[0].truncated:
        new.truncated = True  # what came before the oldest retained version is still unknown
    history.insert(i, new)
    return True, latest


def prune(history: list[Version], policy: VersionPolicy, stream_time: int) -> list[Version]:
    """Apply retention to one key's history; returns the versions dropped (the latest stays)."""
    drop = 0
    if policy.max_versions is not None and len(history) > policy.max_versions:
        drop = len(history) - policy.max_versions
    horizon = policy.horizon(stream_time)
    if horizon is not None:
        # Version i answers reads in [ts_i, ts_i+1): it is needed while ts_i+1 > horizon.
        while drop < len(history) - 1 and history[drop + 1].timestamp <= horizon:
            drop += 1
    return truncate(history, drop)


def truncate(history: list[Version], drop: int) -> list[Version]:
    if drop <= 0:
        return []
    removed = history[:drop]
    del history[:drop]
    first = history[0]
    if not first.truncated:
        first.truncated = first.dirty = True
    return removed


def find_as_of(history: list[Version], timestamp: int) -> tuple[Version | None, bool]:
    """(the version valid at ``timestamp`` or None, whether that answer is expired history)."""
    i = bisect_right(history, timestamp, key=_ts)
    if i == 0:
        return None, bool(history) and history[0].truncated
    return history[i - 1], False


def find_at_version(history: list[Version], seq: int) -> Version | None:
    """The version the table served as latest once it had applied version ``seq``."""
    best: Version | None = None
    for v in history:
        if v.seq <= seq and (best is None or v.timestamp >= best.timestamp):
            best = v
    return best


def history_changes(
    key: Key, history: list[Version], since: int, decode: Callable[[Any], Value]
) -> Iterator[Change]:
    """The versions of one key written after ``since`` as changes (old value: the one before)."""
    prev: Any = None
    for v in history:
        if v.seq > since and not (v.value is None and prev is None):
            op = Op.DELETE if v.value is None else Op.INSERT if prev is None else Op.UPDATE
            yield Change(
                key,
                op,
                None if v.value is None else decode(v.value),
                None if prev is None else decode(prev),
                v.timestamp,
                version=v.seq,
            )
        prev = v.value


def records(history: list[Version], decode: Callable[[Any], Value]) -> list[VersionRecord]:
    return [
        VersionRecord(v.timestamp, v.seq, None if v.value is None else decode(v.value))
        for v in history
    ]


class MemoryHistory:
    """Every key's history in memory (the :class:`~tables.memory.MemoryTable` side)."""

    __slots__ = ("_keys", "policy", "stream_time")

    def __init__(self, policy: VersionPolicy) -> None:
        self.policy = policy
        self.stream_time = 0
        self._keys: dict[Key, list[Version]] = {}

    def put(self, key: Key, seq: int, timestamp: int, value: Value | None) -> tuple[bool, bool]:
        """Record a version; (written, is_latest) as :func:`put_version`."""
        self.stream_time = max(self.stream_time, timestamp)
        history = self._keys.setdefault(key, [])
        result = put_version(history, Version(timestamp, seq, value))
        prune(history, self.policy, self.stream_time)
        if not history:
            del self._keys[key]
        return result

    def as_of(self, key: Key, timestamp: int) -> tuple[Version | None, bool]:
        horizon = self.policy.horizon(self.stream_time)
        if horizon is not None and timestamp < horizon:
            return None, True
        return find_as_of(self._keys.get(key, []), timestamp)

    def get(self, key: Key) -> list[Version]:
        return self._keys.get(key, [])

    def changes_since(self, since: int) -> list[Change]:
        out = [c for k, h in self._keys.items() for c in history_changes(k, h, since, _same)]
        out.sort(key=lambda c: c.version)
        return out

    def compact(self, retain_versions: int) -> int:
        if retain_versions < 1:
            raise ValueError(E_RETAIN.format(retain=retain_versions))
        return sum(len(truncate(h, len(h) - retain_versions)) for h in self._keys.values())

    def sweep(self) -> int:
        """Apply age retention to every key (count retention is applied on every write)."""
        return sum(len(prune(h, self.policy, self.stream_time)) for h in self._keys.values())


def _same(value: Any) -> Any:
    return value
