"""Joins inside a subquery: ``(SELECT ... FROM a [LEFT] JOIN b ON ... JOIN c ON ... WHERE ...)``.

The first table is read by the cheapest access its WHERE allows (key lookup, index probe, a scan
last), or — uncorrelated — as a cached result of the whole join, recomputed after a change to any
of its tables. Each joined table is then read per row of the tables before it, by a key lookup
when its ON pins its key (so ``a.id = o.x`` then ``b.id = a.b_id`` is two chained ``get``s), an
index probe on a pinned column, an as-of key lookup (``FOR SYSTEM_TIME AS OF``), or a flagged
scan. The joined rows feed the same inner pipeline as a single table (WHERE → GROUP BY/HAVING →
project), so every subquery kind, aggregate and nested subquery works over a join as over a table.
EXPLAIN names each step: ``key lookup [a.id = o.x] → InnerJoin b: key lookup [b.id = a.b_id]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from sql.bind.scope import BoundRelation, Scope, offset_of
from sql.compile.as_of import as_of_source, as_of_time
from sql.compile.context import CompileContext
from sql.compile.expr import ExprCompiler
from sql.compile.select import combine, compile_conjuncts
from sql.dialect import sql_text
from sql.errors import E_UNSUPPORTED, UnsupportedError
from sql.operators import sources
from sql.operators.inner import InnerQuery
from sql.operators.maintained import CachedRows
from sql.plan.as_of_lookup import STRATEGY as AS_OF_STRATEGY
from sql.plan.as_of_lookup import describe as describe_as_of
from sql.plan.shape import Conjunct, Plan, SubqueryShape
from sql.runtime import Env, Fn
from tables.protocol import Key, Table, Value

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
        schema = ctx.catalog.schema(node.name)
        assert schema is not None
        at = as_of_time(ctx, node, scope)  # reads the enclosing query only
        rel = scope.add(node.alias_or_name, schema, table)
        conjuncts = compile_conjuncts(ExprCompiler(ctx, scope, "JOIN ON"), on, rel)
        key_field = schema.key_field or table.key_field
        source, strategy, used = _access(table, key_field, conjuncts)
        if at is not None:
            source, used = as_of_source(ctx, node, table, key_field, conjuncts, at)
            strategy = f"{AS_OF_STRATEGY} {describe_as_of(node)}"
        probe = strategy.startswith("index probe")
        residual = combine([c for c in conjuncts if c is not used or probe])
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


def _access(
    table: Table, key_field: str | None, conjuncts: list[Conjunct]
) -> tuple[Fn, str, Conjunct | None]:
    """Key lookup on a pinned key, else index probe on a pinned column, else a scan."""
    for c in conjuncts:
        if c.pin is not None and (c.pin[0] == "_key" or c.pin[0] == key_field):
            return sources.key_lookup(table, c.pin[1].fn), "key lookup", c
    for c in conjuncts:
        if c.pin is not None and c.pin[0] != "_key":
            return sources.index_probe(table, c.pin[0], c.pin[1].fn), "index probe", c
    return sources.scan(table), "FULL SCAN per row", None


def explain_chain(steps: list[JoinStep]) -> str:
    """`` → InnerJoin b: key lookup [b.id = a.b_id] → ...`` after the first table's plan."""
    return "".join(f" → {step.text}" for step in steps)


def plan_joined(
    shape: SubqueryShape, steps: list[JoinStep]
) -> tuple[Plan, Fn | None, CachedRows | None]:
    """The first table's access (its WHERE pins that read neither joined table), chained with
    the joins. Uncorrelated: the whole join's rows cached, recomputed after a change. The plan
    is flagged when any step scans per row. Returns the plan with the live row source or
    cache it describes (built here: compilation, not a planner rule)."""
    joined = {s for step in steps for s in (step.rel.value_slot, step.rel.meta_slot)}
    rel, table = shape.relation, shape.table
    # A pin whose value reads a joined table cannot drive the first table's access: those rows
    # are found after it. The conjunct still filters, as the residual.
    usable = [c for c in shape.conjuncts if c.pin is not None and not c.slots & joined]
    flagged = any(step.flagged for step in steps)
    if not shape.correlated:
        first_key = _key_pin(usable, shape.key_field)
        if first_key is None:
            inner = InnerQuery(
                chained(sources.scan(table), rel, steps),
                rel.value_slot,
                rel.meta_slot,
                combine(shape.conjuncts),
                shape.parts,
            )
            names = ", ".join(sorted({t.name for t in shape.tables}))
            plan = Plan(
                "maintained result",
                f"recomputed on first use after a change to {names}; {table.name} scanned",
                residual=list(shape.conjuncts),
                maintained="cached_rows",
            )
            return plan, None, CachedRows(inner, shape.tables, shape.env_size)
    key = _key_pin(usable, shape.key_field)
    if key is not None:
        assert key.pin is not None
        source, strategy, used = sources.key_lookup(table, key.pin[1].fn), "key lookup", key
        residual = [c for c in shape.conjuncts if c is not key]
    else:
        probe = next((c for c in usable if c.pin is not None and c.pin[0] != "_key"), None)
        if probe is not None:
            assert probe.pin is not None
            source = sources.index_probe(table, probe.pin[0], probe.pin[1].fn)
            strategy, used, residual = "index probe", probe, list(shape.conjuncts)
        else:
            source, strategy, used = sources.scan(table), "FULL SCAN", None
            residual = list(shape.conjuncts)
            flagged = True
    detail = sql_text(used.node) if used is not None else "per record"
    plan = Plan(strategy, detail, residual=residual, flagged=flagged)
    return plan, chained(source, rel, steps), None


def _key_pin(conjuncts: list[Conjunct], key_field: str | None) -> Conjunct | None:
    for c in conjuncts:
        if c.pin is not None and (c.pin[0] == "_key" or c.pin[0] == key_field):
            return c
    return None


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
