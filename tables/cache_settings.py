"""A reference table's row cache as configured (:class:`CacheSettings`): the one place its
defaults live. The worker's settings (``TABLESTREAM_TABLE_CACHE_*``, :mod:`app.settings`) take
their defaults from here, and a table built in code without any gets the same."""

from __future__ import annotations

from dataclasses import dataclass

from tables.rowcache import DEFAULT_BUDGET_MB, RowCache


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """A reference table's row cache (``TABLESTREAM_TABLE_CACHE_ROWS``, ``_MB``, ``_PRELOAD``)."""

    #: Decoded rows, a fixed bound (``mb`` then bounds the stored bytes alone); 0: sized from
    #: the table within ``mb`` (:meth:`RowCache.size_for`).
    rows: int = 0
    mb: float = DEFAULT_BUDGET_MB
    #: Fill the cache from the store once the table is ready (:mod:`tables.preload`), and
    #: from what batches write while it has room (a cold restore's too).
    preload: bool = True

    def cache(self) -> RowCache:
        if self.rows:
            return RowCache(self.rows, self.mb)
        return RowCache.budgeted(self.mb)


#: What a table built without cache settings gets: the worker's defaults.
DEFAULTS = CacheSettings()
