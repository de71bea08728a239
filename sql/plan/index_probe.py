"""Rule: a conjunct ``column = expr`` on a non-key column → probe the table's secondary index."""

from __future__ import annotations

from sql.plan.shape import Access, AccessShape, Plan
from tables import IndexedTable


def index_probe(shape: AccessShape) -> Plan | None:
    if not isinstance(shape.table, IndexedTable):
        return None
    for c in shape.conjuncts:
        if c.pin is None or c.pin[0] == "_key":
            continue
        column, value = c.pin
        if column not in shape.relation.schema.columns and shape.relation.schema.closed:
            continue
        # The pin stays in the residual: the index narrows by Python equality, SQL decides.
        return Plan(
            "index probe",
            c.node.sql(dialect="duckdb"),
            access=Access("index_probe", value, column),
            residual=list(shape.conjuncts),
            pin=c,
        )
    return None
