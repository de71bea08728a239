"""The stream query: FROM stream [JOIN table ...] WHERE ... [GROUP BY ... HAVING ...] → stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sql.bind.scope import BoundRelation, Scope, offset_of
from sql.catalog import qualified
from sql.compile.as_of import as_of_time, missing_as_of_key
from sql.compile.context import CompileContext
from sql.compile.expr import ExprCompiler
from sql.compile.prefetch import (
    register_as_of_prefetch,
    register_filler,
    register_prefetch,
    source_text,
)
from sql.compile.select import combine, compile_conjuncts, compile_parts
from sql.compile.strategies import build_source
from sql.compile.subquery import compile_subquery, resolve_table, star_columns
from sql.compile.window import (
    add_window_outputs,
    bind_window,
    check_window_use,
    explain_line,
    key_columns,
    make_aggregate,
)
from sql.dialect import Declaration, conjunction_text, from_of, sql_text
from sql.errors import (
    E_STREAM_REQUIRED,
    E_UNKNOWN_TABLE,
    E_UNSUPPORTED,
    BindError,
    UnsupportedError,
    suggest,
)
from sql.operators import sources
from sql.operators.aggregate import AggregateOperator, StreamAggregate
from sql.operators.join import Stage, join_stage, lookup_join_stage
from sql.operators.stages import aggregate_stage, filter_stage, project_stage
from sql.operators.window import WindowedAggregate
from sql.plan.as_of_lookup import STRATEGY as AS_OF_STRATEGY
from sql.plan.as_of_lookup import as_of_key_lookup
from sql.plan.as_of_lookup import describe as describe_as_of
from sql.plan.fold_in_join import fold_in_into_join
from sql.plan.planner import plan_join
from sql.plan.shape import Conjunct, JoinShape, JoinStep, StreamShape
from sql.runtime import Compiled, Env, Fn
from sql.runtime.parts import SelectParts
from sql.types import SqlType, converter
from sql.window import WindowSpec


@dataclass(slots=True)
class StreamPlan:
    stream: BoundRelation
    run: Stage
    names: list[str]
    aggregate: AggregateOperator | None
    lines: list[str] = field(default_factory=list)
    emit: str = "changes"
    key_columns: tuple[str, ...] = ()
    #: Windowed: runs first for every record (event time → watermark → closed windows' rows),
    #: before joins and WHERE can drop the record.
    observe: Stage | None = None
    #: The SQL type of each output column, in ``names`` order.
    types: list[SqlType] = field(default_factory=list)
    #: The steps per record, for the code generators (:mod:`sql.codegen`; an aggregate's are
    #: its WHERE terms before the aggregation).
    shape: StreamShape | None = None


def compile_stream_query(
    ctx: CompileContext,
    select: exp.Select,
    emit: str | None,
    emit_offset: int,
    window: WindowSpec | None = None,
    sink: Declaration | None = None,
) -> StreamPlan:
    ctx.subquery = lambda kind, sel, scope, lhs, node: compile_subquery(
        ctx, kind, sel, scope, lhs, node
    )
    scope = Scope(ctx.sql, ctx.slots)
    # Query-level rewrites before binding: an IN over a joined table's key answered from the
    # joined row (both engines compile the rewritten query; EXPLAIN says what was folded).
    select, folds = fold_in_into_join(select, ctx.catalog)
    ctx.explain.extend((0, line) for line in folds)
    from_ = from_of(select)
    if from_ is None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="a query without FROM"), sql=ctx.sql, offset=offset_of(select)
        )
    src = from_.this
    if not isinstance(src, exp.Table):
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"FROM {src.sql()}"), sql=ctx.sql, offset=offset_of(src)
        )
    schema = ctx.catalog.schema(src.name)
    if schema is None:
        raise BindError(
            E_UNKNOWN_TABLE.format(name=src.name),
            sql=ctx.sql,
            offset=offset_of(src),
            suggestion=suggest(src.name, ctx.catalog.names()),
        )
    if schema.kind != "stream":
        raise BindError(E_STREAM_REQUIRED.format(name=src.name), sql=ctx.sql, offset=offset_of(src))
    stream = scope.add(src.alias_or_name, schema, None)
    ctx.stream_slots = frozenset((stream.value_slot, stream.meta_slot))
    lines = [f"StreamScan {schema.name}" + (f" AS {src.alias}" if src.alias else "")]
    joins: list[tuple[BoundRelation, Fn, Fn | None, bool]] = []
    for j in select.args.get("joins") or []:
        joins.append(_join(ctx, scope, j, lines))
    where_node = select.args.get("where")
    where = None
    pushed: list[Fn] = []
    early_terms: list[Conjunct] = []
    late_terms: list[Conjunct] = []
    if where_node is not None and joins:
        # AND-terms that read no joined table run before the joins: a record they drop costs no
        # lookup (and a term runs once per record, not once per joined row).
        joined = {s for rel, *_ in joins for s in (rel.value_slot, rel.meta_slot)}
        terms = compile_conjuncts(ExprCompiler(ctx, scope, "WHERE"), where_node.this, None)
        early = [c for c in terms if not c.slots & joined]
        late = [c for c in terms if c.slots & joined]
        pushed, where = [c.fn for c in early], combine(late)
        early_terms, late_terms = early, late
        if early:
            text = conjunction_text([c.node for c in early])
            lines.insert(1, f"Filter {text} (before joins)")
        if late:
            lines.append(f"Filter {conjunction_text([c.node for c in late])}")
    elif where_node is not None:
        where = ExprCompiler(ctx, scope, "WHERE").predicate(where_node.this).fn
        late_terms = [Conjunct(where_node.this, where, set())]
        lines.append(f"Filter {sql_text(where_node.this)}")
    win = bind_window(ctx, scope, stream, window, sink.options if sink else {}) if window else None
    parts = compile_parts(ctx, select, scope, star_columns(scope))
    if win is not None:
        check_window_use(ctx, select, parts, win.spec)
        add_window_outputs(select, parts, scope)
    names = _unique(parts.names)
    _fit_sink_decimals(parts, names, sink)
    outputs = [c.fn for c in parts.outputs]
    if parts.order:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="ORDER BY on a stream"),
            sql=ctx.sql,
            offset=offset_of(select.args["order"]),
        )
    aggregate: AggregateOperator | None = None
    # Without EMIT a windowed aggregate emits each window once, when it closes (Flink SQL, Spark
    # and the original system); a GROUP BY without a window has no close, so it emits per record.
    mode = emit or ("final" if win is not None else "changes")
    if parts.agg is not None:
        if win is not None:
            aggregate = make_aggregate(parts, outputs, names, mode, win)
            lines.append(explain_line(win))
        else:
            aggregate = StreamAggregate(parts.agg, outputs, names, mode)
        group = select.args.get("group")
        keys = ", ".join(g.sql(dialect="duckdb") for g in group.expressions) if group else "()"
        having = select.args.get("having")
        lines.append(
            f"Aggregate GROUP BY {keys} [{', '.join(s.sql for s in parts.agg.specs)}]"
            + (f" HAVING {having.this.sql(dialect='duckdb')}" if having else "")
            + f" EMIT {mode.upper()}"
        )
        final: Stage = aggregate_stage(where, aggregate)
    else:
        if emit == "final":
            raise UnsupportedError(
                E_UNSUPPORTED.format(what="EMIT FINAL without GROUP BY"),
                sql=ctx.sql,
                offset=emit_offset,
            )
        reads = [c.read for c in parts.outputs]
        final = project_stage(where, outputs, names, parts.distinct, parts.limit, reads)
        if parts.distinct:
            lines.append("Distinct (rows seen so far)")
        if parts.limit is not None:
            lines.append(f"Limit {parts.limit}")
    lines.append(f"Project {', '.join(names)}")
    run = final
    for rel, source, residual, left in reversed(joins):
        if isinstance(source, sources.KeyLookup):
            run = lookup_join_stage(rel.value_slot, rel.meta_slot, source, residual, left, run)
        else:
            run = join_stage(rel.value_slot, rel.meta_slot, source, residual, left, run)
    if pushed:
        run = filter_stage(pushed, run)
    key_cols = key_columns(ctx, select, names, aggregate, sink)
    observe = aggregate.observe if isinstance(aggregate, WindowedAggregate) else None
    types = [c.type for c in parts.outputs]
    # Aggregates too: the generated fold (sql.codegen.fold_batch) reads their WHERE terms here.
    steps = [JoinStep(rel, src, residual, left) for rel, src, residual, left in joins]
    shape = StreamShape(
        stream,
        steps,
        early_terms,
        late_terms,
        list(parts.outputs),
        names,
        parts.distinct,
        parts.limit,
    )
    return StreamPlan(stream, run, names, aggregate, lines, mode, key_cols, observe, types, shape)


def _fit_sink_decimals(parts: SelectParts, names: list[str], sink: Declaration | None) -> None:
    """An output column the sink declares ``DECIMAL(p, s)`` is assigned to it as PostgreSQL's
    INSERT ... SELECT does: rounded to scale ``s`` (half away from zero), and a value with more
    than ``p`` digits is the record's NumericOverflowError (to the dead-letter topic)."""
    declared = {k.lower(): t for k, t in (sink.columns or {}).items()} if sink else {}
    for i, name in enumerate(names):
        t = declared.get(name.lower())
        if t is None or t.name != "DECIMAL" or t.precision is None:
            continue
        conv = converter(t)
        assert conv is not None
        parts.outputs[i] = Compiled(_assign(parts.outputs[i].fn, conv), t)


