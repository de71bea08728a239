"""A reference table: a Kafka topic kept as a live, persistent table (the seed's KTable).

:class:`ReferenceTable` is the Service and the Table protocol's face; what its readers and its
loader share lives in :class:`~tables.state.TableState` (importable from here too)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from mode import Service

from tables.cache_settings import DEFAULTS
from tables.changes import DEFAULT_STREAM_QUEUE, ChangeStream
from tables.changes_topic import ChangesTopicWriter
from tables.deadletter import DeadLetterWriter
from tables.indexes import HashIndex
from tables.keys import key_bytes
from tables.loader import TableLoader
from tables.preload import CHUNK as PRELOAD_CHUNK
from tables.preload import preload
from tables.protocol import (
    Change,
    ChangeListener,
    Key,
    TableStats,
    Unsubscribe,
    Value,
    VersionRecord,
)
from tables.rowcache import MISS, RowCache
from tables.spec import TableSpec
from tables.state import TableState as TableState
from tables.state import stored_decoder as stored_decoder
from tables.store import StoreOptions, TableStore
from tables.versions import (
    E_EXPIRED,
    E_NOT_VERSIONED,
    HistoryExpiredError,
    NotVersionedError,
    find_at_version,
    records,
)
from tables.versions_store import EXPIRED, VersionStore


class ReferenceTable(Service):
    """A table backed by a topic and a RocksDB store under ``data_dir/tables/<name>``.

    Reads (``get``, ``keys``, ``snapshot``, ...) are synchronous and served from local state; a
    join against a half-loaded table is a wrong answer, so readers ``await wait_until_ready()``.
    A table is a handle: copies share the same state, like the seed's ``Clone``.
    """

    def __init__(
        self,
        spec: TableSpec,
        data_dir: Path,
        bootstrap_servers: str,
        dead_letters: DeadLetterWriter | None = None,
        fetch_max_records: int = 10_000,
        partitions: set[int] | None = None,
        store_options: StoreOptions | None = None,
        client_id: str = "tablestream",
        read_committed: bool = False,
        max_skew_ms: int | None = 300_000,
        row_cache: RowCache | None = None,
        preload_cache: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        #: Skip what aborted transactions wrote (the worker runs exactly-once).
        self._isolation = "read_committed" if read_committed else "read_uncommitted"
        store = TableStore(data_dir / "tables" / spec.name, store_options)
        # No cache given: the worker's (tables.cache_settings); a cache given comes without the
        # preload unless asked for.
        if preload_cache is None:
            preload_cache = row_cache is None and DEFAULTS.preload
        self._state = TableState(spec, store, row_cache)
        self._rows = self._state.rows.rows  # get()'s hit path: one dict lookup
        self._raw = self._state.rows.raw  # its stored bytes, before RocksDB
        self._cache = self._state.rows
        # With the preload, the loader's batches after a restore fill the bytes level while it
        # has room (RowCache.fill); preload_cache() fills the cache from the store once ready.
        self._cache.fill = preload_cache
        self._decode = self._state.decode_stored
        #: Fill the row cache from the store once ready (preload_cache()).
        self._preload = preload_cache
        #: That preload, once started (awaited by whoever needs the cache warm).
        self.preloading: asyncio.Future[Any] | None = None
        self._loader = TableLoader(
            self._state,
            self._new_consumer,
            dead_letters=dead_letters,
            fetch_max_records=fetch_max_records,
            partitions=partitions,
            read_committed=read_committed,
            bootstrap_servers=bootstrap_servers,
            max_skew_ms=max_skew_ms,
            beacon=self.beacon,
        )

        self._changes_writer = (
            ChangesTopicWriter(
                spec.name, spec.changes_topic, bootstrap_servers, spec.partitions or 1
            )
            if spec.changes_topic
            else None
        )

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self._client_id}-table-{self.spec.name}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",  # an out-of-range offset means local state does not fit
            isolation_level=self._isolation,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )

    @property
    def label(self) -> str:
        return f"ReferenceTable[{self.spec.name}]"

    def __copy__(self) -> ReferenceTable:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ReferenceTable:
        return self

    # -- lifecycle (start/stop come from mode.Service) --------------------------------------------
    async def on_start(self) -> None:
        self._state.stats.running = True
        writer = self._changes_writer
        if writer is not None:
            await writer.start()
            self._state.feed.subscribe(writer.on_change)
            self._state.after_publish.append(writer.flush)
        await self.add_runtime_dependency(self._loader)
        if self._preload:
            self.preloading = self.add_future(self.preload_cache())

    async def on_stop(self) -> None:
        self._state.stats.running = False
        self._state.rows.clear()  # a stopped table reads as empty

    async def on_shutdown(self) -> None:
        # After the loader stopped (children stop before on_shutdown): nothing is mid-batch.
        if self._changes_writer is not None:
            await self._changes_writer.stop()

    def is_running(self) -> bool:
        return self._state.stats.running and not self.should_stop

    @property
    def topic(self) -> str:
        return self.spec.topic

    @property
    def group_id(self) -> str | None:
        """Global tables read without a consumer group; kept for the seed's API."""
        return None

    #: ``get()`` answers from a row cache of its own (:mod:`tables.rowcache`): the agents do
    #: not wrap this table in another one.
    caches_rows = True

    # -- the Table protocol ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return "kafka"

    @property
    def key_field(self) -> str | None:
        return self.spec.key_field

    def describe(self) -> str:
        return f"kafka topic={self.spec.topic} (RocksDB)"

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        get = self.get
        return {k: v for k in keys if (v := get(k)) is not None}

    def get_raw(self, key: Key) -> bytes | None:
        """The stored JSON bytes of ``key``, undecoded."""
        try:
            # The hot path of every lookup join: skip key_text's type dispatch for text keys.
            skey = key.encode() if type(key) is str else key_bytes(key)
        except (TypeError, UnicodeError):
            return None
        return self._state.store.get(skey)

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        """The decoded row of ``key``: shared with other readers, so read-only."""
        # A str or int probe is its own cache key (no str() per lookup); floats, bools and the
        # rest go by their key text (1.0 == 1 as dict keys, but their texts may differ).
        tk = type(key)
        if tk is str or tk is int:
            value = self._rows.get(key, MISS)
            if value is not MISS:
                return default if value is None else value
        return self._get_miss(key, default)

    def row_cache(self) -> tuple[dict[Any, Any], object]:
        """For generated code (:mod:`sql.codegen`) to probe the row cache inline: its dict of
        rows by str or int probe (None: a known miss; the same dict for the table's life) and
        the marker of a key not cached, on which :meth:`get` is called."""
        return self._rows, MISS

    def _get_miss(self, key: Key, default: Value | None) -> Value | None:
        tk = type(key)
        try:
            skey = key.encode() if tk is str else key_bytes(key)
        except (TypeError, UnicodeError):
            return default
        if tk is not str:
            # The row by its key text: an int probe finds a row a str probe or the preload
            # (which keys by text) decoded, without decoding it again; kept under the int too,
            # as any answer of a get() by int is (readers that keep their own map only follow
            # what the row cache kept: sql.codegen.projection).
            text = skey.decode()
            value = self._rows.get(text, MISS)
            if value is not MISS:
                if tk is int:
                    self._cache.put(key, value)
                return default if value is None else value
            if tk is not int:
                key = text
        raw = self._raw.get(skey, MISS)
        if raw is MISS:
            store = self._state.store
            raw = store.get(skey)
            if not store.is_open:  # a closed store's empty answers are not the table's rows
                return default
            self._cache.put_raw(skey, raw)
        value = None if raw is None else self._decode(raw)
        self._cache.put(key, value)
        return default if value is None else value

    async def preload_cache(self, chunk: int = PRELOAD_CHUNK) -> int:
        """Once ready, fill the row cache from the store (:mod:`tables.preload`: the whole
        table decoded when it fits ``TABLESTREAM_TABLE_CACHE_MB`` decoded, else its bytes while
        they fit); returns rows added."""
        return await preload(self._state, chunk)

    def contains_key(self, key: Key) -> bool:
        return self.get_raw(key) is not None

    def keys(self) -> list[Key]:
        return [k.decode() for k in self._state.store.iter_keys()]

    def items(self) -> Iterator[tuple[Key, Value]]:
        return self._state.items()

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]:
        """Up to ``limit`` rows in key order, starting after key ``after``."""
        out: list[tuple[Key, Value]] = []
        start = after.encode() if after is not None else None
        decode = self._state.decode_stored
        for k, v in self._state.store.items(from_key=start):
            if start is not None and k == start:
                continue
            out.append((k.decode(), decode(v)))
            if len(out) >= limit:
                break
        return out

    def __len__(self) -> int:
        return self._state.store.count

    def is_empty(self) -> bool:
        return self._state.store.count == 0

    def snapshot(self) -> dict[Key, Value]:
        return dict(self._state.items())

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return {k: fn(v) for k, v in self._state.items()}

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return {k: v for k, v in self._state.items() if predicate(k, v)}

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> Unsubscribe:
        return self._state.feed.subscribe(listener, last=last)

    def changes(self, maxsize: int = DEFAULT_STREAM_QUEUE) -> ChangeStream:
        """``async for change in table.changes()``; see :class:`tables.changes.ChangeStream`."""
        return self._state.feed.stream(maxsize)

    def index(self, field: str) -> HashIndex:
        return self._state.indexes.get(field)

    def stats(self) -> TableStats:
        stats = self._state.stats
        stats.size = self._state.store.count
        if self._state.store.is_open:
            stats.bytes_on_disk = self._state.store.bytes_on_disk()
        return stats

    @property
    def is_ready(self) -> bool:
        return self._state.is_ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        """True once the table caught up with the topic's end as of its start; False on timeout."""
        try:
            await asyncio.wait_for(self._state.wait_ready(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_for_keys(self, min_keys: int, timeout: float) -> bool:
        """True as soon as the table holds at least ``min_keys`` rows; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self) < min_keys:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state.wait_updated(), remaining)
        return True

    # -- the VersionedTable protocol ------------------------------------------------------------
    @property
    def versioned(self) -> bool:
        return self._state.versions is not None

    @property
    def version(self) -> int:
        return self._state.store.version

    @property
    def stream_time(self) -> int:
        return self._state.store.stream_time

    def _history(self) -> VersionStore:
        versions = self._state.versions
        if versions is None:
            raise NotVersionedError(E_NOT_VERSIONED.format(table=self.name), table=self.name)
        return versions

    def get_as_of(self, key: Key, timestamp: int) -> Value | None:
        versions = self._history()
        if timestamp >= self._state.store.stream_time:
            # No version is newer (stream time is the newest timestamp applied, committed with
            # the rows): the key's latest version is its current row, from the row cache.
            return self.get(key)
        try:
            skey = key.encode() if type(key) is str else key_bytes(key)
        except (TypeError, UnicodeError):
            return None
        value = versions.decoded_as_of(skey, timestamp, self._state.decode_stored)
        if value is EXPIRED:
            if versions.policy.expired_is_error:
                raise HistoryExpiredError(
                    E_EXPIRED.format(table=self.name, key=skey.decode(), timestamp=timestamp),
                    table=self.name,
                    key=skey.decode(),
                    timestamp=timestamp,
                )
            return None
        return value

    def get_at_version(self, key: Key, version: int) -> Value | None:
        found = find_at_version(self._history().load(key_bytes(key)), version)
        found_value = None if found is None else found.value
        return None if found_value is None else self._state.decode_stored(found_value)

    def history(self, key: Key) -> list[VersionRecord]:
        return records(self._history().load(key_bytes(key)), self._state.decode_stored)

    def get_changes_since(self, version: int) -> list[Change]:
        return self._history().changes_since(version, self._state.decode_stored)

    def compact(self, retain_versions: int) -> int:
        return self._history().compact(retain_versions)
