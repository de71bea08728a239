"""What the row cache tests count (tests/unit/tables/test_rowcache*.py)."""

from __future__ import annotations

from tables.rowcache import RAW_ENTRY_OVERHEAD, RowCache


def raw_size(cache: RowCache) -> int:
    """The bytes level's size counted from what it holds (the cache keeps a running total)."""
    return sum(len(k) + RAW_ENTRY_OVERHEAD + len(v or b"") for k, v in cache.raw.items())
