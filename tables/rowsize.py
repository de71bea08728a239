"""What a table's rows cost in its row cache (:mod:`tables.rowcache`), measured on a sample of
them: the cache's budget (``TABLESTREAM_TABLE_CACHE_MB``) is split by these sizes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

#: What one decoded row costs beyond its own objects: its slot in ``rows`` (a dict of a few
#: 100k entries: ~32 bytes) and in the insertion order's deque (measured with tracemalloc:
#: 300k rows of ``bench.tables_load``, ~576 bytes a row, against :func:`decoded_size`'s 550).
ROW_ENTRY_OVERHEAD = 40
#: Stored rows decoded to measure a table's rows.
SIZE_SAMPLE = 64


def decoded_size(text: str, row: Any) -> int:
    """Bytes a decoded row held under its key text costs, about: the objects it owns (shared
    ones left out: None, bools, small ints, and the field names, which msgspec shares between
    the rows it decodes) and :data:`ROW_ENTRY_OVERHEAD`."""
    return sys.getsizeof(text) + _owned(row) + ROW_ENTRY_OVERHEAD


def _owned(value: Any) -> int:
    t = type(value)
    if t is dict:
        return sys.getsizeof(value) + sum(map(_owned, value.values()))
    if t is list:
        return sys.getsizeof(value) + sum(map(_owned, value))
    if value is None or t is bool or (t is int and -5 <= value <= 256):
        return 0
    return sys.getsizeof(value)


def row_sizes(
    stored: Iterable[tuple[bytes, bytes]], decode: Callable[[bytes], Any], raw_overhead: int
) -> tuple[float, float] | None:
    """What a decoded row and a row's stored bytes (``raw_overhead`` each too) cost on average
    over a sample of a table's stored rows (None: no rows)."""
    sample = list(stored)
    if not sample:
        return None
    n = len(sample)
    decoded = sum(decoded_size(k.decode(), decode(v)) for k, v in sample) / n
    return decoded, sum(len(k) + len(v) + raw_overhead for k, v in sample) / n
