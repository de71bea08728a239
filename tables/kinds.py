"""The one registry of table kinds: ``WITH (connector=NAME)`` → the kind that checks the options
and builds the table.

``kafka`` (the default) is a topic loaded into RocksDB (:class:`~tables.reference.ReferenceTable`);
the others are external databases (``sources/``), imported only when a table uses them (their
drivers are not needed otherwise). Adding a kind is one line here plus its module exporting
``KIND``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.errors import ConfigError
from tables.cache_settings import DEFAULTS, CacheSettings
from tables.deadletter import DeadLetterWriter
from tables.protocol import Table
from tables.spec import TableSpec

#: connector name → module exporting ``KIND`` (a :class:`TableKind`).
KINDS: dict[str, str] = {
    "kafka": "tables.kinds",
    "postgres": "sources.postgres",
    "duckdb": "sources.duckdb",
    "iceberg": "sources.iceberg",
    "clickhouse": "sources.clickhouse",
}
E_UNKNOWN_KIND = "table {table!r}: option connector={value!r} is not one of {known}"
E_NO_CATALOG = "catalog {catalog!r}: option connector={value!r} cannot serve a catalog"


@dataclass(frozen=True, slots=True)
class TableEnv:
    """What a kind may need to build a table on this worker (the Kafka kind needs it all)."""

    data_dir: Path = Path("data")
    bootstrap_servers: str = ""
    dead_letters: DeadLetterWriter | None = None
    fetch_max_records: int = 10_000
    #: A reference table's row cache (the worker's ``TABLESTREAM_TABLE_CACHE_*``).
    row_cache: CacheSettings = DEFAULTS
    client_id: str = "tablestream"
    read_committed: bool = False
    #: Record-timestamp ms a loader may apply one partition ahead of the slowest (tables.skew).
    max_skew_ms: int | None = 300_000
    extra: dict[str, Any] = field(default_factory=dict)
    beacon: Any = None
    #: The variables a table's ``*_env`` option may name (``password_env='PG_PASSWORD'``),
    #: given by the edge (app settings, ``python -m sql``): no table kind reads the environment.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


class TableKind(Protocol):
    """One kind of table."""

    name: str

    def check(self, spec: TableSpec) -> None:
        """Raise :class:`ConfigError` naming the table and the option that cannot work."""
        ...

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        """The table (not started: a kind's table that needs starting is a mode Service)."""
        ...


@runtime_checkable
class CatalogKind(TableKind, Protocol):
    """A kind that can also serve ``CREATE CATALOG c WITH (connector=...)``: the tables a query
    names ``c.schema.table``, their columns and key read from the database."""

    def catalog_table(
        self, name: str, catalog: str, options: Mapping[str, str], secrets: Mapping[str, str]
    ) -> TableSpec:
        """The spec of ``name`` (``catalog.schema.table``); ConfigError naming catalog, table."""
        ...


class KafkaKind:
    name = "kafka"

    def check(self, spec: TableSpec) -> None:
        pass  # TableSpec.from_options parses and checks the Kafka options itself

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        from tables.reference import ReferenceTable

        return ReferenceTable(
            spec,
            env.data_dir,
            env.bootstrap_servers,
            dead_letters=env.dead_letters,
            fetch_max_records=env.fetch_max_records,
            row_cache=env.row_cache.cache(),
            preload_cache=env.row_cache.preload,
            client_id=env.client_id,
            read_committed=env.read_committed,
            max_skew_ms=env.max_skew_ms,
            beacon=env.beacon,
        )


KIND = KafkaKind()


def table_kind(table: str, connector: str) -> TableKind:
    """The kind named ``connector`` (``table`` names the table in the error)."""
    module = KINDS.get(connector.lower())
    if module is None:
        raise ConfigError(
            E_UNKNOWN_KIND.format(table=table, value=connector, known=", ".join(KINDS)),
            table=table,
            option="connector",
            value=connector,
        )
    kind: TableKind = importlib.import_module(module).KIND
    return kind


def catalog_table(
    name: str, catalog: str, options: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> TableSpec:
    """The spec of table ``name`` (``catalog.schema.table``) of catalog ``catalog`` declared
    with ``options``, by the catalog's kind (it connects to read columns and key)."""
    connector = options.get("connector", "")
    kind = table_kind(name, connector)
    if not isinstance(kind, CatalogKind):
        raise ConfigError(
            E_NO_CATALOG.format(catalog=catalog, value=connector),
            table=name,
            option="connector",
            value=connector,
        )
    return kind.catalog_table(name, catalog, options, secrets or {})
