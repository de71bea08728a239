"""Rule: any other uncorrelated subquery → its rows cached, recomputed after a table change."""

from __future__ import annotations

from sql.compile.select import combine
from sql.operators import sources
from sql.operators.inner import InnerQuery
from sql.operators.maintained import CachedRows
from sql.plan.shape import Plan, SubqueryShape
from tables.protocol import ScanTable


def cached_result(shape: SubqueryShape) -> Plan | None:
    tables = shape.local_tables
    if shape.correlated or tables is None or not isinstance(shape.table, ScanTable):
        return None
    rel = shape.relation
    inner = InnerQuery(
        sources.scan(shape.table),
        rel.value_slot,
        rel.meta_slot,
        combine(shape.conjuncts),
        shape.parts,
    )
    structure = CachedRows(inner, tables, shape.env_size)
    names = ", ".join(sorted({t.name for t in shape.tables}))
    return Plan(
        "maintained result",
        f"recomputed on first use after a change to {names}",
        maintained=structure,
    )
