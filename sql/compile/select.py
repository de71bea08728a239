"""The parts of one SELECT level compiled in its scope: conjuncts, aggregates, outputs, order.

Shared by the stream query and by every subquery, so both accept the same SQL.
"""

from __future__ import annotations

from sqlglot import exp

from sql import logic
from sql.bind.scope import BoundRelation, Scope, offset_of
from sql.compile.aggregate import compile_aggregate, find_aggregates
from sql.compile.context import AggBinding, CompileContext
from sql.compile.expr import ExprCompiler, group_text
from sql.errors import (
    E_TYPE_MISMATCH,
    E_UNSUPPORTED,
    SqlTypeError,
    UnsupportedError,
)
from sql.plan.shape import Conjunct
from sql.runtime import Compiled, Fn
from sql.runtime.parts import Aggregation, SelectParts
from sql.types import BOOLEAN, comparable, mismatch_hint


def and_terms(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    node = node.unnest()
    if isinstance(node, exp.And):
        return [t for part in node.flatten() for t in and_terms(part)]
    return [node]


def compile_conjuncts(
    ec: ExprCompiler, where: exp.Expr | None, rel: BoundRelation | None
) -> list[Conjunct]:
    out: list[Conjunct] = []
    scope = ec.scope
    for node in and_terms(where):
        if isinstance(node, exp.EQ):
            with scope.track() as sa:
                a = ec.compile(node.this)
            with scope.track() as sb:
                b = ec.compile(node.expression)
            if not comparable(a.type, b.type):
                raise SqlTypeError(
                    E_TYPE_MISMATCH.format(op="=", left=a.type, right=b.type)
                    + mismatch_hint(
                        a.type,
                        b.type,
                        node.this.sql(dialect="duckdb"),
                        node.expression.sql(dialect="duckdb"),
                    ),
                    sql=ec.ctx.sql,
                    offset=offset_of(node),
                )
            fn = _eq(a, b)
            pin = None
            if rel is not None:
                pin = _pin(node.this, sa, b, sb, rel) or _pin(node.expression, sb, a, sa, rel)
            out.append(Conjunct(node, fn, sa | sb, pin))
        else:
            with scope.track() as s:
                c = ec.predicate(node)
            out.append(Conjunct(node, c.fn, s))
    return out


def _eq(a: Compiled, b: Compiled) -> Fn:
    fa, fb, bv = a.fn, b.fn, b.value
    if b.const:
        return lambda e: logic.eq(fa(e), bv)
    return lambda e: logic.eq(fa(e), fb(e))


def _pin(
    side: exp.Expr,
    side_slots: set[int],
    other: Compiled,
    other_slots: set[int],
    rel: BoundRelation,
) -> tuple[str, Compiled] | None:
    own = {rel.value_slot, rel.meta_slot}
    if not isinstance(side, exp.Column) or not side_slots or not side_slots <= own:
        return None
    if other_slots & own:
        return None
    parts = [p.name for p in side.parts]
    if len(parts) == 2 and parts[0].lower() != rel.alias.lower():
        return None
    if len(parts) > 2:
        return None
    return parts[-1], other


def combine(conjuncts: list[Conjunct]) -> Fn | None:
    fns = [c.fn for c in conjuncts]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]
    return logic.all_of(fns)


def compile_parts(
    ctx: CompileContext, select: exp.Select, scope: Scope, star: list[tuple[str, Compiled]]
) -> SelectParts:
    """Outputs, aggregation, DISTINCT, ORDER BY and LIMIT of ``select`` (WHERE is separate)."""
    parts = SelectParts(distinct=bool(select.args.get("distinct")))
    group = select.args.get("group")
    having = select.args.get("having")
    items = list(select.expressions)
    calls = find_aggregates([*items, *([having.this] if having else [])])
    plain = ExprCompiler(ctx, scope, "SELECT")
    agg_binding: AggBinding | None = None
    if calls or group is not None:
        agg_binding = AggBinding(ctx.slots.allocate(), ctx.slots.allocate(), calls, scope=scope)
        key_fns: list[Fn] = []
        group_ec = ExprCompiler(ctx, scope, "GROUP BY")
        for i, g in enumerate(group.expressions if group is not None else []):
            key_fns.append(group_ec.compile(g).fn)
            agg_binding.keys[group_text(g)] = i
        specs = [compile_aggregate(ctx, scope, call) for call in calls]
        out_ec = ExprCompiler(ctx, scope, "SELECT", agg_binding)
        having_fn = (
            ExprCompiler(ctx, scope, "HAVING", agg_binding).predicate(having.this).fn
            if having
            else None
        )
        parts.agg = Aggregation(
            specs, key_fns, having_fn, agg_binding.agg_slot, agg_binding.key_slot
        )
    else:
        out_ec = plain
        if having is not None:
            having_fn = (
                ExprCompiler(ctx, scope, "HAVING", AggBinding(-1, -1, [], scope=scope))
                .predicate(having.this)
                .fn
            )
            parts.agg = Aggregation([], [], having_fn, ctx.slots.allocate(), ctx.slots.allocate())
    for item in items:
        if isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        ):
            for name, c in star:
                parts.outputs.append(c)
                parts.names.append(name)
            continue
        c = out_ec.compile(item)
        name = (
            item.alias_or_name
            if isinstance(item, (exp.Alias, exp.Column))
            else item.sql(dialect="duckdb")
        )
        parts.outputs.append(c)
        parts.names.append(name)
        if isinstance(item, exp.Alias):
            # Later items may use this alias (DuckDB's lateral column aliases).
            scope.aliases[item.alias] = (c.fn, c.type)
    order = select.args.get("order")
    if order is not None:
        for o in order.expressions:
            parts.order.append((out_ec.compile(o.this).fn, bool(o.args.get("desc"))))
    limit = select.args.get("limit")
    if limit is not None:
        lim = limit.expression if limit.expression is not None else limit.this
        parts.limit = int(lim.name)
    if select.args.get("offset") is not None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="OFFSET"),
            sql=ctx.sql,
            offset=offset_of(select.args["offset"]),
        )
    return parts


__all__ = [
    "BOOLEAN",
    "Conjunct",
    "SelectParts",
    "and_terms",
    "combine",
    "compile_conjuncts",
    "compile_parts",
]
