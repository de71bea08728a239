"""``CREATE CATALOG pg WITH (connector='postgres', dsn='...')``: the tables a pipeline names as
``pg.schema.table`` become external tables whose columns and key are read from the database
(its column types mapped to ours, its primary key as the lookup key) when the pipeline loads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from core.errors import ConfigError
from sources import config as cfg
from sources.config import redact
from tables.kinds import table_kind
from tables.spec import TableSpec

E_CATALOG_TABLE = "catalog {catalog!r}: table {table!r}: {error}"
E_NO_CATALOGS = (
    "catalog {catalog!r}: connector={connector!r} has no CREATE CATALOG: declare the table with "
    "CREATE TABLE name (columns, PRIMARY KEY (col)) WITH (connector={connector!r}, ...)"
)
E_NO_PRIMARY_KEY = "no single-column primary key (an external table is looked up by one key)"
_TYPES = (
    (re.compile(r"^(bigint|integer|smallint|int\d?|tinyint|hugeint|ubigint|uinteger)$"), "BIGINT"),
    (re.compile(r"^(double precision|double|real|float\d?)$"), "DOUBLE"),
    (re.compile(r"^(text|varchar|character varying|char|character|bpchar|uuid)(\(.*\))?$"),
     "STRING"),
    (re.compile(r"^(boolean|bool)$"), "BOOLEAN"),
    (re.compile(r"^date$"), "DATE"),
    (re.compile(r"^timestamp.*$"), "TIMESTAMP"),
    (re.compile(r"^jsonb?$"), "JSON"),
)  # fmt: skip
_NUMERIC = re.compile(r"^(?:numeric|decimal)\((\d+),\s*(\d+)\)$")


class _Introspect(Protocol):
    def open(self) -> None: ...
    def close(self) -> None: ...
    def columns(self, table: str) -> dict[str, str] | None: ...
    def primary_key(self, table: str) -> list[str]: ...


def sql_type(db_type: str) -> str | None:
    """Our type for a database column type (None: a type we do not read)."""
    t = db_type.strip().lower()
    num = _NUMERIC.match(t)
    if num is not None:
        return f"DECIMAL({num.group(1)},{num.group(2)})"
    for pattern, ours in _TYPES:
        if pattern.match(t):
            return ours
    return None


def catalog_table(
    name: str, catalog: str, options: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> TableSpec:
    """The spec of ``name`` (``catalog.schema.table``) from the catalog's options, its columns
    and key read from the database now (``secrets``: what its ``password_env`` may name)."""
    connector = options.get("connector", "")
    kind: Any = table_kind(name, connector)
    remote = name.split(".", 1)[1]
    if not hasattr(kind, "database"):  # a kind that cannot list a database's tables (iceberg)
        raise ConfigError(
            E_NO_CATALOGS.format(catalog=catalog, connector=connector),
            table=name,
            option="connector",
        )
    spec_options = {k: v for k, v in options.items() if k != "connector"}
    spec_options["table"] = remote
    # The connection options checked as a table's, before columns and key are known.
    probe = TableSpec(
        name, "", "_", kind=connector, options=tuple(spec_options.items()), columns=(("_", ""),)
    )
    config = cfg.parse(probe, kind.target, kind.extra)
    db: _Introspect = kind.database(config, secrets or {})
    try:
        db.open()
        columns = db.columns(remote)
        key = db.primary_key(remote) if columns is not None else []
    except Exception as exc:
        raise ConfigError(
            E_CATALOG_TABLE.format(catalog=catalog, table=remote, error=redact(str(exc)).strip()),
            table=name,
            option=kind.target,
        ) from exc
    finally:
        db.close()
    if columns is None:
        raise ConfigError(
            E_CATALOG_TABLE.format(catalog=catalog, table=remote, error="no such table"),
            table=name,
        )
    if len(key) != 1:
        raise ConfigError(
            E_CATALOG_TABLE.format(catalog=catalog, table=remote, error=E_NO_PRIMARY_KEY),
            table=name,
        )
    typed = tuple((c, t) for c, db_type in columns.items() if (t := sql_type(db_type)))
    return TableSpec(
        name, "", key[0], kind=connector, options=tuple(spec_options.items()), columns=typed
    )
