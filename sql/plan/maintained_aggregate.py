"""Rule: uncorrelated ``(SELECT AGG(x) FROM t WHERE p)`` → aggregate maintained per change."""

from __future__ import annotations

from sqlglot import exp

from sql.plan.shape import Plan, SubqueryShape


def maintained_aggregate(shape: SubqueryShape) -> Plan | None:
    p = shape.parts
    if shape.kind != "scalar" or not shape.maintainable or p.agg is None:
        return None
    agg = p.agg
    items = shape.select.expressions
    if agg.keys or agg.having is not None or len(agg.specs) != 1 or len(items) != 1:
        return None
    item = items[0].unalias()
    if not isinstance(item, exp.AggFunc) or p.distinct or p.order or p.limit is not None:
        return None
    spec = agg.specs[0]
    if spec.name == "count" and isinstance(item.this, exp.Distinct):
        detail = "COUNT(DISTINCT): value multiplicities"
    else:
        detail = {
            "count": "COUNT in O(1)",
            "sum": "SUM in O(1), exact",
            "avg": "AVG as exact SUM/COUNT in O(1)",
            "min": "MIN via ordered multiset (lazy heap)",
            "max": "MAX via ordered multiset (lazy heap)",
        }[spec.name]
    return Plan(
        "maintained aggregate", detail, residual=list(shape.conjuncts), maintained="aggregate"
    )
