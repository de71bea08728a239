"""What a reference table's readers and its loader share (:class:`TableState`): the store, the
change feed, the row cache, indexes, stats and readiness; and how stored bytes are decoded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec

from core import codec
from tables.cache_settings import DEFAULTS
from tables.changes import ChangeFeed
from tables.indexes import IndexRegistry
from tables.protocol import Key, TableStats, Value
from tables.rowcache import RowCache
from tables.spec import TableSpec
from tables.store import StoreBatch, TableStore
from tables.versions import VersionPolicy
from tables.versions_store import VersionStore


def stored_decoder(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """How to decode bytes the store holds, which passed ``decode`` when they were loaded.

    The checks :func:`core.codec.loads` makes on records from outside — the nesting depth, the
    regex scan for integers beyond 64 bits (orjson would read them as floats) — were made then;
    msgspec alone gives the same values (ints of any size exact, floats correctly rounded) in a
    third of the time (docs/BENCHMARKS.md, as-of reads). Whatever msgspec refuses goes to
    ``decode`` itself, so no stored value decodes differently.
    """
    if decode is codec.loads_exact:
        return codec.parse_exact  # loads_exact without the depth check
    if decode is not codec.loads:
        return decode
    plain = msgspec.json.Decoder().decode

    def stored(raw: bytes) -> Any:
        try:
            return plain(raw)
        except msgspec.DecodeError:
            return decode(raw)

    return stored


class TableState:
    """What a table's readers and its loader share: store, change feed, stats, readiness."""

    def __init__(self, spec: TableSpec, store: TableStore, rows: RowCache | None = None) -> None:
        self.spec = spec
        self.store = store
        self.decode: Callable[[bytes], Any] = (
            codec.loads_exact if spec.exact_decimals else codec.loads
        )
        #: Decodes what the store holds (rows, versions): the same values, fewer checks.
        self.decode_stored = stored_decoder(self.decode)
        self.feed = ChangeFeed(spec.name)
        #: Decoded rows of recent ``get()`` calls; the loader drops the keys it writes.
        self.rows = rows if rows is not None else DEFAULTS.cache()
        #: Awaited by the loader after it published a batch's changes (the changes topic).
        self.after_publish: list[Callable[[], Awaitable[None]]] = []
        policy = VersionPolicy.of(spec)
        self.versions = VersionStore(store, policy) if policy is not None else None
        self.indexes = IndexRegistry(self.items, self.feed.subscribe)
        self.stats = TableStats(name=spec.name, topic=spec.topic)
        self._ready = asyncio.Event()
        self._updated = asyncio.Event()

    def batch(self) -> StoreBatch:
        """A write batch on the store; it tracks the keys it writes while rows are cached, and
        their bytes while the row cache fills from writes (:attr:`RowCache.fill`)."""
        rows = self.rows
        # A cold restore's too: its first reads once ready are then answered from memory (a
        # RocksDB read with its block cache cold had p99 ~10 µs), and the preload decodes
        # those bytes (docs/BENCHMARKS.md "getcold": ~0.25 µs a row more of restore CPU).
        return self.store.batch(track=bool(rows), values=rows.wants_values)

    def commit(self, batch: StoreBatch) -> None:
        """Commits ``batch`` and drops the cached rows of the keys it wrote, before any reader
        runs again (no await in between). Every writer of the store goes through here: a row
        cache invalidated only by the loader served stale rows to other writers' readers."""
        self.store.commit(batch)
        written = batch.written
        if written is not None:
            # A batch the store refused (made before a reset or rebuild) drops keys, keeps none.
            kept = batch.values if self.store.committed == batch.serial else None
            self.rows.written(written, kept)
        elif self.rows:  # rows cached after the batch was made (untracked): start over
            self.rows.clear()
        # Sized by the table's rows: follow their count, once ready (a restore fills the bytes
        # level within the bounds it had, sized once ready by the preload).
        if self.rows.budget and not self.store.restoring:
            pairs = zip(written, kept, strict=True) if written is not None and kept else None
            self.rows.follow(self.store.count, pairs, self.decode_stored)

    def items(self) -> Iterator[tuple[Key, Value]]:
        decode = self.decode_stored
        for k, v in self.store.items():
            yield k.decode(), decode(v)

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def set_ready(self) -> None:
        self.stats.ready = True
        self._ready.set()
        self.notify_updated()

    def reset(self) -> None:
        self.rows.clear()
        self._ready.clear()
        self.stats = TableStats(name=self.spec.name, topic=self.spec.topic, running=True)

    def notify_updated(self) -> None:
        self._updated.set()
        self._updated = asyncio.Event()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def wait_updated(self) -> None:
        await self._updated.wait()
