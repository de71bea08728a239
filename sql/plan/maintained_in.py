"""Rule: uncorrelated ``x [NOT] IN (SELECT v FROM t WHERE p)`` → maintained IN-set."""

from __future__ import annotations

from sql.compile.select import combine
from sql.operators.maintained import InSet
from sql.plan.shape import Plan, SubqueryShape


def maintained_in(shape: SubqueryShape) -> Plan | None:
    if shape.kind != "in" or not shape.maintainable or not shape.simple:
        return None
    rel = shape.relation
    where = combine(shape.conjuncts)
    value = shape.parts.outputs[0].fn
    structure = InSet(
        shape.local_table, rel.value_slot, rel.meta_slot, shape.env_size, where, value
    )
    return Plan(
        "maintained IN-set",
        "value multiplicities + NULL count, updated per table change",
        maintained=structure,
    )
