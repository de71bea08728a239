"""The partial cache of an external table: LRU, max rows, expire-after-write TTL, and a negative
cache (keys the database has no row for) with its own TTL.

An entry is ``(expires_at, value)``; ``value`` None is a negative entry. Expired entries stay
until evicted: the ``stale`` policy serves them while the database is down. Hits move the entry
to the LRU end (``OrderedDict.move_to_end``, C code: the cached path stays a few hundred ns).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: What :meth:`LookupCache.lookup` answers for a key with no fresh entry.
MISS: Any = object()


class LookupCache:
    """Key → value (or a cached absence), at most ``max_rows`` entries."""

    __slots__ = (
        "_entries",
        "clock",
        "hits",
        "max_rows",
        "misses",
        "missing_ttl",
        "negative_hits",
        "stale_serves",
        "ttl",
    )

    def __init__(
        self,
        max_rows: int,
        ttl: float,
        missing_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rows = max_rows
        self.ttl = ttl
        self.missing_ttl = missing_ttl
        self.clock = clock
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.negative_hits = 0
        self.misses = 0
        self.stale_serves = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Any) -> bool:
        """Whether ``key`` has a fresh entry (found or absent); counts nothing."""
        entry = self._entries.get(key)
        return entry is not None and entry[0] > self.clock()

    def lookup(self, key: Any) -> Any:
        """The cached value, None for a cached absence, :data:`MISS` when none is fresh."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            self._entries.move_to_end(key)
            if entry[1] is None:
                self.negative_hits += 1
            else:
                self.hits += 1
            return entry[1]
        self.misses += 1
        return MISS

    def stale(self, key: Any) -> Any:
        """The last value cached for ``key``, fresh or not (MISS when none); counted as stale."""
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        self.stale_serves += 1
        return entry[1]

    def missing(self, keys: Iterable[Any]) -> list[Any]:
        """The keys without a fresh entry (what a batch must fetch)."""
        entries, now = self._entries, self.clock()
        out = []
        for k in keys:
            entry = entries.get(k)
            if entry is None or entry[0] <= now:
                out.append(k)
        return out

    def put(self, found: Mapping[Any, Any], absent: Iterable[Any] = ()) -> None:
        """Store fetched rows, and absences for keys the database had no row for."""
        entries, now = self._entries, self.clock()
        until, until_missing = now + self.ttl, now + self.missing_ttl
        for k, v in found.items():
            entries[k] = (until, v)
            entries.move_to_end(k)
        for k in absent:
            entries[k] = (until_missing, None)
            entries.move_to_end(k)
        while len(entries) > self.max_rows:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def counts(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "negative_hits": self.negative_hits,
            "stale_serves": self.stale_serves,
            "cached_rows": len(self._entries),
        }
