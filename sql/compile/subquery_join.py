"""Joins inside a subquery: ``(SELECT ... FROM a [LEFT] JOIN b ON ... JOIN c ON ... WHERE ...)``.

The first table is read by the cheapest access its WHERE allows (key lookup, index probe, a scan
last), or — uncorrelated — as a cached result of the whole join, recomputed after a change to any
of its tables. Each joined table is then read per row of the tables before it, by a key lookup
when its ON pins its key (so ``a.id = o.x`` then ``b.id = a.b_id`` is two chained ``get``s), an
index probe on a pinned column, a remote probe of an external table (the stream query's join
rules, :data:`sql.plan.planner.JOIN_RULES`), an as-of key lookup (``FOR SYSTEM_TIME AS OF``), or
a flagged scan. The joined rows feed the same inner pipeline as a single table (WHERE →
GROUP BY/HAVING → project), so every subquery kind, aggregate and nested subquery works over a
join as over a table.
EXPLAIN names each step: ``key lookup [a.id = o.x] → InnerJoin b: key lookup [b.id = a.b_id]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from sql.bind.scope import BoundRelation, Scope, offset_of
from sql.catalog import qualified
from sql.compile.as_of import as_of_source, as_of_time
from sql.compile.context import CompileContext
from sql.compile.expr import ExprCompiler
from sql.compile.select import combine, compile_conjuncts
from sql.compile.strategies import build_source
from sql.dialect import from_of
from sql.errors import E_UNSUPPORTED, UnsupportedError
from sql.operators import sources
from sql.operators.inner import InnerQuery
from sql.operators.maintained import CachedRows
from sql.plan.as_of_lookup import STRATEGY as AS_OF_STRATEGY
from sql.plan.as_of_lookup import describe as describe_as_of
from sql.plan.planner import plan_join
from sql.plan.shape import Conjunct, JoinShape, Plan, SubqueryShape
from sql.runtime import Env, Fn
from tables import Key, Value

_EMPTY: dict[str, Any] = {}


@dataclass(slots=True)
class JoinStep:
    """One ``[LEFT] JOIN t ON ...`` of a subquery: how its rows are found per row before it."""

    rel: BoundRelation
    source: Fn
    residual: Fn | None
    left: bool
    text: str  # for EXPLAIN: "InnerJoin b: key lookup [b.id = a.b_id]"
    flagged: bool


def bind_joins(
    ctx: CompileContext, scope: Scope, select: exp.Select, resolve: Any
) -> list[JoinStep]:
    """Bind each joined table into ``scope`` (in order: an ON sees the tables before it) and
    choose its access path. ``resolve`` is :func:`sql.compile.subquery.resolve_table`."""
    steps: list[JoinStep] = []
    for j in select.args.get("joins") or []:
        side = (j.args.get("side") or "").upper()
        kind = (j.args.get("kind") or "").upper()
        if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER") or j.args.get("using"):
            what = f"{side or kind} JOIN in a subquery".strip()
            raise UnsupportedError(
                E_UNSUPPORTED.format(what=what), sql=ctx.sql, offset=offset_of(j)
            )
        on = j.args.get("on")
        if on is None:
            raise UnsupportedError(
                E_UNSUPPORTED.format(what="a join without ON"), sql=ctx.sql, offset=offset_of(j)
            )
        node, table = resolve(ctx, j.this, want="subquery")
        schema = ctx.catalog.schema(qualified(node))
        assert schema is not None
        at = as_of_time(ctx, node, scope)  # reads the enclosing query only
        rel = scope.add(node.alias_or_name, schema, table)
        conjuncts = compile_conjuncts(ExprCompiler(ctx, scope, "JOIN ON"), on, rel)
        shape = JoinShape(rel, table, conjuncts, j, ctx.sql)
        used: Conjunct | None
        if at is not None:
            source, used = as_of_source(ctx, node, table, shape.key_field, conjuncts, at)
            strategy, residual = (
                f"{AS_OF_STRATEGY} {describe_as_of(node, table)}",
                combine([c for c in conjuncts if c is not used]),
            )
        else:  # the stream query's joins' rules: key lookup, index or remote probe, scan
            plan = plan_join(shape)
            assert plan.access is not None
            source, used, residual = (
                build_source(plan.access, table),
                plan.pin,
                combine(plan.residual),
            )
            strategy = plan.strategy + (" per row" if plan.flagged else "")
        left = side == "LEFT"
        name = table.name + (f" AS {node.alias}" if node.alias else "")
        detail = f" [{used.node.sql(dialect='duckdb')}]" if used is not None else ""
        flagged = used is None
        steps.append(
            JoinStep(
                rel,
                source,
                residual,
                left,
                f"{'Left' if left else 'Inner'}Join {name}: {strategy}{detail}",
                flagged,
            )
        )
    return steps


def explain_chain(steps: list[JoinStep]) -> str:
    """`` → InnerJoin b: key lookup [b.id = a.b_id] → ...`` after the first table's plan."""
    return "".join(f" → {step.text}" for step in steps)


