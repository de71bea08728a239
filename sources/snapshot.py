"""``cache='full'``: the whole (projected) table in memory, reloaded every ``refresh`` as a diff
applied in one step; a local table (scan, change feed, indexes). See :mod:`sources.table`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mode import Service

from sources.batching import SourceUnavailable
from sources.config import SourceConfig
from sources.table import Database, ExternalTable
from tables.changes import DEFAULT_STREAM_QUEUE, ChangeStream
from tables.indexes import HashIndex
from tables.keys import key_text
from tables.memory import MemoryTable
from tables.protocol import ChangeListener, Key, Unsubscribe, Value


class SnapshotTable(ExternalTable):
    """``cache='full'``: the table held in memory, reloaded every ``refresh``."""

    def __init__(self, config: SourceConfig, db: Database, **kwargs: Any) -> None:
        super().__init__(config, db, **kwargs)
        self._snap = MemoryTable(config.table, config.key)
        self.refreshes = 0
        self.refresh_failures = 0

    def cache_counts(self) -> dict[str, int]:
        return {
            "cached_rows": len(self._snap),
            "refreshes": self.refreshes,
            "refresh_failures": self.refresh_failures,
        }

    def load_sync(self) -> None:
        self.apply(self._fetch_all())

    def apply(self, rows: list[tuple[Any, dict[str, Any]]]) -> None:
        """Replace the snapshot by ``rows``: only the differences are applied (and published),
        all in one synchronous step."""
        table = self._snap
        fresh = {key_text(k): v for k, v in rows}
        for k in [k for k in table.keys() if k not in fresh]:  # noqa: SIM118
            table.put(k, None)
        for k, v in fresh.items():
            if table.get(k) != v:
                table.put(k, v)
        self.refreshes += 1

    async def refresh(self) -> bool:
        """Reload now; False (the old snapshot kept, counted) when the database cannot answer."""
        try:
            rows = await self.caller.acall(self._fetch_all, 0)
        except SourceUnavailable:
            self.refresh_failures += 1
            return False
        self.apply(rows)
        return True

    @Service.task
    async def _refresher(self) -> None:
        every = self.config.refresh
        if not every:
            return
        while not self.should_stop:
            await self.sleep(every)
            if self._ready:
                await self.refresh()

    # -- the LocalTable protocol, from the snapshot ----------------------------------------------
    def get(self, key: Key, default: Value | None = None) -> Value | None:
        return self._snap.get(key, default)

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        return self._snap.get_many(keys)

    def contains_key(self, key: Key) -> bool:
        return self._snap.contains_key(key)

    def keys(self) -> list[Key]:
        return self._snap.keys()

    def items(self) -> Iterator[tuple[Key, Value]]:
        return self._snap.items()

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]:
        return self._snap.page(limit, after)

    def __len__(self) -> int:
        return len(self._snap)

    def is_empty(self) -> bool:
        return self._snap.is_empty()

    def snapshot(self) -> dict[Key, Value]:
        return self._snap.snapshot()

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return self._snap.map_values(fn)

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return self._snap.filter(predicate)

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> Unsubscribe:
        return self._snap.subscribe(listener, last=last)

    def changes(self, maxsize: int = DEFAULT_STREAM_QUEUE) -> ChangeStream:
        return self._snap.changes(maxsize)

    def index(self, field: str) -> HashIndex:
        return self._snap.index(field)
