"""Declared columns → Iceberg field ids, and every snapshot read by those ids.

The declared columns are resolved by name against the table's schema when the table starts,
to field ids (Iceberg's own identity of a column). Every snapshot is then read by id, under the
declared names: a column renamed since is found under its name in that snapshot's schema; a
column added after the snapshot reads NULL there; a promoted type (int → long, float → double,
a wider decimal) reads as the declared type.

An incompatible change — a declared column dropped from a newer snapshot, or its type no longer
one the declared type reads — is a :class:`SchemaChangeError` naming the table, the column and
the snapshot (at start, or at refresh: the table then keeps serving the snapshot it had).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from sources.types import fits

E_NO_FIELD = (
    "table {table!r}: column {column!r} is not in Iceberg table {remote!r} at snapshot "
    "{snapshot} (columns: {columns})"
)
E_DROPPED = (
    "table {table!r}: column {column!r} (field id {field_id}) was dropped from Iceberg table "
    "{remote!r} in snapshot {snapshot}: keeping snapshot {serving}"
)
E_FIELD_TYPE = (
    "table {table!r}: column {column!r} is declared {declared} but is {actual} in Iceberg "
    "table {remote!r} at snapshot {snapshot}"
)


class SchemaChangeError(ConfigError):
    """A snapshot's schema the declared columns cannot read (``table``, ``column``,
    ``snapshot`` fields)."""


#: Iceberg primitive type text → the database type text :func:`sources.types.fits` knows.
_TYPES = {
    "int": "int",
    "long": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
}


def type_text(field_type: Any) -> str:
    """An Iceberg type as a database type text (``decimal(12, 2)`` stays as it is)."""
    text = str(field_type)
    return _TYPES.get(text, text)


@dataclass(frozen=True, slots=True)
class Projection:
    """How to read one snapshot: the names to select in its schema (declared order), the
    declared names they become, the declared columns it lacks (NULL), the ones stored with a
    zone (converted to naive UTC, as TIMESTAMP values are)."""

    snapshot_id: int
    schema_id: int
    select: tuple[str, ...]
    names: tuple[str, ...]
    nulls: tuple[str, ...]
    zoned: tuple[str, ...]


class FieldMap:
    """The declared columns' field ids, resolved once against the table's schema at start."""

    def __init__(self, table: str, remote: str, columns: tuple[tuple[str, str], ...]) -> None:
        self.table = table
        self.remote = remote
        self.columns = columns
        self.ids: dict[str, int] = {}

    def resolve(self, schema: Any, snapshot: int | None) -> None:
        """Field ids by declared name in ``schema`` (the current one); raises naming the
        column the schema lacks or cannot read as declared."""
        by_name = {f.name: f for f in schema.fields}
        for column, declared in self.columns:
            field = by_name.get(column)
            if field is None:
                raise SchemaChangeError(
                    E_NO_FIELD.format(
                        table=self.table,
                        column=column,
                        remote=self.remote,
                        snapshot=snapshot,
                        columns=", ".join(by_name),
                    ),
                    table=self.table,
                    column=column,
                    snapshot=snapshot,
                )
            self._check_type(column, declared, field, snapshot)
            self.ids[column] = field.field_id

    def project(
        self, schema: Any, snapshot_id: int, *, current: bool, serving: int | None = None
    ) -> Projection:
        """How to read ``snapshot_id`` (whose schema is ``schema``). ``current``: the snapshot
        is to become the table's current one, so a declared column it lacks was dropped (an
        error); an older snapshot read by time travel lacks it because it came later (NULL)."""
        by_id = {f.field_id: f for f in schema.fields}
        select, names, nulls, zoned = [], [], [], []
        for column, declared in self.columns:
            field = by_id.get(self.ids[column])
            if field is None:
                if current:
                    raise SchemaChangeError(
                        E_DROPPED.format(
                            table=self.table,
                            column=column,
                            field_id=self.ids[column],
                            remote=self.remote,
                            snapshot=snapshot_id,
                            serving=serving,
                        ),
                        table=self.table,
                        column=column,
                        snapshot=snapshot_id,
                    )
                nulls.append(column)
                continue
            self._check_type(column, declared, field, snapshot_id)
            select.append(field.name)
            names.append(column)
            if str(field.field_type) == "timestamptz":
                zoned.append(column)
        return Projection(
            snapshot_id,
            int(schema.schema_id),
            tuple(select),
            tuple(names),
            tuple(nulls),
            tuple(zoned),
        )

    def _check_type(self, column: str, declared: str, field: Any, snapshot: int | None) -> None:
        actual = type_text(field.field_type)
        if not fits(declared, actual):
            raise SchemaChangeError(
                E_FIELD_TYPE.format(
                    table=self.table,
                    column=column,
                    declared=declared,
                    actual=field.field_type,
                    remote=self.remote,
                    snapshot=snapshot,
                ),
                table=self.table,
                column=column,
                snapshot=snapshot,
            )
