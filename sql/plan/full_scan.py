"""Rule (last resort): scan the table for every record. Flagged in EXPLAIN."""

from __future__ import annotations

from sql.plan.shape import Access, Plan, SubqueryShape


def full_scan(shape: SubqueryShape) -> Plan | None:
    return Plan(
        "FULL SCAN",
        "per record; no key, index or uncorrelated plan applies",
        access=Access("scan"),
        residual=list(shape.conjuncts),
        flagged=True,
    )
