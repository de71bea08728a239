"""Rule: a conjunct ``column = expr`` on a non-key column → probe the table's secondary index."""

from __future__ import annotations

from sql.plan.shape import Access, AccessShape, Plan, column_pin
from tables import IndexedTable


def index_probe(shape: AccessShape) -> Plan | None:
    if not isinstance(shape.table, IndexedTable):
        return None
    c = column_pin(shape)
    if c is None or c.pin is None:
        return None
    column, value = c.pin
    # The pin stays in the residual: the index narrows by Python equality, SQL decides.
    return Plan(
        "index probe",
        c.node.sql(dialect="duckdb"),
        access=Access("index_probe", value, column),
        residual=list(shape.conjuncts),
        pin=c,
    )
