"""Rule: ``column = expr`` on a non-key column of an external table → a probe pushed down to the
database (``WHERE column = ANY($1)``), one query per batch for the distinct values, cached."""

from __future__ import annotations

from sql.plan.shape import Access, AccessShape, Plan, column_pin
from tables import PrefetchTable


def remote_probe(shape: AccessShape) -> Plan | None:
    if not isinstance(shape.table, PrefetchTable):
        return None
    c = column_pin(shape)
    if c is None or c.pin is None:
        return None
    column, value = c.pin
    # The pin stays in the residual: the database narrows, SQL here decides.
    return Plan(
        "remote probe",
        c.node.sql(dialect="duckdb"),
        access=Access("remote_probe", value, column),
        residual=list(shape.conjuncts),
        pin=c,
    )
