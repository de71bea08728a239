"""Rule: ``column = expr`` on a non-key column of an external table → a probe pushed down to the
database (``WHERE column = ANY($1)``), one query per batch for the distinct values, cached."""

from __future__ import annotations

from sql.plan.shape import AccessShape, Plan, probe_plan
from tables import PrefetchTable


def remote_probe(shape: AccessShape) -> Plan | None:
    if not isinstance(shape.table, PrefetchTable):
        return None
    return probe_plan(shape, "remote probe", "remote_probe")
