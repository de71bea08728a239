"""Subqueries: bind the inner SELECT, let the planner pick a strategy, return one closure.

The closure answers the subquery's *kind* for the current env: scalar (0 rows → NULL, >1 row →
per-record error), IN (three-valued, as PostgreSQL: UNKNOWN when not found and a NULL is present,
or when the probe is NULL and the set is not empty) and EXISTS.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from sql import logic
from sql.bind.scope import Scope, offset_of
from sql.catalog import qualified
from sql.compile.as_of import as_of_time, check_as_of, missing_as_of_key
from sql.compile.context import CompileContext, FusedSubquery
from sql.compile.expr import ExprCompiler
from sql.compile.prefetch import register_as_of_prefetch, register_prefetch, source_text
from sql.compile.select import combine, compile_conjuncts, compile_parts
from sql.compile.strategies import build_maintained, build_source
from sql.compile.subquery_join import (
    bind_joins,
    build_joined_cache,
    chained,
    explain_chain,
    first_table_view,
    reorder_joins,
)
from sql.dialect import conjunction_text, from_of, sql_text
from sql.errors import (
    E_SCALAR_ROWS,
    E_SEVERAL_ROWS,
    E_SUBQUERY_COLUMNS,
    E_TYPE_MISMATCH,
    E_UNKNOWN_TABLE,
    E_UNSUPPORTED,
    BindError,
    ScalarSubqueryError,
    SqlTypeError,
    UnsupportedError,
    position,
    suggest,
)
from sql.operators.inner import InnerQuery, by_key
from sql.operators.maintained import Aggregate, CachedRows, InSet, Maintained, RowCount
from sql.operators.sources import KeyLookup
from sql.plan.as_of_lookup import as_of_key_lookup
from sql.plan.planner import plan_subquery
from sql.plan.shape import Plan, SubqueryShape
from sql.runtime import Compiled, Env, Fn
from sql.types import ANY, BOOLEAN, comparable, mismatch_hint
from tables import Table


def star_columns(scope: Scope, only: Any = None) -> list[tuple[str, Compiled]]:
    out = []
    for rel in scope.relations:
        if only is not None and rel is not only:
            continue
        for name in rel.schema.columns:
            col = exp.column(name, table=rel.alias)
            out.append((name, ExprCompiler.column(ExprCompiler(None, scope, "SELECT"), col)))  # type: ignore[arg-type]
    return out


def resolve_table(ctx: CompileContext, node: exp.Expr, *, want: str) -> tuple[exp.Table, Table]:
    if not isinstance(node, exp.Table) or not node.name:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"FROM {node.sql()}"), sql=ctx.sql, offset=offset_of(node)
        )
    table = ctx.catalog.table(qualified(node))
    if table is None:
        schema = ctx.catalog.schema(qualified(node))
        what = E_UNKNOWN_TABLE.format(name=node.name)
        if schema is not None and schema.kind == "stream":
            what = E_UNSUPPORTED.format(what=f"reading stream {node.name!r} in a {want}")
        raise BindError(
            what,
            sql=ctx.sql,
            offset=offset_of(node),
            suggestion=suggest(node.name, ctx.catalog.names()),
        )
    check_as_of(ctx, node, table)
    return node, table


def compile_subquery(
    ctx: CompileContext,
    kind: str,
    select: exp.Select,
    outer: Scope,
    lhs: Compiled | None,
    node: exp.Expr,
) -> Compiled:
    if from_of(select) is None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="a subquery without FROM"),
            sql=ctx.sql,
            offset=offset_of(select),
        )
    select = reorder_joins(ctx, select)
    from_ = from_of(select)
    assert from_ is not None
    table_node, table = resolve_table(ctx, from_.this, want="subquery")
    sid = ctx.next_id()
    line = len(ctx.explain)
    ctx.explain.append((ctx.depth, ""))  # filled in once the plan is known (nested ones go after)
    ctx.depth += 1
    try:
        scope = outer.child()
        at = as_of_time(ctx, table_node, scope)  # reads the enclosing query only
        schema = ctx.catalog.schema(qualified(table_node))
        assert schema is not None
        rel = scope.add(table_node.alias_or_name, schema, table)
        steps = bind_joins(ctx, scope, select, resolve_table)
        ec = ExprCompiler(ctx, scope, "WHERE")
        where = select.args.get("where")
        conjuncts = compile_conjuncts(ec, where.this if where is not None else None, rel)
        parts = compile_parts(ctx, select, scope, star_columns(scope))
    finally:
        ctx.depth -= 1
    if kind in ("in", "scalar") and len(parts.outputs) != 1:
        raise BindError(
            E_SUBQUERY_COLUMNS.format(count=len(parts.outputs)),
            sql=ctx.sql,
            offset=offset_of(select),
        )
    if kind == "in" and lhs is not None and not comparable(lhs.type, parts.outputs[0].type):
        raise SqlTypeError(
            E_TYPE_MISMATCH.format(op="IN", left=lhs.type, right=parts.outputs[0].type)
            + mismatch_hint(lhs.type, parts.outputs[0].type),
            sql=ctx.sql,
            offset=offset_of(node),
        )
    tables = [table] + [
        t
        for n in select.find_all(exp.Table)
        if n is not table_node and (t := ctx.catalog.table(qualified(n))) is not None
    ]
    nested = any(
        isinstance(n, (exp.Subquery, exp.Exists))
        or (isinstance(n, exp.In) and n.args.get("query") is not None)
        for n in select.walk()
        if n is not select
    )
    shape = SubqueryShape(
        sid,
        kind,
        select,
        rel,
        table,
        conjuncts,
        parts,
        scope.used_outer,
        nested,
        tables,
        ctx.slots.count,
        sql=ctx.sql,
    )
    if at is None:
        # Over a join, the planner chooses the first table's access (or a cached result);
        # each joined table's access was chosen when it was bound.
        plan = plan_subquery(first_table_view(shape, steps) if steps else shape, ctx.rules)
    else:
        as_of = as_of_key_lookup(table_node, shape)
        if as_of is None:
            raise missing_as_of_key(ctx, table_node, table, shape.key_field)
        plan = as_of
        assert as_of.access is not None
        register_as_of_prefetch(ctx, table, at, as_of.access.by_version)
    maintained: Maintained | CachedRows | None = None
    if plan.maintained is not None:
        if steps:
            maintained = build_joined_cache(plan, shape, steps)
        else:
            maintained = build_maintained(plan, shape)
        ctx.closers.append(maintained.unsubscribe)
    key_field = shape.key_field
    probe = None
    if plan.pin is not None and at is None:
        # A key lookup or remote probe of an external table: fetched ahead per batch.
        probe = register_prefetch(ctx, table, key_field, plan.pin, rel)
    corr = "correlated" if shape.correlated else "uncorrelated"
    flag = "  !! last resort" if plan.flagged or any(s.flagged for s in steps) else ""
    warning = _several_rows(shape, plan)
    if warning:
        flag += f"  {warning}"
    on = table.name + "".join(
        f" JOIN {step.rel.table.name}" for step in steps if step.rel.table is not None
    )
    ctx.explain[line] = (
        ctx.depth,
        f"Subquery #{sid} {kind.upper()} ({corr}) on {on}: "
        f"{plan.strategy} [{plan.detail}]{explain_chain(steps)}{flag}"
        f"{source_text(table, plan.pin, key_field, probe)}",
    )
    source = None
    if plan.access is not None:
        source = build_source(plan.access, table, at.fn if at is not None else None)
        if steps:
            source = chained(source, rel, steps)
    at_line, at_column = position(ctx.sql, offset_of(select) or 0)
    label = {"sid": sid, "line": at_line, "column": at_column, "text": sql_text(select)}
    return _adapter(ctx, kind, shape, plan, maintained, source, lhs, label)


def _adapter(
    ctx: CompileContext,
    kind: str,
    shape: SubqueryShape,
    plan: Plan,
    m: object,
    source: Fn | None,
    lhs: Compiled | None,
    label: dict[str, Any],
) -> Compiled:
    if isinstance(m, InSet):
        assert lhs is not None
        fx, contains = lhs.fn, m.contains
        probe = Compiled(lambda e: contains(fx(e)), BOOLEAN)
        ctx.fused[id(probe.fn)] = (probe.fn, FusedSubquery("in_set", lhs=lhs, contains=contains))
        return probe
    if isinstance(m, RowCount):
        exists = m.exists
        return Compiled(lambda e: exists(), BOOLEAN)
    if isinstance(m, Aggregate):
        result = m.result
        return Compiled(lambda e: result(), shape.parts.outputs[0].type)
    if isinstance(m, CachedRows):
        return _over_rows(kind, lambda e: m.get(), shape, lhs, label)
    assert source is not None
    rel = shape.relation
    if isinstance(source, KeyLookup):
        where = combine(plan.residual)
        fused = by_key(kind, source, rel.value_slot, rel.meta_slot, where, shape.parts)
        if fused is not None:
            ctx.fused[id(fused)] = (
                fused,
                FusedSubquery(
                    kind, source, rel.value_slot, rel.meta_slot, where, shape.parts.outputs
                ),
            )
            t = BOOLEAN if kind == "exists" else shape.parts.outputs[0].type
            return Compiled(fused, t if t is not None else ANY)
    inner = InnerQuery(source, rel.value_slot, rel.meta_slot, combine(plan.residual), shape.parts)
    return _over_rows(kind, inner.rows, shape, lhs, label)


def _over_rows(
    kind: str,
    rows: Any,
    shape: SubqueryShape,
    lhs: Compiled | None,
    label: dict[str, Any] | None = None,
) -> Compiled:
    if kind == "rows":
        return Compiled(rows, ANY)
    stops = _accepts_stop(rows)  # decided once, not per record
    if kind == "exists":
        if stops:
            return Compiled(lambda e: bool(rows(e, 1)), BOOLEAN)
        return Compiled(lambda e: bool(rows(e)), BOOLEAN)
    if kind == "scalar":
        t = shape.parts.outputs[0].type
        where = label or {"sid": shape.id, "line": 0, "column": 0, "text": "?"}

        def scalar(e: Env) -> Any:
            rs = rows(e, 2) if stops else rows(e)
            if not rs:
                return None
            if len(rs) > 1:
                count = ">1" if len(rs) == 2 else len(rs)
                raise ScalarSubqueryError(
                    E_SCALAR_ROWS.format(count=count, **where), subquery=where["sid"]
                )
            return rs[0][0]

        return Compiled(scalar, t if t is not None else ANY)
    assert lhs is not None
    fx = lhs.fn

    def in_rows(e: Env) -> Any:
        x = fx(e)
        return logic.in_values(x, [r[0] for r in rows(e)])

    return Compiled(in_rows, BOOLEAN)


def _several_rows(shape: SubqueryShape, plan: Plan) -> str:
    """EXPLAIN's warning for a correlated scalar subquery that can find several rows: its
    correlation does not pin the key, and no aggregate or LIMIT 1 makes it one row."""
    if shape.kind != "scalar" or not shape.correlated:
        return ""
    if plan.access is not None and plan.access.kind in ("key_lookup", "as_of"):
        return ""
    p = shape.parts
    if (p.agg is not None and not p.agg.keys) or (p.limit is not None and p.limit <= 1):
        return ""
    own = {shape.relation.value_slot, shape.relation.meta_slot}
    on = [c.node for c in shape.conjuncts if c.slots - own] or [shape.select]
    key = shape.key_field or "_key"
    return E_SEVERAL_ROWS.format(
        on=conjunction_text(on) if on[0] is not shape.select else "?", key=key
    )


def _accepts_stop(rows: Any) -> bool:
    return getattr(rows, "__name__", "") == "rows" and hasattr(rows, "__self__")
