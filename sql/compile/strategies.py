"""Plans → live structures: the row source of an access path, or a maintained result.

The planner (``sql.plan``) only describes; everything that subscribes to a table, holds state or
reads rows is built here, once per compiled query.
"""

from __future__ import annotations

from sql.compile.select import combine
from sql.operators import sources
from sql.operators.as_of import as_of_lookup
from sql.operators.inner import InnerQuery
from sql.operators.maintained import Aggregate, CachedRows, InSet, Maintained, RowCount
from sql.plan.shape import Access, Plan, SubqueryShape
from sql.runtime import Fn
from tables import (
    IndexedTable,
    PrefetchTable,
    SnapshotLogTable,
    Table,
    VersionedTable,
)


def build_source(access: Access, table: Table, at: Fn | None = None) -> Fn:
    """The per-record row source of ``access`` over ``table`` (``at``: the AS OF time)."""
    value = access.value.fn if access.value is not None else None
    if access.kind == "key_lookup" and value is not None:
        return sources.key_lookup(table, value)
    if access.kind == "index_probe" and value is not None and access.column is not None:
        assert isinstance(table, IndexedTable)
        return sources.index_probe(table, access.column, value)
    if access.kind == "remote_probe" and value is not None and access.column is not None:
        assert isinstance(table, PrefetchTable)
        return sources.RemoteProbe(table, access.column, value)
    if access.kind == "as_of" and value is not None and at is not None:
        assert isinstance(table, (VersionedTable, SnapshotLogTable))
        return as_of_lookup(table, value, at, access.by_version)
    if access.kind == "scan":
        return sources.scan(table)
    raise AssertionError(f"incomplete access path {access!r}")


def build_maintained(plan: Plan, shape: SubqueryShape) -> Maintained | CachedRows:
    """The maintained structure of ``plan`` (it subscribes to the table's changes now; the rules
    chose one only for tables that list their rows and publish their changes)."""
    rel, size = shape.relation, shape.env_size
    where = combine(plan.residual)
    vs, ms = rel.value_slot, rel.meta_slot
    if plan.maintained == "cached_rows":
        tables = shape.local_tables
        assert tables is not None
        inner = InnerQuery(sources.scan(shape.table), vs, ms, where, shape.parts)
        return CachedRows(inner, tables, size)
    table = shape.local_table
    if plan.maintained == "in_set":
        return InSet(table, vs, ms, size, where, shape.parts.outputs[0].fn)
    if plan.maintained == "row_count":
        return RowCount(table, vs, ms, size, where)
    if plan.maintained == "aggregate":
        assert shape.parts.agg is not None
        spec = shape.parts.agg.specs[0]
        return Aggregate(table, vs, ms, size, where, spec.arg, spec.retractable())
    raise AssertionError(f"unknown maintained structure {plan.maintained!r}")
