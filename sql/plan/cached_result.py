"""Rule: any other uncorrelated subquery → its rows cached, recomputed after a table change.

Only when its table can be listed and every table it reads publishes its changes (an external
table without a full cache does neither)."""

from __future__ import annotations

from sql.plan.shape import Plan, SubqueryShape
from tables import ScanTable


def cached_result(shape: SubqueryShape) -> Plan | None:
    if shape.correlated or shape.local_tables is None or not isinstance(shape.table, ScanTable):
        return None
    names = ", ".join(sorted({t.name for t in shape.tables}))
    return Plan(
        "maintained result",
        f"recomputed on first use after a change to {names}",
        residual=list(shape.conjuncts),
        maintained="cached_rows",
    )