def first_table_view(shape: SubqueryShape, steps: list[JoinStep]) -> SubqueryShape:
    """The subquery as the planner should see it over a join: the first table's WHERE pins
    whose value reads no joined table (those rows are found after it; such a conjunct still
    filters, as the residual), and never a structure maintained from one table's rows alone
    (``nested``) — so a key lookup, an index probe, a cached result of the whole join when
    uncorrelated, or a scan."""
    joined = {s for step in steps for s in (step.rel.value_slot, step.rel.meta_slot)}
    conjuncts = [
        c if c.pin is None or not c.slots & joined else replace(c, pin=None)
        for c in shape.conjuncts
    ]
    return replace(shape, conjuncts=conjuncts, nested=True)


def build_joined_cache(plan: Plan, shape: SubqueryShape, steps: list[JoinStep]) -> CachedRows:
    """An uncorrelated subquery over a join: the joined rows, recomputed on first use after a
    change to any of its tables."""
    assert plan.maintained == "cached_rows", plan.maintained
    rel = shape.relation
    inner = InnerQuery(
        chained(sources.scan(shape.table), rel, steps),
        rel.value_slot,
        rel.meta_slot,
        combine(plan.residual),
        shape.parts,
    )
    tables = shape.local_tables  # cached_result chose it only when every table has a change feed
    assert tables is not None
    return CachedRows(inner, tables, shape.env_size)


def chained(first: Fn, rel: BoundRelation, steps: list[JoinStep]) -> Fn:
    """The first table's rows, each repeated once per combination of joined rows (a LEFT JOIN
    without a match: once, with that table's columns NULL). The joined tables' env slots are
    filled before each row is yielded, so the inner query's WHERE and outputs read all tables."""
    vs, ms = rel.value_slot, rel.meta_slot
    n = len(steps)

    def expand(env: Env, i: int) -> Iterator[None]:
        if i == n:
            yield None
            return
        step = steps[i]
        jvs, jms, residual = step.rel.value_slot, step.rel.meta_slot, step.residual
        matched = False
        for k, v in step.source(env):
            env[jvs] = v if isinstance(v, dict) else _EMPTY
            env[jms] = k
            if residual is not None and residual(env) is not True:
                continue
            matched = True
            yield from expand(env, i + 1)
        if not matched and step.left:
            env[jvs], env[jms] = _EMPTY, None
            yield from expand(env, i + 1)

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        for k, v in first(env):
            env[vs] = v if isinstance(v, dict) else _EMPTY
            env[ms] = k
            for _ in expand(env, 0):
                yield k, v

    return rows


def reorder_joins(ctx: CompileContext, select: exp.Select) -> exp.Select:
    """``FROM a JOIN b ON ...`` (one inner join) read from ``b`` first when the WHERE pins ``b``
    to the enclosing query better than ``a`` (by key over by another column): the driving table
    should be the one the record finds by key (or index), not one scanned per record. An inner
    join of two tables is the same relation either way round, so the query means the same;
    EXPLAIN shows the order run. Outer joins, three or more tables and AS OF reads are left as
    written."""
    joins = select.args.get("joins") or []
    from_ = from_of(select)
    if len(joins) != 1 or from_ is None or not isinstance(from_.this, exp.Table):
        return select
    j = joins[0]
    if (j.args.get("side") or "").upper() or (j.args.get("kind") or "").upper() not in (
        "",
        "INNER",
    ):
        return select
    first, second = from_.this, j.this
    if not isinstance(second, exp.Table) or first.args.get("version") or second.args.get("version"):
        return select
    where = select.args.get("where")
    if where is None:
        return select
    aliases = {first.alias_or_name.lower(), second.alias_or_name.lower()}
    rank_first = _pin_rank(ctx, first, where.this, aliases)
    rank_second = _pin_rank(ctx, second, where.this, aliases)
    if rank_second <= rank_first:
        return select
    swapped = select.copy()
    s_from = from_of(swapped)
    assert s_from is not None
    s_join = swapped.args["joins"][0]
    a, b = s_from.this, s_join.this
    s_from.set("this", b.copy())
    s_join.set("this", a.copy())
    return swapped


def _pin_rank(ctx: CompileContext, table: exp.Table, where: exp.Expr, aliases: set[str]) -> int:
    """2: a WHERE term ``t.key = <the enclosing query>``; 1: ``t.col = <the enclosing query>``;
    0: neither. The other side must read only qualified columns of enclosing tables (an
    unqualified name is not assumed outer)."""
    alias = table.alias_or_name.lower()
    schema = ctx.catalog.schema(qualified(table))
    t = ctx.catalog.table(qualified(table))
    key = (schema.key_field if schema is not None else None) or (t.key_field if t else None)
    best = 0
    for term in _and_terms(where):
        if not isinstance(term, exp.EQ):
            continue
        for side, other in ((term.this, term.expression), (term.expression, term.this)):
            if not (isinstance(side, exp.Column) and side.table.lower() == alias):
                continue
            cols = list(other.find_all(exp.Column))
            if not cols or any(not c.table or c.table.lower() in aliases for c in cols):
                continue  # a constant (uncorrelated: better cached whole) or not the outer query
            if other.find(exp.Subquery, exp.Exists, exp.AggFunc) is not None:
                continue
            best = max(best, 2 if side.name in (key, "_key") else 1)
    return best


def _and_terms(node: exp.Expr) -> list[exp.Expr]:
    node = node.unnest()
    if isinstance(node, exp.And):
        return [t for part in node.flatten() for t in _and_terms(part)]
    return [node]
