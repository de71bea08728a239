"""History of a versioned table in RocksDB: the ``versions`` column family of its store.

Layout: ``u32 key length | key | u64 timestamp (sign bit flipped)`` -> ``i64 version | u8 flags |
u32 count | JSON bytes``. A key's versions are adjacent and ordered by event time, so an as-of
read is one ``seek_for_prev`` (at or after the table's stream time: a get of the current row);
flags say whether the version holds a row (else it is a delete) and whether older history was
dropped (``truncated``); ``count`` on a key's latest version is how many versions it has, so an
in-order write needs no scan of the key's history. Writes go through the table's
:class:`StoreBatch`, with the rows and offsets.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from collections.abc import Callable, Iterator
from typing import Any

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
from tables.versions_cache import DEFAULT_MAX_VERSIONS, PastCache, PastVersions

_KLEN = struct.Struct(">I")
_TS = struct.Struct(">Q")
_HEAD = struct.Struct(">qBI")
_SIGN = 1 << 63
_MAX_TS = (1 << 64) - 1
_LAST = _TS.pack(_MAX_TS)
_FLAGS = 8  # offset of the flags byte in a stored value
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


def _ts(vkey: bytes) -> int:
    return int(_TS.unpack_from(vkey, len(vkey) - 8)[0]) - _SIGN


def encode(v: Version) -> bytes:
    flags = (0 if v.value is None else _PRESENT) | (_TRUNCATED if v.truncated else 0)
    return _HEAD.pack(v.seq, flags, v.count) + (v.value or b"")


def decode(vkey: bytes, raw: bytes) -> Version:
    seq, flags, count = _HEAD.unpack_from(raw)
    value = raw[_HEAD.size :] if flags & _PRESENT else None
    return Version(_ts(vkey), seq, value, bool(flags & _TRUNCATED), count, False)


def _with_truncated(raw: bytes) -> bytes:
    return raw[:_FLAGS] + bytes((raw[_FLAGS] | _TRUNCATED,)) + raw[_FLAGS + 1 :]


def split(vkey: bytes) -> bytes:
    """The table key of a version key."""
    return vkey[_KLEN.size : len(vkey) - _TS.size]


def settle(history: list[Version]) -> None:
    """Keep the key's version count on its latest version."""
    if history and history[-1].count != len(history):
        history[-1].count = len(history)
        history[-1].dirty = True


