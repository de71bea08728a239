"""Apache Iceberg tables: ``CREATE TABLE t (...) WITH (connector='iceberg',
catalog_uri='sqlite:///data/catalog.db', warehouse='file:///data/wh', table='ns.table', ...)``.

Read through pyiceberg: a SQL catalog (``sqlite:`` / ``postgresql+psycopg:`` URIs) or a REST
catalog (``http(s):`` URIs), ``catalog`` naming it (default ``default``, as pyiceberg's), other
catalog properties passed through as quoted ``'catalog.<property>'`` options; a REST catalog's
token or OAuth2 credential from the variable ``token_env`` / ``credential_env`` names (given by
the edge in ``TableEnv.secrets``; pyiceberg's own ``PYICEBERG_CATALOG__*`` variables work too).

A point read of an Iceberg table is a scan, so every snapshot a query reads is loaded once
(:mod:`sources.iceberg_snapshots`) and lookups are dict reads. ``refresh='snapshot'`` polls the
catalog every ``poll_interval``; a new snapshot is loaded beside the served one (in a thread) and
swapped in one assignment. Time travel (``FOR SYSTEM_TIME AS OF``, ``AT SNAPSHOT``) reads older
snapshots, at most ``snapshot_caches`` of them kept (least recently used evicted); the snapshot
log says which one was current at a record's time. Schema evolution: :mod:`sources.iceberg_schema`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from mode import Service

from core.errors import ConfigError
from sources.batching import Caller, SourceUnavailable
from sources.breaker import Breaker
from sources.config import redact
from sources.iceberg_config import IcebergConfig, parse
from sources.iceberg_reads import ServedSnapshotReads
from sources.iceberg_schema import FieldMap, SchemaChangeError
from sources.iceberg_snapshots import MemoryRows, Rows, SnapshotLog, load
from sources.iceberg_stats import IcebergStats
from sources.lifecycle import OpenedInThread
from sources.table import WAIT_RETRY
from tables.keys import key_text
from tables.kinds import TableEnv
from tables.protocol import AS_OF_TIMES, Key, Table, TableUnavailableError, Value
from tables.spec import TableSpec
from tables.versions import HistoryExpiredError

logger = logging.getLogger(__name__)

E_CONNECT = "table {table!r}: cannot read Iceberg table {remote!r} (catalog_uri={uri}): {error}"
E_NO_TABLE = "table {table!r}: option table={remote!r}: no such Iceberg table in catalog {uri}"
E_BEFORE_FIRST = (
    "table {table!r}: {when} is before the first snapshot of Iceberg table {remote!r} "
    "({first}): no row then"
)
E_NO_SNAPSHOT = "table {table!r}: Iceberg table {remote!r} has no snapshot {snapshot}"


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)).isoformat(sep=" ")


class IcebergTable(ServedSnapshotReads, OpenedInThread):
    """One Iceberg table: its current snapshot's rows, older snapshots on demand."""

    def __init__(
        self,
        config: IcebergConfig,
        data_dir: Path,
        secrets: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.secrets = secrets or {}
        c = config.source
        self.breaker = Breaker(c.breaker_failures, c.breaker_reset)
        self.caller = Caller(self.breaker, c.retries, c.backoff, c.max_inflight, redact)
        self.fields = FieldMap(c.table, c.remote_table, c.columns)
        self._spill_dir = data_dir / "iceberg" / c.table
        self._catalog: Any = None
        self._table: Any = None  # the pyiceberg Table of the served metadata
        self._rejected = ""  # a metadata location whose snapshot the declared columns cannot read
        self.current: Rows = MemoryRows(0)
        self.snapshot_id: int | None = None
        self._get: Callable[[str], Value | None] = self.current.get
        self.snapshot_log = SnapshotLog([])
        self.older: OrderedDict[int, Rows] = OrderedDict()
        self.lookups = self.as_of_lookups = self.snapshot_loads = self.evictions = 0
        self.refreshes = self.refresh_failures = self.switches = self.schema_errors = 0
        self.stale_serves = self.unavailable = self.waits = 0
        self.last_load_ms: float | None = None
        self.last_schema_error = ""
        self.indexes, self.prebuilt = {}, {}
        self.index_builds, self.last_index_ms = 0, None

    # -- identity -------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"IcebergTable {self.config.source.table}"

    @property
    def name(self) -> str:
        return self.config.source.table

    @property
    def kind(self) -> str:
        return "iceberg"

    @property
    def key_field(self) -> str | None:
        return self.config.source.key

    def describe(self) -> str:
        c, s = self.config, self.config.source
        snapshot = self.snapshot_id if self._ready else "current at start"
        follow = f"snapshot every {c.poll_interval:g}s" if c.follow else "none"
        where = f" filter={c.row_filter!r}" if c.row_filter else ""
        return (
            f"iceberg {c.catalog_type} catalog {c.catalog!r} ({redact(s.target)})"
            f" table={s.remote_table} snapshot={snapshot}{where} refresh={follow}"
            f" on_error={s.on_error}"
        )

    def stats(self) -> IcebergStats:
        return IcebergStats(self)

    # -- start ----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        from pyiceberg.catalog import load_catalog

        self._catalog = load_catalog(self.config.catalog, **self.config.properties(self.secrets))
        return self._catalog.load_table(self.config.source.remote_table)

    def open_sync(self) -> None:
        """Load the catalog, the table's metadata and its current snapshot; check the declared
        columns against the current schema. Raises ConfigError naming the table and option."""
        s = self.config.source
        try:
            table = self._connect()
        except ConfigError:  # an unset token_env / credential_env: named as it is
            raise
        except Exception as exc:
            if type(exc).__name__ == "NoSuchTableError":
                text = E_NO_TABLE.format(table=s.table, remote=s.remote_table, uri=redact(s.target))
                raise ConfigError(text, table=s.table, option="table") from exc
            raise self._connect_error(exc) from exc
        snapshot = table.current_snapshot()
        sid = snapshot.snapshot_id if snapshot is not None else None
        self.fields.resolve(table.schema(), sid)
        rows = None
        if sid is not None:
            try:
                rows = self._load(table, sid, current=True)
            except SchemaChangeError:
                raise
            except Exception as exc:
                raise self._connect_error(exc) from exc
        self._install(table, rows)
        self._ready = True

    def _connect_error(self, exc: Exception) -> ConfigError:
        s = self.config.source
        text = E_CONNECT.format(
            table=s.table,
            remote=s.remote_table,
            uri=redact(s.target),
            error=redact(f"{type(exc).__name__}: {exc}").strip()[:300],
        )
        return ConfigError(text, table=s.table, option="catalog_uri")

    def close_sync(self) -> None:
        for rows in (self.current, *self.older.values()):
            rows.close()
        self.older.clear()

    # -- loading --------------------------------------------------------------------------------
    def _load(self, table: Any, sid: int, *, current: bool) -> Rows:
        """Snapshot ``sid`` of ``table`` read by field id (blocking; a thread or the runner)."""
        snapshot = table.snapshot_by_id(sid)
        schema = table.schemas().get(snapshot.schema_id) if snapshot.schema_id is not None else None
        proj = self.fields.project(
            schema or table.schema(), sid, current=current, serving=self.snapshot_id
        )
        started = time.perf_counter()
        c = self.config
        rows = load(table, proj, c.source.key, c.row_filter, c.spill_rows, self._spill_dir)
        self.last_load_ms = round((time.perf_counter() - started) * 1000, 3)
        self.snapshot_loads += 1
        if current:
            self.prebuild(rows, sid)
        return rows

    def _install(self, table: Any, rows: Rows | None) -> None:
        """Serve ``table``'s metadata and ``rows`` (its current snapshot) from now on: plain
        assignments, no await in between, so every lookup sees the old or the new snapshot."""
        self._table = table
        self.snapshot_log = SnapshotLog.of(table.metadata)
        if rows is None:
            return
        old, old_id = self.current, self.snapshot_id
        self.current, self.snapshot_id = rows, rows.snapshot_id
        self._get = rows.get
        self.reindex(rows, rows.snapshot_id)
        self.older.pop(rows.snapshot_id, None)
        if old_id is not None and old_id != rows.snapshot_id:
            self._keep_older(old_id, old)  # records of earlier times still read it
            self.switches += 1

    def _keep_older(self, sid: int, rows: Rows) -> None:
        self.older[sid] = rows
        self.older.move_to_end(sid)
        while len(self.older) > self.config.snapshot_caches:
            _, evicted = self.older.popitem(last=False)
            evicted.close()
            self.evictions += 1

    def _poll(self) -> tuple[Any, Rows | None, SchemaChangeError | None] | None:
        """The catalog's metadata now; the new current snapshot loaded when there is one
        (blocking, in a thread). A schema the declared columns cannot read is returned, not
        raised: the source answered, it is no outage for the breaker."""
        table = self._catalog.load_table(self.config.source.remote_table)
        location = table.metadata_location
        if location in (self._table.metadata_location, self._rejected):
            return None
        snapshot = table.current_snapshot()
        if snapshot is None or snapshot.snapshot_id == self.snapshot_id:
            return table, None, None
        try:
            return table, self._load(table, snapshot.snapshot_id, current=True), None
        except SchemaChangeError as exc:
            return table, None, exc

    async def refresh(self) -> bool:
        """Poll now; True when a new snapshot is served. The old one is kept on any failure."""
        try:
            result = await self.caller.acall(self._poll, 0)
        except SourceUnavailable:
            self.refresh_failures += 1
            return False
        self.refreshes += 1
        if result is None:
            return False
        table, rows, error = result
        if error is not None:
            self.schema_errors += 1
            self.last_schema_error = error.message
            self._rejected = table.metadata_location
            logger.error("%s", error.message)
            return False
        self._install(table, rows)
        return rows is not None

    @Service.task
    async def _refresher(self) -> None:
        if not self.config.follow:
            return
        while not self.should_stop:
            await self.sleep(self.config.poll_interval)
            if self._ready:
                await self.refresh()

    # -- time travel ----------------------------------------------------------------------------
    def get_as_of(self, key: Key, timestamp: int) -> Value | None:
        """The key's row in the snapshot current at ``timestamp`` (from the snapshot log)."""
        self.as_of_lookups += 1
        sid = self.snapshot_log.at(timestamp)
        if sid is None:
            if self.config.as_of_error:
                s = self.config.source
                raise HistoryExpiredError(
                    E_BEFORE_FIRST.format(
                        table=s.table,
                        when=_iso(timestamp),
                        remote=s.remote_table,
                        first=_iso(self.snapshot_log.first),
                    ),
                    table=s.table,
                    timestamp=timestamp,
                )
            return None
        rows = self.current if sid == self.snapshot_id else self._older(sid)
        return rows.get(key if type(key) is str else key_text(key))

    def get_at_version(self, key: Key, version: int) -> Value | None:
        """The key's row in snapshot ``version`` (``AT SNAPSHOT n``)."""
        self.as_of_lookups += 1
        rows = self.current if version == self.snapshot_id else self._older(version)
        return rows.get(key if type(key) is str else key_text(key))

    def _older(self, sid: int) -> Rows:
        """A snapshot other than the current one: cached, or loaded now (in this thread: the
        first record that needs it waits for its scan)."""
        rows = self.older.get(sid)
        if rows is not None:
            self.older.move_to_end(sid)
            return rows
        table = self._table
        if table is None or table.snapshot_by_id(sid) is None:
            s = self.config.source
            raise HistoryExpiredError(
                E_NO_SNAPSHOT.format(table=s.table, remote=s.remote_table, snapshot=sid),
                table=s.table,
                snapshot=sid,
            )
        try:
            rows = self.caller.call(lambda: self._load(table, sid, current=False), 0)
        except SourceUnavailable:
            if self.config.source.on_error == "stale":
                self.stale_serves += 1
                return self.current
            self.unavailable += 1
            raise TableUnavailableError(self.name, self.caller.stats.last_error) from None
        self._keep_older(sid, rows)
        return rows

    async def prefetch(self, column: str | None, values: Collection[Any]) -> None:
        """Load, in a thread, the snapshots a batch's as-of reads need (their times or ids),
        before its records run. While the catalog or warehouse cannot answer, ``wait`` holds
        the batch; the other policies let the records meet the outage one by one."""
        table = self._table
        if table is None:
            return
        if column == AS_OF_TIMES:
            wanted = {self.snapshot_log.at(v) for v in values if type(v) is int}
        else:
            wanted = {v for v in values if type(v) is int}
        missing = [
            sid
            for sid in wanted
            if sid is not None
            and sid != self.snapshot_id
            and sid not in self.older
            and table.snapshot_by_id(sid) is not None
        ]
        for sid in missing[: self.config.snapshot_caches]:  # more would evict each other
            while True:
                try:
                    rows = await self.caller.acall(partial(self._try_load, table, sid), 0)
                    break
                except SourceUnavailable:
                    if self.config.source.on_error != "wait":
                        return
                    self.waits += 1
                    await asyncio.sleep(WAIT_RETRY)
            if rows is not None:  # else its records meet the schema error themselves
                self._keep_older(sid, rows)

    def _try_load(self, table: Any, sid: int) -> Rows | None:
        try:
            return self._load(table, sid, current=False)
        except SchemaChangeError:  # the source answered: no outage for the breaker
            return None

    def explain_as_of(self, timestamp: int | None, version: int | None) -> str:
        if version is not None:
            if self._table is None:
                return "checked at start"
            snapshot = self._table.snapshot_by_id(version)
            if snapshot is None:
                return f"snapshot {version} is not in the table now"
            return f"committed {_iso(snapshot.timestamp_ms)}"
        if timestamp is None:
            return (
                f"per record: the snapshot current at each record's time, from the snapshot "
                f"log; at most {self.config.snapshot_caches} older snapshots cached"
            )
        if not self._ready:
            return f"the snapshot current at {_iso(timestamp)}"
        sid = self.snapshot_log.at(timestamp)
        if sid is None:
            return f"before the first snapshot ({_iso(self.snapshot_log.first)}): no row"
        return f"snapshot {sid}, current from {_iso(self.snapshot_log.since(sid))}"


class IcebergKind:
    name = "iceberg"

    def check(self, spec: TableSpec) -> None:
        parse(spec)

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        return IcebergTable(parse(spec), env.data_dir, env.secrets)


KIND = IcebergKind()
