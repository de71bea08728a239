"""Declarations applied to the catalog before a query compiles: ``CREATE STREAM`` adds a stream
(with its declared record key), ``CREATE TABLE`` binds a table (loading it through the
catalog's loader when the catalog has none of that name) and records its schema.

Separate from :mod:`sql.query` (the compile API) because it only binds names — it compiles
nothing — and keeps that module under 400 lines.
"""

from __future__ import annotations

from sql.catalog import Catalog, RelationSchema
from sql.dialect import Declaration
from sql.errors import E_UNKNOWN_KEY_COLUMN, E_UNKNOWN_TABLE, BindError, suggest
from sql.parse import Script


def apply_declarations(script: Script, catalog: Catalog) -> None:
    for decl in script.declarations.values():
        if decl.kind == "catalog":  # its tables come with the pipeline (agents.pipeline)
            continue
        if decl.kind == "stream":
            catalog.add_stream(
                decl.name,
                decl.columns,
                timestamp_field=decl.options.get("timestamp"),
                options=dict(decl.options),
                key_field=stream_key(script.sql, decl),
            )
            continue
        table = catalog.table(decl.name)
        if table is None and catalog.loader is not None:
            table = catalog.loader(decl.name, decl.options.get("topic", decl.name), decl.options)
            catalog.add_table(decl.name, table)
        if table is None:
            raise BindError(
                E_UNKNOWN_TABLE.format(name=decl.name),
                sql=script.sql,
                offset=decl.offset,
                suggestion=suggest(decl.name, catalog.names()),
            )
        schema = RelationSchema(
            decl.name,
            "table",
            dict(decl.columns) if decl.columns is not None else {},
            closed=decl.columns is not None,
            key_field=decl.primary_key or table.key_field,
            declared=decl.columns is not None,
        )
        if decl.columns is None:
            schema = catalog.schema(decl.name) or schema
        catalog.schemas[decl.name.lower()] = schema


def stream_key(sql: str, decl: Declaration) -> str | None:
    """The column a stream's record key holds (``WITH (key='col')`` or ``col TYPE KEY``), as
    declared; None when it declares none. A declared column list must hold it."""
    key = decl.options.get("key") or decl.primary_key
    if not key or decl.columns is None:
        return key or None
    for name in decl.columns:
        if name.lower() == key.lower():
            return name
    raise BindError(
        E_UNKNOWN_KEY_COLUMN.format(key=key, stream=decl.name),
        sql=sql,
        offset=decl.offset,
        suggestion=suggest(key, list(decl.columns)),
    )
