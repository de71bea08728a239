"""The GROUP BY key of a stream record computed from the record alone: what a repartition stage
needs to send every record of one group to the same partition (ksqlDB, Kafka Streams).

The GROUP BY expressions are compiled a second time, in a scope bound exactly like the query's
(the stream, then the joined tables, so names resolve the same way), and every slot they read is
tracked: a key that reads a joined table's row, or holds a subquery, depends on more than the
record and cannot be computed before the aggregation stage — :class:`UnsupportedError` says which
expression and why. A windowed query's key is its GROUP BY key: every window of a group lives in
the group's partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlglot import exp

from sql.bind.scope import Scope, offset_of
from sql.catalog import Catalog
from sql.compile.aggregate import find_aggregates
from sql.compile.context import CompileContext
from sql.compile.expr import ExprCompiler
from sql.compile.subquery import resolve_table
from sql.dialect import from_of
from sql.errors import E_UNSUPPORTED, UnsupportedError
from sql.runtime import Fn

E_READS_TABLE = "repartitioning by GROUP BY {expr} (it reads table {table!r}, not only the stream)"
E_SUBQUERY_KEY = "repartitioning by GROUP BY {expr} (it holds a subquery)"
E_NO_AGGREGATE = "repartitioning a query without GROUP BY or aggregates"


class GroupKey:
    """``key(value, key=..., timestamp=..., partition=..., offset=...)``: the record's group key
    as a tuple of SQL values, as the query's aggregate computes it. Raises the query's
    :class:`~sql.errors.SqlRuntimeError` for a key that fails (a bad CAST, a division by zero).
    Not thread-safe (one evaluation env)."""

    __slots__ = ("_env", "_fns", "_ms", "_ts_field", "_vs", "expressions")

    def __init__(
        self, fns: list[Fn], slots: int, value_slot: int, meta_slot: int, ts_field: str | None
    ) -> None:
        self._fns = tuple(fns)
        self._env: list[Any] = [None] * slots
        self._vs, self._ms = value_slot, meta_slot
        self._ts_field = ts_field
        #: The GROUP BY expressions as SQL text (for logs).
        self.expressions: tuple[str, ...] = ()

    def __call__(
        self,
        value: Mapping[str, Any],
        *,
        key: Any = None,
        timestamp: int | None = None,
        partition: int = -1,
        offset: int = -1,
    ) -> tuple[Any, ...]:
        env = self._env
        env[self._vs] = value
        ts_field = self._ts_field
        event_time = value.get(ts_field, timestamp) if ts_field else timestamp
        env[self._ms] = (key, timestamp, event_time, partition, offset)
        return tuple([f(env) for f in self._fns])


def _has_subquery(node: exp.Expr) -> bool:
    return any(isinstance(n, (exp.Subquery, exp.Exists, exp.Select)) for n in node.walk())


def compile_group_key(
    sql: str, catalog: Catalog, select: exp.Select, *, typed_streams: bool = False
) -> GroupKey:
    """The group key of ``select`` (the query's SELECT, already compiled once against
    ``catalog``) as a function of the stream record; raises :class:`UnsupportedError` when the
    key needs more than the record. ``typed_streams`` as for :func:`sql.query.compile_query`."""
    group = select.args.get("group")
    exprs: list[exp.Expr] = list(group.expressions) if group is not None else []
    if not exprs and not _has_aggregate(select):
        raise UnsupportedError(E_UNSUPPORTED.format(what=E_NO_AGGREGATE), sql=sql, offset=None)
    ctx = CompileContext(sql, catalog, typed_streams=typed_streams)
    scope = Scope(sql, ctx.slots)
    from_ = from_of(select)
    src = from_.this if from_ is not None else None
    schema = catalog.schema(src.name) if isinstance(src, exp.Table) else None
    # The query compiled: FROM names a stream.
    assert src is not None
    assert schema is not None
    stream = scope.add(src.alias_or_name, schema, None)
    for j in select.args.get("joins") or []:
        node, table = resolve_table(ctx, j.this, want="join")
        joined = catalog.schema(node.name)
        assert joined is not None
        scope.add(node.alias_or_name, joined, table)
    own = {stream.value_slot, stream.meta_slot}
    compiler = ExprCompiler(ctx, scope, "GROUP BY")
    fns: list[Fn] = []
    for g in exprs:
        text = g.sql(dialect="duckdb")
        if _has_subquery(g):
            what = E_SUBQUERY_KEY.format(expr=text)
            raise UnsupportedError(E_UNSUPPORTED.format(what=what), sql=sql, offset=offset_of(g))
        with scope.track() as read:
            fns.append(compiler.compile(g).fn)
        others = [r.alias for r in scope.relations if r is not stream and r.value_slot in read]
        if read - own:
            what = E_READS_TABLE.format(expr=text, table=others[0] if others else "?")
            raise UnsupportedError(E_UNSUPPORTED.format(what=what), sql=sql, offset=offset_of(g))
    key = GroupKey(
        fns, ctx.slots.count, stream.value_slot, stream.meta_slot, schema.timestamp_field
    )
    key.expressions = tuple(g.sql(dialect="duckdb") for g in exprs)
    return key


def _has_aggregate(select: exp.Select) -> bool:
    having = select.args.get("having")
    return bool(find_aggregates([*select.expressions, *([having.this] if having else [])]))
