"""Decoded past versions of recently read keys, for as-of reads into the past.

An as-of read before the table's stream time is a RocksDB ``seek_for_prev`` and a decode
(p50 ~5 µs, p99 11-42 µs on the shared machine: docs/BENCHMARKS.md). Readers that ask for the
past ask for the same keys again (a stream join re-reading late records, a backfill), so the first
read of a key loads its whole retained history once — timestamps and stored bytes, one seek and
a short scan — and later reads are a bisect, each version decoded on its first use.

Kept exact by the writes themselves: every version a batch writes or deletes (new versions,
retention, tombstones, compaction) names its key, and the store's commit drops those keys
(:meth:`PastCache.drop`), before any reader runs again; a store opened again (a rebuild) starts
the cache over. Reads older than the retention horizon are answered EXPIRED before the cache is
asked, so versions that age retention has yet to sweep never answer for them. Bounded by the
versions held; when full it starts over (hot keys come back at once).

Reading a key's history costs ~1 µs a version (an iterator step and two reads through
rocksdict each): a first read that loaded 10 versions had p99 ~28 µs against ~9 µs for the
seek alone. So under an event loop the first read of a key is answered by the seek
(:meth:`VersionStore.seek`) and the key's history is loaded right after, off the read
(:meth:`PastCache.defer`: a callback on the loop, :data:`DRAIN_STEP` keys at a time); without
a running loop it is loaded by the read itself, as before.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any

#: Versions kept per table: ~200 B each (timestamp, stored bytes), ~50 MB when full, plus the
#: decoded rows read.
DEFAULT_MAX_VERSIONS = 250_000
#: A batch writing versions of more keys than this clears the cache instead.
CLEAR_ABOVE = 2_000
#: Histories a deferred load reads per turn of the event loop (~15 µs each: ~4 ms a turn).
DRAIN_STEP = 256
_UNDECODED: Any = object()


class PastVersions:
    """One key's retained history: timestamps ascending, the stored bytes (None: a delete)."""

    __slots__ = ("raws", "stamps", "truncated", "values")

    def __init__(self, stamps: list[int], raws: list[bytes | None], truncated: bool) -> None:
        self.stamps = stamps
        self.raws = raws
        #: The oldest version is truncated (older ones were dropped): before it is expired.
        self.truncated = truncated
        self.values: list[Any] = [_UNDECODED] * len(stamps)

    def at(self, timestamp: int, decode: Callable[[bytes], Any]) -> tuple[Any, bool]:
        """(the decoded row valid at ``timestamp`` or None, whether that is expired history)."""
        i = bisect_right(self.stamps, timestamp)
        if i == 0:
            return None, self.truncated
        i -= 1
        value = self.values[i]
        if value is _UNDECODED:
            raw = self.raws[i]
            value = self.values[i] = None if raw is None else decode(raw)
        return value, False


class PastCache:
    """Table key (store bytes) -> :class:`PastVersions`, bounded by versions held."""

    __slots__ = ("_drainer", "held", "keys", "load", "max_versions", "opened", "pending")

    def __init__(
        self,
        max_versions: int = DEFAULT_MAX_VERSIONS,
        load: Callable[[bytes], PastVersions | None] | None = None,
    ) -> None:
        self.max_versions = max_versions
        self.keys: dict[bytes, PastVersions] = {}
        self.held = 0
        #: The store opening the cached histories were read from (a rebuild starts over).
        self.opened = -1
        #: Reads a key's history from the store (None: closed); for deferred loads.
        self.load = load
        #: Keys read once whose histories are to be loaded (:meth:`defer`).
        self.pending: dict[bytes, None] = {}
        # The loop a drain is scheduled on (None: none scheduled).
        self._drainer: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def put(self, skey: bytes, history: PastVersions) -> None:
        n = _weight(history)
        if n > self.max_versions:
            return
        if self.held + n > self.max_versions:
            self.clear()
        self.keys[skey] = history
        self.held += n

    def defer(self, skey: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """Load ``skey``'s history on ``loop`` soon, after the read that asked for it."""
        self.pending[skey] = None
        if self._drainer is not loop:  # none scheduled, or on a loop that no longer runs
            self._drainer = loop
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        """Load up to :data:`DRAIN_STEP` pending histories; the rest on the next turn. Each
        reads the store as it is now: a later commit drops the key as for any history."""
        self._drainer = None
        pending, keys, load = self.pending, self.keys, self.load
        if load is None:
            pending.clear()
            return
        for _ in range(min(DRAIN_STEP, len(pending))):
            skey, _ = pending.popitem()
            if skey in keys:
                continue
            history = load(skey)
            if history is None:  # closed: its histories are read again after a reopen
                pending.clear()
                return
            self.put(skey, history)
        if pending:
            self._drainer = loop = asyncio.get_running_loop()
            loop.call_soon(self._drain)

    def clear(self) -> None:
        self.keys.clear()
        self.held = 0

    def drop(self, skeys: Iterable[bytes], n: int) -> None:
        """Forget the histories of ``n`` table keys whose versions a commit wrote."""
        keys = self.keys
        if not keys:
            return
        if n > CLEAR_ABOVE:
            self.clear()
            return
        for skey in skeys:
            history = keys.pop(skey, None)
            if history is not None:
                self.held -= _weight(history)


def _weight(history: PastVersions) -> int:
    """What a key holds against the bound: its versions, at least one (a key without history
    is cached too, as a known miss)."""
    return len(history.stamps) or 1
