"""Rule: uncorrelated ``x [NOT] IN (SELECT v FROM t WHERE p)`` → maintained IN-set."""

from __future__ import annotations

from sql.plan.shape import Plan, SubqueryShape


def maintained_in(shape: SubqueryShape) -> Plan | None:
    if shape.kind != "in" or not shape.maintainable or not shape.simple:
        return None
    return Plan(
        "maintained IN-set",
        "value multiplicities + NULL count, updated per table change",
        residual=list(shape.conjuncts),
        maintained="in_set",
    )
