"""Rule: uncorrelated ``[NOT] EXISTS (SELECT ... FROM t WHERE p)`` → maintained row count."""

from __future__ import annotations

from sql.plan.shape import Plan, SubqueryShape


def maintained_exists(shape: SubqueryShape) -> Plan | None:
    if shape.kind != "exists" or not shape.maintainable:
        return None
    p = shape.parts
    # LIMIT 0 or aggregates/HAVING change what "a row exists" means: leave those to the cache.
    if p.agg is not None or (p.limit is not None and p.limit < 1):
        return None
    return Plan(
        "maintained EXISTS count",
        "rows matching WHERE, updated per table change",
        residual=list(shape.conjuncts),
        maintained="row_count",
    )
