"""Rule (last resort): scan the table for every record. Flagged in EXPLAIN."""

from __future__ import annotations

from sql.operators import sources
from sql.plan.shape import Plan, SubqueryShape


def full_scan(shape: SubqueryShape) -> Plan | None:
    return Plan(
        "FULL SCAN",
        "per record; no key, index or uncorrelated plan applies",
        source=sources.scan(shape.table),
        residual=list(shape.conjuncts),
        flagged=True,
    )
