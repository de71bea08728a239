"""Compiling a windowed aggregate: event time, ``window_start``/``window_end``, options, keys.

``window_start`` and ``window_end`` (also ksqlDB's ``WINDOWSTART``/``WINDOWEND``) are BIGINT
epoch milliseconds readable in the SELECT list and HAVING of a windowed query; a windowed query's
rows always carry them (appended when the SELECT list does not name them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from sql.bind.scope import BoundRelation, Scope, offset_of
from sql.compile.context import CompileContext
from sql.compile.expr import group_text
from sql.compile.select import SelectParts
from sql.errors import E_UNKNOWN_COLUMN, BindError, UnsupportedError, suggest
from sql.operators.aggregate import AggregateOperator
from sql.operators.window import TimePolicy, WindowedAggregate
from sql.runtime import Compiled, Env, Fn
from sql.temporal import to_millis
from sql.types import BIGINT
from sql.window import WindowSpec, format_duration, parse_duration_text

E_WINDOW_NEEDS_AGGREGATE = "a WINDOW clause needs GROUP BY or an aggregate function"
E_WINDOW_COLUMN_PLACE = "{name} is known per window only: it cannot be used in {clause}"
E_BAD_OPTION = "option {name}={value!r}: {reason}"
E_KEY_NOT_SELECTED = (
    "GROUP BY {expr} must also be in the SELECT list: it is part of the key of {name}'s rows"
)
E_PK_NOT_SELECTED = "PRIMARY KEY {name!r} is not a column of the query's output"
LATE_MODES = ("dlq", "update")

_START_NAMES = ("window_start", "windowstart")
_END_NAMES = ("window_end", "windowend")


@dataclass(slots=True)
class WindowBinding:
    spec: WindowSpec
    policy: TimePolicy
    time: tuple[Fn, Callable[[Env], Any], str]
    time_slot: int
    win_slot: int
    time_field: str | None


def time_policy(ctx: CompileContext, spec: WindowSpec, options: Mapping[str, str]) -> TimePolicy:
    """Options (stream declaration, overridden by the sink's WITH): out_of_orderness, late."""

    def duration(name: str) -> int:
        text = options.get(name)
        if text is None:
            return 0
        try:
            return parse_duration_text(text, name)
        except ValueError as exc:
            raise BindError(
                E_BAD_OPTION.format(name=name, value=text, reason=exc),
                sql=ctx.sql,
                offset=spec.offset,
            ) from exc

    late = options.get("late", "dlq").lower()
    if late not in LATE_MODES:
        raise BindError(
            E_BAD_OPTION.format(name="late", value=late, reason="expected 'dlq' or 'update'"),
            sql=ctx.sql,
            offset=spec.offset,
        )
    default_retention = spec.duration(spec.kind_entry.default_retention)
    retention = spec.retention_ms if spec.retention_ms is not None else default_retention
    return TimePolicy(duration("out_of_orderness"), late, retention)


def bind_window(
    ctx: CompileContext,
    scope: Scope,
    stream: BoundRelation,
    spec: WindowSpec,
    sink_options: Mapping[str, str],
) -> WindowBinding:
    """Event time and the window columns, bound before the SELECT list is compiled."""
    schema = stream.schema
    field = spec.time_field or schema.timestamp_field
    if field in ("_timestamp", "_event_time"):
        field = None
    if field is not None and schema.closed and field not in schema.columns:
        raise BindError(
            E_UNKNOWN_COLUMN.format(name=field),
            sql=ctx.sql,
            offset=spec.field_offset or spec.offset,
            suggestion=suggest(field, schema.columns),
        )
    vs, ms = stream.value_slot, stream.meta_slot
    raw: Callable[[Env], Any]
    if field is None:
        raw = lambda e: e[ms][1]  # noqa: E731 - the record timestamp
        source = "the record timestamp"
    else:
        name = field
        raw = lambda e: e[vs].get(name)  # noqa: E731
        source = f"field {field!r}"

    def time_fn(e: Env) -> int | None:
        v = raw(e)
        return v if type(v) is int else to_millis(v)

    time_slot, win_slot = ctx.slots.allocate(), ctx.slots.allocate()
    for names, i in ((_START_NAMES, 0), (_END_NAMES, 1)):
        fn: Fn = (lambda j: lambda e: e[win_slot][j])(i)
        for n in names:
            scope.aliases[n] = scope.aliases[n.upper()] = (fn, BIGINT)
    policy = time_policy(ctx, spec, {**schema.options, **sink_options})
    return WindowBinding(spec, policy, (time_fn, raw, source), time_slot, win_slot, field)


def add_window_outputs(select: exp.Select, parts: SelectParts, scope: Scope) -> None:
    """Append ``window_start``/``window_end`` to the outputs when the SELECT list lacks them."""
    selected = {_window_column(i) for i in select.expressions}
    for names in (_START_NAMES, _END_NAMES):
        if names[0] not in selected:
            fn, t = scope.aliases[names[0]]
            parts.outputs.append(Compiled(fn, t))
            parts.names.append(names[0])


def _window_column(item: exp.Expr) -> str | None:
    node = item.this if isinstance(item, exp.Alias) else item
    if isinstance(node, exp.Column) and not node.table:
        name = node.name.lower()
        if name in _START_NAMES:
            return _START_NAMES[0]
        if name in _END_NAMES:
            return _END_NAMES[0]
    return None


def make_aggregate(
    parts: SelectParts, outputs: list[Fn], names: list[str], mode: str, win: WindowBinding
) -> WindowedAggregate:
    assert parts.agg is not None
    op = win.spec.kind_entry.operator(
        parts.agg,
        outputs,
        names,
        mode,
        win.spec,
        win.policy,
        win.time,
        (win.time_slot, win.win_slot),
    )
    op.time_field = win.time_field
    return op


def explain_line(win: WindowBinding) -> str:
    p = win.policy
    late = "dead letter" if p.late == "dlq" else f"update for {format_duration(p.retention_ms)}"
    return (
        f"Window {win.spec.describe(win.time_field)}"
        f" [watermark = max event time - {format_duration(p.out_of_orderness_ms)};"
        f" late records: {late}]"
    )


def check_window_use(
    ctx: CompileContext, select: exp.Select, parts: SelectParts, spec: WindowSpec
) -> None:
    """A WINDOW needs aggregation; the window columns cannot feed the grouping itself."""
    if parts.agg is None or (not parts.agg.specs and not parts.agg.keys):
        raise UnsupportedError(E_WINDOW_NEEDS_AGGREGATE, sql=ctx.sql, offset=spec.offset)
    group = select.args.get("group")
    places: list[tuple[str, exp.Expr]] = [
        ("GROUP BY", g) for g in (group.expressions if group else [])
    ]
    for item in select.expressions:
        places += [(f"{a.key.upper()}()", a) for a in item.find_all(exp.AggFunc)]
    for clause, node in places:
        for col in node.find_all(exp.Column):
            if not col.table and col.name.lower() in (*_START_NAMES, *_END_NAMES):
                raise BindError(
                    E_WINDOW_COLUMN_PLACE.format(name=col.name, clause=clause),
                    sql=ctx.sql,
                    offset=offset_of(col),
                )


def key_columns(
    ctx: CompileContext,
    select: exp.Select,
    names: list[str],
    aggregate: AggregateOperator | None,
    sink: Any,
) -> tuple[str, ...]:
    """The output columns keying each emitted row (see ``CompiledQuery.key_columns``).

    A declared PRIMARY KEY wins; else an aggregate's GROUP BY outputs (+ ``window_start``). A
    GROUP BY expression missing from the SELECT list is an error for a CREATE ... AS sink (its
    rows could not be keyed); a bare SELECT then keys by nothing (the source key is reused).
    """
    if sink is not None and sink.primary_key:
        pk = sink.primary_key
        if pk not in names:
            raise BindError(
                E_PK_NOT_SELECTED.format(name=pk),
                sql=ctx.sql,
                offset=sink.offset,
                suggestion=suggest(pk, names),
            )
        return (pk,)
    if aggregate is None:
        return ()
    group = select.args.get("group")
    items = list(select.expressions)
    out: list[str] = []
    for g in group.expressions if group is not None else []:
        want = group_text(g)
        found = None
        for item, name in zip(items, names, strict=False):
            node = item.this if isinstance(item, exp.Alias) else item
            if group_text(node) == want or (
                isinstance(g, exp.Column) and not g.table and g.name == name
            ):
                found = name
                break
        if found is None:
            if sink is not None:
                raise BindError(
                    E_KEY_NOT_SELECTED.format(expr=g.sql(dialect="duckdb"), name=sink.name),
                    sql=ctx.sql,
                    offset=offset_of(g),
                )
            return ()
        out.append(found)
    if aggregate.is_windowed:
        start = next(
            (
                n
                for item, n in zip(items, names, strict=False)
                if _window_column(item) == "window_start"
            ),
            "window_start",
        )
        out.append(start)
    return tuple(out)
