"""The public compile API: ``compile_query(sql, catalog) -> CompiledQuery``.

A :class:`CompiledQuery` is built once and then fed one stream record at a time; it holds the
maintained structures (subscribed to the tables' change feeds) until :meth:`CompiledQuery.close`.

For the agents that drive it: rows go to the sink keyed by :attr:`CompiledQuery.key_columns`; a
:class:`~sql.operators.aggregate.Retraction` row withdraws an earlier row with the same key; an
aggregate's state is persisted with :meth:`CompiledQuery.dirty_state` (after each batch, in the
same write as the source offsets) and loaded with :meth:`CompiledQuery.restore_state`. A stateful
query's records are spread over workers by :meth:`CompiledQuery.partition_key` (its group key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from core.errors import ConfigError
from sql.catalog import Catalog
from sql.compile.aggregate_key import GroupKey, compile_group_key
from sql.compile.context import CompileContext
from sql.compile.partitioning import Partitioning, partitioning
from sql.compile.prefetch import prefetcher
from sql.compile.query import StreamPlan, compile_stream_query
from sql.declarations import apply_declarations
from sql.dialect import Declaration
from sql.errors import (
    SqlCompileError,
    SqlRuntimeError,
    UnsupportedError,
)
from sql.operators.prefetch import Prefetcher
from sql.parse import Script, parse_script, recursion_headroom
from sql.plan.full_scan import full_scan
from sql.plan.planner import RULES, Rule
from sql.types import SqlType
from tables import Table

Row = dict[str, Any]
#: ``(value, key, timestamp, partition, offset) -> rows``: :meth:`CompiledQuery.record_fn`.
RecordFn = Callable[[Mapping[str, Any], Any, "int | None", int, int], list[Row]]


@dataclass(frozen=True, slots=True)
class Sink:
    """Where ``CREATE STREAM|TABLE name WITH (topic=...) AS SELECT`` sends its rows."""

    kind: str  # "stream" | "table"
    name: str
    topic: str
    options: Mapping[str, str] = field(default_factory=dict)


class CompiledQuery:
    """A compiled streaming query. Not thread-safe: one instance per processing loop."""

    def __init__(self, script: Script, ctx: CompileContext, sink: Sink | None) -> None:
        plan = compile_stream_query(
            ctx,
            script.require_query(),
            script.emit,
            script.emit_offset,
            window=script.window,
            sink=script.sink,
        )
        self.sql = script.sql
        self.sink = sink
        self._script = script
        #: "changes" | "final".
        self.emit = plan.emit
        self.output_columns: tuple[str, ...] = tuple(plan.names)
        #: The SQL type of each output column (``output_columns`` order).
        self.output_types: tuple[SqlType, ...] = tuple(plan.types)
        #: Output columns forming each row's sink key: the declared PRIMARY KEY, else the GROUP BY
        #: outputs (+ ``window_start`` when windowed); empty: reuse the source record's key.
        self.key_columns: tuple[str, ...] = plan.key_columns
        self.stream_name = plan.stream.schema.name
        self._plan = plan
        self._ctx = ctx
        self._env: list[Any] = [None] * ctx.slots.count
        self._vs, self._ms = plan.stream.value_slot, plan.stream.meta_slot
        self._ts_field = plan.stream.schema.timestamp_field
        self._run = plan.run
        self._observe = plan.observe
        self._agg = plan.aggregate
        self._record = self._record_fn()
        self._prefetcher = prefetcher(ctx, self._vs, self._ms)

    @property
    def prefetcher(self) -> Prefetcher | None:
        """Fetches a batch's probes of external tables ahead (None: the query reads none)."""
        return self._prefetcher

    @property
    def plan(self) -> StreamPlan:
        """The compiled plan (its ``shape``: the steps the code generator fuses)."""
        return self._plan

    @property
    def context(self) -> CompileContext:
        """The compile context: env slots, the compiled expressions by node."""
        return self._ctx

    @property
    def env(self) -> list[Any]:
        """The env list this query's closures read (one per instance)."""
        return self._env

    @property
    def timestamp_field(self) -> str | None:
        """The stream column giving a record's event time (None: the record timestamp)."""
        return self._ts_field

    @property
    def is_windowed(self) -> bool:
        return self._agg is not None and self._agg.is_windowed

    @property
    def watermark(self) -> int | None:
        """Windowed: max event time seen minus the allowed out-of-orderness (epoch ms)."""
        return None if self._agg is None else self._agg.watermark

    def set_clock(self, clock: Callable[[int, int, int], int | None]) -> None:
        """Windowed: the watermark follows ``clock(partition, offset, event_time)`` — the event
        time every source partition reached, given a record's partition, offset and event time
        (None: unknown yet) — instead of the largest event time seen (:mod:`agents.watermarks`)."""
        agg, ms = self._agg, self._ms
        if agg is None or not agg.is_windowed:
            return
        agg.clock = lambda env, t: clock(env[ms][3], env[ms][4], t)  # type: ignore[attr-defined]

    def event_time(self, value: Mapping[str, Any], timestamp: int | None) -> int | None:
        """Windowed: a record's event time (epoch ms), as its window reads it; None when it has
        none or the query is not windowed. Does not touch the query's state."""
        agg = self._agg
        if agg is None or not agg.is_windowed:
            return None
        env, ms, ts_field = self._env, self._ms, self._ts_field
        env[self._vs] = value
        event_time = value.get(ts_field, timestamp) if ts_field else timestamp
        env[ms] = (None, timestamp, event_time, -1, -1)
        try:
            t = agg.time_fn(env)  # type: ignore[attr-defined]
        except Exception:  # an unusable time is the query's error to report, not ours
            return None
        return t if type(t) is int else None

    @property
    def late_drops(self) -> int:
        """Windowed: updates of closed windows skipped for records late for only some of their
        (hopping) windows; a record late for all of them raises LateRecordError instead."""
        return int(getattr(self._agg, "late_drops", 0))

    def process(
        self,
        value: Mapping[str, Any],
        *,
        key: Any = None,
        timestamp: int | None = None,
        partition: int = -1,
        offset: int = -1,
    ) -> list[Row]:
        """Rows emitted for one stream record (``value``: the decoded JSON object).

        Windowed queries: first the rows of windows this record's event time closed (EMIT FINAL),
        then the record's own updates (EMIT CHANGES; a late update with ``late='update'``).

        Raises a :class:`~sql.errors.SqlRuntimeError` subclass for an error of this record (its
        ``record`` field holds the value; :class:`~sql.errors.LateRecordError` for a late one);
        the query stays usable for the next record. The error's ``rows`` still have to be
        emitted: windows the record's event time closed before it failed.
        """
        return self._record(value, key, timestamp, partition, offset)

    def record_fn(self) -> RecordFn:
        """:meth:`process` with positional arguments ``(value, key, timestamp, partition,
        offset)``: what a driver calls per record (keywords cost a stateless query ~5%). ``key``
        may be the message key's bytes: ``_key`` reads decode it (UTF-8, invalid bytes replaced)."""
        return self._record

    def _record_fn(self) -> RecordFn:
        env, vs, ms, run, observe = self._env, self._vs, self._ms, self._run, self._observe
        ts_field = self._ts_field
        if observe is None and not ts_field:

            def plain(
                value: Mapping[str, Any],
                key: Any,
                timestamp: int | None,
                partition: int,
                offset: int,
            ) -> list[Row]:
                env[vs] = value
                env[ms] = (key, timestamp, timestamp, partition, offset)
                out: list[Row] = []
                try:
                    run(env, out)
                except SqlRuntimeError as err:
                    err.record = value
                    err.rows = []
                    err.fields.update(record=value, key=key, partition=partition, offset=offset)
                    raise
                return out

            return plain

        def record(
            value: Mapping[str, Any], key: Any, timestamp: int | None, partition: int, offset: int
        ) -> list[Row]:
            env[vs] = value
            event_time = value.get(ts_field, timestamp) if ts_field else timestamp
            env[ms] = (key, timestamp, event_time, partition, offset)
            out: list[Row] = []
            if observe is not None:
                observe(env, out)
            closed = len(out)
            try:
                run(env, out)
            except SqlRuntimeError as err:
                err.record = value
                err.rows = out[:closed]
                err.fields.update(record=value, key=key, partition=partition, offset=offset)
                raise
            return out

        return record

    def finish(self) -> list[Row]:
        """End of input: EMIT FINAL rows of every open group or window (in close order, windows
        then dropped); EMIT CHANGES: nothing."""
        agg = self._agg
        return [] if agg is None else agg.finish(self._env)

    def dirty_state(self) -> dict[str, Any | None]:
        """Aggregate state changed since the previous call: stable id → JSON-safe state, or None
        for an entry to delete (a closed window, a merged session), plus ``"time"`` (max event
        time and watermark) for windowed queries. ``{}`` for stateless queries."""
        return {} if self._agg is None else self._agg.dirty_state()

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        """Load entries from :meth:`dirty_state` (merged per id) into a freshly compiled query.

        Raises :class:`~sql.errors.StateError` for entries that do not fit this query.
        """
        if self._agg is not None:
            self._agg.restore_state(items)

    def partition_key(self) -> GroupKey:
        """The group key of a stream record from the record alone (the GROUP BY expressions;
        ``()`` for an aggregate without GROUP BY), to partition records by it before they reach
        :meth:`process` on the worker that owns the group. A separate evaluator: calling it does
        not touch this query's state.

        Raises :class:`~sql.errors.UnsupportedError` when the key is not a function of the record
        (it reads a joined table or holds a subquery) or the query does not aggregate.
        Compiled with this query's ``typed_streams``: it reads records decoded the same way.
        """
        return compile_group_key(
            self.sql,
            self._ctx.catalog,
            self._script.require_query(),
            typed_streams=self._ctx.typed_streams,
        )

    def partitioning(self) -> Partitioning | None:
        """How a worker brings each group's records to one task (:mod:`sql.compile.partitioning`):
        co-partitioned (the GROUP BY holds the stream's record key), repartitioned, or every
        partition read by one query; None for a query that keeps no state."""
        if self._agg is None:
            return None
        select = self._script.require_query()
        group = select.args.get("group")
        try:
            self.partition_key()
            whole = None
        except UnsupportedError as exc:
            whole = exc.reason
        shadowed = {
            e.alias.lower()
            for e in select.expressions
            if isinstance(e, exp.Alias)
            and not (isinstance(e.this, exp.Column) and e.this.name.lower() == e.alias.lower())
        }
        stream = self._plan.stream
        return partitioning(
            list(group.expressions) if group is not None else [],
            stream.schema.name,
            stream.alias,
            stream.schema.key_field,
            whole=whole,
            shadowed=shadowed,
        )

    def explain(self) -> str:
        # Operators top-down: the output first, the stream scan last (innermost).
        lines = ["  " * d + text for d, text in enumerate(reversed(self._plan.lines))]
        subs = ["  " * d + text for d, text in self._ctx.explain]
        if self.sink is not None:
            # A continuous query: how a worker spreads its state (stateful ones only).
            parts = self.partitioning()
            if parts is not None:
                lines.insert(0, parts.explain())
            lines.insert(
                0,
                f"Sink {self.sink.kind} {self.sink.name} (topic={self.sink.topic})"
                f" EMIT {self.emit.upper()}",
            )
        return "\n".join(lines + subs)

    def close(self) -> None:
        """Unsubscribe every maintained structure from its table."""
        for closer in self._ctx.closers:
            closer()
        self._ctx.closers.clear()