def _assign(fn: Fn, conv: Fn) -> Fn:
    def assign(e: Env) -> Any:
        v = fn(e)
        return None if v is None else conv(v)

    return assign


def _join(
    ctx: CompileContext, scope: Scope, j: exp.Join, lines: list[str]
) -> tuple[BoundRelation, Fn, Fn | None, bool]:
    """Bind a joined table and choose its access path by the planner's join rules (the same
    access paths, sources and prefetching as a subquery's table); ``(relation, row source,
    residual ON terms, LEFT)``."""
    side = (j.args.get("side") or "").upper()
    kind = (j.args.get("kind") or "").upper()
    if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER") or j.args.get("using"):
        what = f"{side or kind} JOIN".strip()
        raise UnsupportedError(E_UNSUPPORTED.format(what=what), sql=ctx.sql, offset=offset_of(j))
    node, table = resolve_table(ctx, j.this, want="join")
    schema = ctx.catalog.schema(qualified(node))
    assert schema is not None
    at = as_of_time(ctx, node, scope)  # before the table joins the scope: it reads the stream
    rel = scope.add(node.alias_or_name, schema, table)
    on = j.args.get("on")
    if on is None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="a join without ON"), sql=ctx.sql, offset=offset_of(j)
        )
    conjuncts = compile_conjuncts(ExprCompiler(ctx, scope, "JOIN ON"), on, rel)
    shape = JoinShape(rel, table, conjuncts, j, ctx.sql)
    key_field = shape.key_field
    if at is None:
        plan = plan_join(shape)
        strategy = plan.strategy
    else:  # the table as of the record's time: a key lookup in its history
        as_of = as_of_key_lookup(node, shape)
        if as_of is None:
            raise missing_as_of_key(ctx, node, table, key_field)
        plan, strategy = as_of, f"{AS_OF_STRATEGY} {describe_as_of(node, table)}"
        assert as_of.access is not None
        register_as_of_prefetch(ctx, table, at, as_of.access.by_version)
    assert plan.access is not None
    source = build_source(plan.access, table, at.fn if at is not None else None)
    left = side == "LEFT"
    probe = None
    if plan.pin is not None and at is None:
        # A key lookup or remote probe of an external table: fetched ahead per batch (in a
        # later round when its value reads another joined table's row).
        probe = register_prefetch(ctx, table, key_field, plan.pin, rel)
    register_filler(ctx, rel, source, left, plan.pin, probe)
    flag = "  !! last resort" if plan.flagged else ""
    lines.append(
        f"{'Left' if left else 'Inner'}LookupJoin {table.name}"
        + (f" AS {node.alias}" if node.alias else "")
        + f" ON {on.sql(dialect='duckdb')}: {strategy}{flag}"
        + source_text(table, plan.pin, key_field, probe)
    )
    return rel, source, combine(plan.residual), left


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
            while n in seen:
                n += "_"
        seen.setdefault(n, 0)
        out.append(n)
    return out
