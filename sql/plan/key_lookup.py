"""Rule: a conjunct ``key = expr`` (expr not reading the table) → one ``get`` per record."""

from __future__ import annotations

from sql.plan.shape import Access, AccessShape, Plan


def key_lookup(shape: AccessShape) -> Plan | None:
    key_field = shape.key_field
    for c in shape.conjuncts:
        if c.pin is None:
            continue
        column, value = c.pin
        if column == "_key" or (key_field is not None and column == key_field):
            return Plan(
                "key lookup",
                c.node.sql(dialect="duckdb"),
                access=Access("key_lookup", value),
                residual=[o for o in shape.conjuncts if o is not c],
                pin=c,
            )
    return None