#: The planner's rule names, cheapest first.
PLANNER_RULES = tuple(r.__name__ for r in RULES)


def _rules(names: Sequence[str] | None) -> tuple[Rule, ...]:
    if names is None:
        return RULES
    unknown = sorted(set(names) - set(PLANNER_RULES))
    if unknown:
        raise ConfigError(
            f"unknown planner rule(s) {', '.join(unknown)}; known: {', '.join(PLANNER_RULES)}",
            rules=list(names),
        )
    chosen = tuple(r for r in RULES if r.__name__ in names)
    return chosen if full_scan in chosen else (*chosen, full_scan)


def sink_of(decl: Declaration | None) -> Sink | None:
    """The sink a CREATE STREAM ... AS / INSERT INTO declaration writes to (None: none)."""
    if decl is None:
        return None
    return Sink(decl.kind, decl.name, decl.options.get("topic", decl.name), dict(decl.options))


def compile_query(
    sql: str,
    catalog: Catalog | Mapping[str, Table],
    *,
    typed_streams: bool = False,
    rules: Sequence[str] | None = None,
) -> CompiledQuery:
    """Parse, bind, plan and compile ``sql`` (declarations first, then one query).

    ``typed_streams``: the caller promises every declared stream column arrives already of its
    SQL type (DECIMAL at its scale) or NULL, as :func:`agents.codec.make_decoder` gives them;
    reads then skip the per-record conversion. Values of other types are then read as they are.
    ``rules``: the planner rules allowed, by name (:data:`PLANNER_RULES`; ``full_scan`` always
    applies), e.g. ``("full_scan",)`` for the naive per-record plan benches compare against.
    """
    cat = catalog if isinstance(catalog, Catalog) else Catalog.of(catalog)
    with recursion_headroom(sql):
        script = parse_script(sql)
        try:
            apply_declarations(script, cat)
            ctx = CompileContext(sql, cat, typed_streams=typed_streams, rules=_rules(rules))
            return CompiledQuery(script, ctx, sink_of(script.sink))
        except SqlCompileError as exc:
            located = exc.located(sql, script.query_offset)
            if located is exc:
                raise
            raise located from exc
