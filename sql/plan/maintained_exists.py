"""Rule: uncorrelated ``[NOT] EXISTS (SELECT ... FROM t WHERE p)`` → maintained row count."""

from __future__ import annotations

from sql.compile.select import combine
from sql.operators.maintained import RowCount
from sql.plan.shape import Plan, SubqueryShape


def maintained_exists(shape: SubqueryShape) -> Plan | None:
    if shape.kind != "exists" or not shape.maintainable:
        return None
    p = shape.parts
    # LIMIT 0 or aggregates/HAVING change what "a row exists" means: leave those to the cache.
    if p.agg is not None or (p.limit is not None and p.limit < 1):
        return None
    rel = shape.relation
    structure = RowCount(
        shape.local_table, rel.value_slot, rel.meta_slot, shape.env_size, combine(shape.conjuncts)
    )
    return Plan(
        "maintained EXISTS count",
        "rows matching WHERE, updated per table change",
        maintained=structure,
    )