class VersionStore:
    """Reads and writes of one table's history; the store owns the database."""

    def __init__(
        self, store: TableStore, policy: VersionPolicy, cache_versions: int = DEFAULT_MAX_VERSIONS
    ) -> None:
        self.store = store
        self.policy = policy
        self._retention = policy.retention_ms
        self._sweep_from: bytes | None = None
        #: Decoded past versions of recently read keys (:mod:`tables.versions_cache`); every
        #: commit of the store drops the keys whose versions it wrote.
        self.past = PastCache(cache_versions, self._read_past)
        store.history_written = self._written

    def _written(self, vkeys: list[bytes]) -> None:
        self.past.drop(map(split, vkeys), len(vkeys))

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
        store = self.store
        if timestamp >= store.stream_time:
            # No version the table holds is newer (stream time is the newest timestamp it has
            # seen, committed with the rows): the key's latest version is its current row, a
            # point get. The common case of a stream join, whose records ask for "now".
            return store.get(skey)
        return self.seek(skey, timestamp)

    def decoded_as_of(
        self, skey: bytes, timestamp: int, decode: Callable[[bytes], Any]
    ) -> Any | _Expired | None:
        """The decoded row valid at ``timestamp`` before the stream time (None: no row), or
        :data:`EXPIRED`, from the cache of past versions (the key's history read on a miss)."""
        store = self.store
        retention = self._retention
        if retention is not None and timestamp < store.stream_time - retention:
            return EXPIRED
        past = self.past
        if past.opened != store.openings:  # opened again (a rebuild): other histories
            past.clear()
            past.opened = store.openings
        history = past.keys.get(skey)
        if history is None:
            loop = asyncio._get_running_loop()
            if loop is not None:
                # Answered by the seek; the history loads after this read (PastCache.defer).
                raw = self.seek(skey, timestamp)
                if raw is None or raw is EXPIRED:
                    value: Any = raw
                else:
                    value = decode(raw)
                past.defer(skey, loop)
                return value
            history = self._read_past(skey)
            if history is None:  # closed
                return None
            past.put(skey, history)
        value, expired = history.at(timestamp, decode)
        return EXPIRED if expired else value

    def _read_past(self, skey: bytes) -> PastVersions | None:
        """The key's retained history from the store: one seek, then its versions in order."""
        it = self.store.history_iter()
        if it is None:
            return None
        pre = prefix(skey)
        it.seek(pre)
        stamps: list[int] = []
        raws: list[bytes | None] = []
        truncated = False
        while it.valid():
            k = it.key()
            if not k.startswith(pre):
                break
            raw: bytes = it.value()
            flags = raw[_FLAGS]
            if not stamps:
                truncated = bool(flags & _TRUNCATED)
            stamps.append(_ts(k))
            raws.append(raw[_HEAD.size :] if flags & _PRESENT else None)
            it.next()
        return PastVersions(stamps, raws, truncated)

    def seek(self, skey: bytes, timestamp: int) -> bytes | _Expired | None:
        """:meth:`as_of` from the history alone, without the current-row shortcut: one seek."""
        store = self.store
        it = store.history_iter()
        if it is None:
            return None
        stream_time = store.stream_time
        retention = self._retention
        if retention is not None and timestamp < stream_time - retention:
            return EXPIRED
        pre = _KLEN.pack(len(skey)) + skey
        stamp = timestamp + _SIGN
        it.seek_for_prev(
            pre + _TS.pack(stamp if 0 <= stamp <= _MAX_TS else max(0, min(stamp, _MAX_TS)))
        )
        if it.valid() and it.key().startswith(pre):
            raw: bytes = it.value()
            return raw[_HEAD.size :] if raw[_FLAGS] & _PRESENT else None
        it.seek(pre)  # nothing at or before: is the key's history truncated?
        if it.valid() and it.key().startswith(pre) and it.value()[_FLAGS] & _TRUNCATED:
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
    def append(
        self, batch: StoreBatch, skey: bytes, timestamp: int, seq: int, value: bytes | None
    ) -> bool:
        """Write a version newer than the key's latest, with retention; False when it is not.

        Reads the latest version (its count) and, only when retention drops something, the
        oldest ones: no scan of the key's history. The caller uses :meth:`load` and
        :func:`~tables.versions.put_version` for the rest (and for keys written twice in a batch,
        whose first write this read would not see).
        """
        cf = self._cf()
        assert cf is not None
        pre = prefix(skey)
        it = cf.iter()
        it.seek_for_prev(pre + _LAST)
        count = 0
        if it.valid():
            k = it.key()
            if k.startswith(pre):
                if _ts(k) >= timestamp:
                    return False
                count = _HEAD.unpack_from(it.value())[2]
        new = Version(timestamp, seq, value, count=count + 1)
        policy = self.policy
        horizon = policy.horizon(batch.stream_time)
        excess = 0 if policy.max_versions is None else new.count - policy.max_versions
        if count and (excess > 0 or horizon is not None):
            it.seek(pre)
            cur_k, cur_v = it.key(), it.value()
            while new.count > 1:
                it.next()
                nxt = it.key() if it.valid() else None
                if nxt is not None and not nxt.startswith(pre):
                    nxt = None
                # Drop the oldest while over the count, or while its successor is past the horizon.
                if excess <= 0 and (horizon is None or (_ts(nxt) if nxt else timestamp) > horizon):
                    if new.count <= count:  # something went: the new oldest is truncated
                        batch.put_version(cur_k, _with_truncated(cur_v))
                    break
                batch.delete_version(cur_k)
                excess -= 1
                new.count -= 1
                if nxt is None:
                    new.truncated = True  # every stored version went
                    break
                cur_k, cur_v = nxt, it.value()
        batch.put_version(version_key(skey, timestamp), encode(new))
        return True

    @staticmethod
    def write(batch: StoreBatch, skey: bytes, before: set[int], after: list[Version]) -> None:
        """Add to ``batch`` what turns the stored versions (timestamps ``before``) into ``after``.

        Only dirty versions are written; the latest carries the count.
        """
        settle(after)
        for v in after:
            before.discard(v.timestamp)
            if v.dirty:
                batch.put_version(version_key(skey, v.timestamp), encode(v))
        for ts in before:
            batch.delete_version(version_key(skey, ts))

    def _rewrite(self, changed: list[tuple[bytes, set[int], list[Version]]]) -> None:
        batch = self.store.batch()
        for skey, before, after in changed:
            self.write(batch, skey, before, after)
        self.store.commit(batch)

    def compact(self, retain_versions: int) -> int:
        """Keep the newest ``retain_versions`` versions of every key; returns how many went."""
        if retain_versions < 1:
            raise ValueError(E_RETAIN.format(retain=retain_versions))
        dropped = 0
        changed: list[tuple[bytes, set[int], list[Version]]] = []
        for skey, history in self._keys():
            before = {v.timestamp for v in history}
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
        changed: list[tuple[bytes, set[int], list[Version]]] = []
        self._sweep_from, start = None, self._sweep_from
        for skey, history in self._keys(start):
            if seen >= step:
                self._sweep_from = prefix(skey)
                break
            seen += len(history)
            before = {v.timestamp for v in history}
            removed = prune(history, self.policy, self.store.stream_time)
            if removed:
                dropped += len(removed)
                changed.append((skey, before, history))
        if changed:
            self._rewrite(changed)
        return dropped


#: A key's history while a batch is applied: stored timestamps, working copy.
Loaded = tuple[set[int], list[Version]]


def loaded(versions: VersionStore, skey: bytes) -> Loaded:
    history = versions.load(skey)
    return {v.timestamp for v in history}, history


def apply_history(
    versions: VersionStore, batch: StoreBatch, histories: dict[bytes, Loaded]
) -> None:
    """Prune every key a batch loaded and add its history writes to the batch."""
    for skey, (before, after) in histories.items():
        prune(after, versions.policy, batch.stream_time)
        versions.write(batch, skey, before, after)
