"""Rule (last resort): scan the table for every record. Flagged in EXPLAIN.

A table whose rows are not local (an external table without a full cache) cannot be scanned:
the query is rejected at compile time, naming the table and what would work instead.
"""

from __future__ import annotations

from sql.bind.scope import offset_of
from sql.errors import E_NOT_SCANNABLE, UnsupportedError
from sql.plan.shape import Access, AccessShape, Plan
from tables import ScanTable


def full_scan(shape: AccessShape) -> Plan | None:
    table = shape.table
    if not isinstance(table, ScanTable):
        raise UnsupportedError(
            E_NOT_SCANNABLE.format(table=table.name, source=table.describe()),
            sql=shape.sql,
            offset=offset_of(shape.node),
        )
    return Plan(
        "FULL SCAN",
        "per record; no key, index or uncorrelated plan applies",
        access=Access("scan"),
        residual=list(shape.conjuncts),
        flagged=True,
    )
