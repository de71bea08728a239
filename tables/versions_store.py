"""History of a versioned table in RocksDB: the ``versions`` column family of its store.

Layout: ``u32 key length | key | u64 timestamp (sign bit flipped)`` -> ``i64 version | u8 flags |
JSON bytes``. A key's versions are adjacent and ordered by event time, so an as-of read is one
``seek_for_prev``; flags say whether the version holds a row (else it is a delete) and whether
older history was dropped (``truncated``). Writes go through the table's :class:`StoreBatch`,
with the rows and offsets.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterator

from rocksdict import Rdict

from tables.protocol import Change, Value
from tables.store import StoreBatch, TableStore
from tables.versions import (
    E_RETAIN,
    Version,
    VersionPolicy,
    history_changes,
    prune,
    truncate,
)

_KLEN = struct.Struct(">I")
_TS = struct.Struct(">Q")
_HEAD = struct.Struct(">qB")
_SIGN = 1 << 63
_MAX_TS = (1 << 64) - 1
_PRESENT = 1
_TRUNCATED = 2
#: Versions a background sweep step examines (keeps each step short on the event loop).
SWEEP_STEP = 20_000


class _Expired(enum.Enum):
    EXPIRED = "expired"


#: What :meth:`VersionStore.as_of` returns for a read older than the kept history.
EXPIRED = _Expired.EXPIRED


def prefix(skey: bytes) -> bytes:
    return _KLEN.pack(len(skey)) + skey


def version_key(skey: bytes, timestamp: int) -> bytes:
    return _KLEN.pack(len(skey)) + skey + _TS.pack(timestamp + _SIGN)


def encode(v: Version) -> bytes:
    flags = (0 if v.value is None else _PRESENT) | (_TRUNCATED if v.truncated else 0)
    return _HEAD.pack(v.seq, flags) + (v.value or b"")


def decode(vkey: bytes, raw: bytes) -> Version:
    seq, flags = _HEAD.unpack_from(raw)
    value = raw[_HEAD.size :] if flags & _PRESENT else None
    return Version(_TS.unpack_from(vkey, len(vkey) - 8)[0] - _SIGN, seq, value, bool(flags & 2))


def split(vkey: bytes) -> bytes:
    """The table key of a version key."""
    return vkey[_KLEN.size : len(vkey) - _TS.size]


class VersionStore:
    """Reads and writes of one table's history; the store owns the database."""

    def __init__(self, store: TableStore, policy: VersionPolicy) -> None:
        self.store = store
        self.policy = policy
        self._sweep_from: bytes | None = None

    def _cf(self) -> Rdict | None:
        return self.store.versions

    # -- reads ------------------------------------------------------------------------------------
    def load(self, skey: bytes) -> list[Version]:
        cf = self._cf()
        if cf is None:
            return []
        pre = prefix(skey)
        it = cf.iter()
        it.seek(pre)
        out = []
        while it.valid():
            k = it.key()
            if not k.startswith(pre):
                break
            out.append(decode(k, it.value()))
            it.next()
        return out

    def as_of(self, skey: bytes, timestamp: int) -> bytes | _Expired | None:
        """The stored bytes valid at ``timestamp``, None (no row), or :data:`EXPIRED`."""
        cf = self._cf()
        if cf is None:
            return None
        horizon = self.policy.horizon(self.store.stream_time)
        if horizon is not None and timestamp < horizon:
            return EXPIRED
        pre = prefix(skey)
        it = cf.iter()
        it.seek_for_prev(pre + _TS.pack(min(max(0, timestamp + _SIGN), _MAX_TS)))
        if it.valid() and it.key().startswith(pre):
            raw: bytes = it.value()
            return raw[_HEAD.size :] if raw[8] & _PRESENT else None
        it.seek(pre)  # nothing at or before: is the key's history truncated?
        if it.valid() and it.key().startswith(pre) and it.value()[8] & _TRUNCATED:
            return EXPIRED
        return None

    def _keys(self, start: bytes | None = None) -> Iterator[tuple[bytes, list[Version]]]:
        """Every key's history in key order (from version key ``start``)."""
        cf = self._cf()
        if cf is None:
            return
        it = cf.iter()
        if start is None:
            it.seek_to_first()
        else:
            it.seek(start)
        current: bytes | None = None
        history: list[Version] = []
        while it.valid():
            k = it.key()
            skey = split(k)
            if skey != current:
                if current is not None:
                    yield current, history
                current, history = skey, []
            history.append(decode(k, it.value()))
            it.next()
        if current is not None:
            yield current, history

    def changes_since(self, since: int, decode_value: Callable[[bytes], Value]) -> list[Change]:
        """Retained versions written after ``since``, in version order (a scan of all history)."""
        out = [
            c
            for skey, history in self._keys()
            if any(v.seq > since for v in history)
            for c in history_changes(skey.decode(), history, since, decode_value)
        ]
        out.sort(key=lambda c: c.version)
        return out

    # -- writes -----------------------------------------------------------------------------------
    @staticmethod
    def write(batch: StoreBatch, skey: bytes, before: list[Version], after: list[Version]) -> None:
        """Put into ``batch`` what turns the stored ``before`` into ``after``."""
        old = {v.timestamp: encode(v) for v in before}
        for v in after:
            raw = encode(v)
            if old.pop(v.timestamp, None) != raw:
                batch.put_version(version_key(skey, v.timestamp), raw)
        for ts in old:
            batch.delete_version(version_key(skey, ts))

    def _rewrite(self, changed: list[tuple[bytes, list[Version], list[Version]]]) -> None:
        batch = self.store.batch()
        for skey, before, after in changed:
            self.write(batch, skey, before, after)
        self.store.commit(batch)

    def compact(self, retain_versions: int) -> int:
        """Keep the newest ``retain_versions`` versions of every key; returns how many went."""
        if retain_versions < 1:
            raise ValueError(E_RETAIN.format(retain=retain_versions))
        dropped = 0
        changed: list[tuple[bytes, list[Version], list[Version]]] = []
        for skey, history in self._keys():
            before = [_copy(v) for v in history]
            removed = truncate(history, len(history) - retain_versions)
            if removed:
                dropped += len(removed)
                changed.append((skey, before, history))
            if len(changed) >= SWEEP_STEP:
                self._rewrite(changed)
                changed = []
        if changed:
            self._rewrite(changed)
        return dropped

    def sweep(self, step: int = SWEEP_STEP) -> int:
        """Age retention over up to ``step`` versions, resuming where the last call stopped.

        Count retention happens on every write; age moves with stream time, so a loader calls
        this between batches to drop what stream time made unreachable. Returns versions dropped.
        """
        if self.policy.retention_ms is None:
            return 0
        seen = dropped = 0
        changed: list[tuple[bytes, list[Version], list[Version]]] = []
        self._sweep_from, start = None, self._sweep_from
        for skey, history in self._keys(start):
            if seen >= step:
                self._sweep_from = prefix(skey)
                break
            seen += len(history)
            before = [_copy(v) for v in history]
            removed = prune(history, self.policy, self.store.stream_time)
            if removed:
                dropped += len(removed)
                changed.append((skey, before, history))
        if changed:
            self._rewrite(changed)
        return dropped


def _copy(v: Version) -> Version:
    return Version(v.timestamp, v.seq, v.value, v.truncated)


def apply_history(
    versions: VersionStore,
    batch: StoreBatch,
    histories: dict[bytes, tuple[list[Version], list[Version]]],
) -> None:
    """Prune every key a batch touched and add its history writes to the batch."""
    for skey, (before, after) in histories.items():
        prune(after, versions.policy, batch.stream_time)
        versions.write(batch, skey, before, after)


def loaded(versions: VersionStore, skey: bytes) -> tuple[list[Version], list[Version]]:
    """(stored history, working copy) of one key, for :func:`apply_history`."""
    before = versions.load(skey)
    return before, [_copy(v) for v in before]
