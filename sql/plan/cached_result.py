"""Rule: any other uncorrelated subquery → its rows cached, recomputed after a table change."""

from __future__ import annotations

from sql.plan.shape import Plan, SubqueryShape


def cached_result(shape: SubqueryShape) -> Plan | None:
    if shape.correlated:
        return None
    names = ", ".join(sorted({t.name for t in shape.tables}))
    return Plan(
        "maintained result",
        f"recomputed on first use after a change to {names}",
        residual=list(shape.conjuncts),
        maintained="cached_rows",
    )
