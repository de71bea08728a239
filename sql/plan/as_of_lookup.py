"""Forced plan: a subquery over ``t FOR SYSTEM_TIME AS OF expr`` is one as-of key lookup."""

from __future__ import annotations

from sqlglot import exp

from sql.compile.as_of import STRATEGY, as_of_source, describe
from sql.compile.context import CompileContext
from sql.plan.shape import Plan, SubqueryShape
from sql.runtime import Compiled


def as_of_key_lookup(
    ctx: CompileContext, node: exp.Table, shape: SubqueryShape, at: Compiled
) -> Plan:
    """The table as of ``at``: maintained results and indexes describe only its present."""
    source, used = as_of_source(ctx, node, shape.table, shape.key_field, shape.conjuncts, at)
    return Plan(
        STRATEGY,
        f"{used.node.sql(dialect='duckdb')} {describe(node)}",
        source=source,
        residual=[c for c in shape.conjuncts if c is not used],
    )
