"""What a query can read: tables (through the Table protocol) and stream schemas.

Column types come from declarations (``CREATE TABLE/STREAM ... (cols)``) when given; otherwise a
table's columns are inferred from a sample of its rows and a stream is *open* (any column name
resolves, its type is known per value only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sql.types import ANY, SqlType, type_of_value, unify
from tables import ScanTable, Table

#: Rows sampled to infer an undeclared table's columns.
INFER_SAMPLE_ROWS = 1000

#: Creates a table for ``CREATE TABLE name ... WITH (topic=...)`` that the catalog lacks.
TableLoader = Callable[[str, str, Mapping[str, str]], Table]


@dataclass(slots=True)
class RelationSchema:
    """Columns of a table or stream. ``closed``: unknown column names are errors."""

    name: str
    kind: str  # "table" | "stream"
    columns: dict[str, SqlType] = field(default_factory=dict)
    closed: bool = True
    key_field: str | None = None
    declared: bool = False
    #: For streams: the value field holding event time (``WITH (timestamp='field')``).
    timestamp_field: str | None = None
    #: The declaration's ``WITH (...)`` options (e.g. ``out_of_orderness`` for windows).
    options: dict[str, str] = field(default_factory=dict)

    def column_type(self, name: str) -> SqlType | None:
        t = self.columns.get(name)
        if t is None and not self.closed:
            return ANY
        return t


def qualified(node: Any) -> str:
    """A table reference's name: ``customers``, or ``pg.public.customers`` for a table of a
    ``CREATE CATALOG`` (an ``exp.Table`` with catalog / db parts)."""
    parts = [node.args.get("catalog"), node.args.get("db")]
    prefix = [p.name for p in parts if p is not None and p.name]
    return ".".join([*prefix, node.name])


def infer_columns(rows: Iterator[Any]) -> dict[str, SqlType]:
    columns: dict[str, SqlType] = {}
    for value in rows:
        if not isinstance(value, dict):
            continue
        for k, v in value.items():
            columns[k] = unify(columns.get(k, type_of_value(None)), type_of_value(v))
    return {k: (ANY if t.name == "NULL" else t) for k, t in columns.items()}


@dataclass(slots=True)
class Catalog:
    """Names a query may use. Tables are live objects; streams are schemas only."""

    tables: dict[str, Table] = field(default_factory=dict)
    schemas: dict[str, RelationSchema] = field(default_factory=dict)
    loader: TableLoader | None = None

    @classmethod
    def of(
        cls, tables: Mapping[str, Table] | None = None, **streams: Mapping[str, SqlType] | None
    ) -> Catalog:
        cat = cls({k.lower(): v for k, v in (tables or {}).items()})
        for name, cols in streams.items():
            cat.add_stream(name, cols)
        return cat

    def add_table(self, name: str, table: Table, schema: RelationSchema | None = None) -> None:
        self.tables[name.lower()] = table
        if schema is not None:
            self.schemas[name.lower()] = schema

    def add_stream(
        self, name: str, columns: Mapping[str, SqlType] | None = None, **kw: Any
    ) -> None:
        self.schemas[name.lower()] = RelationSchema(
            name,
            "stream",
            dict(columns or {}),
            closed=columns is not None,
            declared=columns is not None,
            **kw,
        )

    def names(self) -> list[str]:
        return sorted(set(self.tables) | set(self.schemas))

    def schema(self, name: str) -> RelationSchema | None:
        key = name.lower()
        schema = self.schemas.get(key)
        table = self.tables.get(key)
        if table is None:
            return schema
        if schema is None or schema.kind != "table":
            rows = table.items() if isinstance(table, ScanTable) else iter(())
            sample = (v for _, v in islice(rows, INFER_SAMPLE_ROWS))
            cols = infer_columns(sample)
            schema = RelationSchema(
                table.name, "table", cols, closed=bool(cols), key_field=table.key_field
            )
            self.schemas[key] = schema
        return schema

    def table(self, name: str) -> Table | None:
        return self.tables.get(name.lower())
