"""Rule: a conjunct ``column = expr`` on a non-key column → probe the table's secondary index."""

from __future__ import annotations

from sql.plan.shape import AccessShape, Plan, probe_plan
from tables import IndexedTable


def index_probe(shape: AccessShape) -> Plan | None:
    if not isinstance(shape.table, IndexedTable):
        return None
    return probe_plan(shape, "index probe", "index_probe")
