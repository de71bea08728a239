"""One generated function per aggregate query: a fetched batch of one partition folded into the
live groups or windows, with its EMIT CHANGES rows encoded and appended.

The general path (:class:`agents.process.BatchProcessor` over :meth:`CompiledQuery.process`)
runs a record through a dict decoder, the query's closures (observe, WHERE, the aggregate's
``add``), the generated row function, then the output key and the encoder, one call each. Here
those steps are written out per query (the stateless generator's way, :mod:`sql.codegen.batch`):
the record decoded into the stream's msgspec struct, the co-partitioning check a dict lookup of
keys already checked, the event time and watermark, WHERE, the group key and the aggregate
arguments (:class:`~sql.codegen.expr.ExprGen` over the struct), the window found, COUNT and SUM
folded inline (a DECIMAL SUM in the accumulator's exact context, as ``Sum.add`` does: the group
or window and its accumulators are :mod:`sql.codegen.fold_state`'s), then the row, its key and
its bytes appended to the output (:mod:`sql.codegen.fold_output`). The fold runs with the exact
DECIMAL context as the thread's (``fold_in_context``), so DECIMAL ``+``, ``-`` and ``*`` are
Python's operators, as in the stateless batch function. A record key's
slot (:mod:`sql.codegen.fold_slots`) keeps what the previous record with that key found — the
key column's value that passed the check, the group or window, the output key's bytes — so the
next one in the same group and window looks up one dict by the key's bytes instead of three.

It folds into the operator's own live state (its groups, windows, dirty set, close heap), so
state, ``dirty_state`` and restore are the general path's. Anything unusual goes to ``slow(rec)``
— the general path for that one record — *before* anything but the watermark changed (the
watermark step is idempotent: the general path's observe of the same event time does nothing
more): a tombstone, a record the struct or the key check does not take, no integer event time, a
watermark that closes a window, a window not open yet or closed (late), an error in WHERE, the
key or the arguments. An error after the fold began (a SUM of a wrong type, an output the
encoder refuses) is the record's, appended to ``fails`` as the general path dead-letters it,
with the state changed as far as the general path would have changed it (the same statements in
the same order). ``tests/unit/agents/test_fold.py`` runs both paths over hypothesis data and
demands the same outputs, dead letters and state.

Generated for: GROUP BY without a window, and tumbling windows whose watermark is the query's
own stream time (co-partitioned tasks); no joins, no external tables, a declared stream whose
columns the struct decodes. Others raise :class:`Unsupported` and run the general path.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sql.codegen.batch_spec import Encoding, StructDecoding
from sql.codegen.expr import ExprGen, Unsupported
from sql.codegen.fold_output import FoldOutput
from sql.codegen.fold_slots import Slots
from sql.codegen.fold_state import FoldState
from sql.codegen.writer import Writer
from sql.operators.aggregate import StreamAggregate
from sql.operators.window_time import TimeWindowAggregate
from sql.query import CompiledQuery
from sql.types import DECIMAL_CONTEXT

#: ``fold(records, partition, fails, slow, append, sinks) -> outputs appended``.
FoldFn = Callable[[Any, int, list[Any], Callable[[Any], None], Callable[..., Any], Any], int]


class RecordSinks(Protocol):
    """Outputs appended by the C record builder of their partition's open batch, inline
    (:class:`sql.codegen.sink.RecordSink` per partition): ``open`` maps a partition to its
    ``[append, n, sink]``; ``part(key)`` is the partition of an output key; ``start(p)`` opens
    one; ``roll(entry, key, value)`` queues a full batch and appends the record to a new one.
    The caller closes them (before the general path appends, and after the batch). ``known``:
    partitions already computed by key (``part`` fills it), read first."""

    open: dict[int, list[Any]]
    known: dict[bytes, int]

    def part(self, key: bytes | None) -> int: ...

    def start(self, partition: int) -> list[Any]: ...

    def roll(self, entry: list[Any], key: bytes | None, value: bytes) -> None: ...


class _Slow(Exception):
    """Raised inside the generated code: this record takes the general path."""


@dataclass(frozen=True, slots=True)
class KeyGate:
    """The co-partitioning check (:mod:`agents.copartition`) of a record that decoded:
    ``checked(partition)`` maps a record key of that partition that passed to the value of
    ``column`` it passed with (True for GROUP BY ``_key``, ``column`` None); a key not there
    with an equal value is checked by ``passes(key, partition, value)``, which remembers it
    when it passes. A record that does not pass takes the general path (its dead letter)."""

    column: str | None
    checked: Callable[[int], dict[bytes, Any]]
    passes: Callable[[bytes | None, int, Any], bool]


@dataclass(slots=True)
class GeneratedFold:
    source: str
    fn: FoldFn


_MISS = object()


def fold_operator(query: CompiledQuery) -> StreamAggregate | TimeWindowAggregate:
    """The query's aggregate when the fold is generated for it, else :class:`Unsupported`."""
    plan = query.plan
    op = plan.aggregate
    shape = plan.shape
    if op is None or shape is None:
        raise Unsupported("not an aggregate")
    if shape.joins:
        raise Unsupported("aggregates and windows over joins run per record")
    if query.prefetcher is not None:
        raise Unsupported("aggregates and windows over external tables run per record")
    if type(op) is StreamAggregate:
        return op
    if type(op) is TimeWindowAggregate:
        if op.size != op.step:
            raise Unsupported("aggregates and windows: hopping windows run per record")
        if op.clock is not None:
            raise Unsupported(
                "aggregates and windows: a watermark over source partitions runs per record"
            )
        return op
    raise Unsupported(f"aggregates and windows: {type(op).__name__} runs per record")


def generate_fold(
    query: CompiledQuery,
    encoding: Encoding,
    key_of: Callable[[Any], Any] | None,
    key_columns: tuple[str, ...],
    decoding: StructDecoding | Callable[[bytes], Any],
    topic: str,
    gate: KeyGate | None,
) -> GeneratedFold:
    """The fold of ``query`` (see the module docstring). ``key_of``: the output key of a row,
    made of ``key_columns`` (raising the record's error; None: the record's key); ``encoding``:
    the rows' encoders; ``decoding``: the stream's typed struct decoding, or its dict decoder;
    ``topic``: where rows go; ``gate``: the co-partitioning check."""
    op = fold_operator(query)
    w = Writer()
    if isinstance(decoding, StructDecoding):
        struct = decoding
    else:  # rows as dicts: read with .get, their values' types not known
        struct = StructDecoding({}, ["v0 = decode(raw)"], {"decode": decoding}, dict)
    w.namespace.update(struct.namespace)
    body = _FoldBody(w, query, op, encoding, key_of, struct, topic, gate)
    body.key_columns = key_columns
    body.write()
    if w.uses_env:
        raise Unsupported("aggregates and windows: a closure reads the stream's row as a dict")
    source = w.source()
    exec(compile(source, f"<fold {query.stream_name}>", "exec"), w.namespace)
    fn: FoldFn = w.namespace["fold_in_context" if body.gen.used_context else "fold"]
    return GeneratedFold(source, fn)


class _FoldBody(FoldOutput, FoldState):
    def __init__(
        self,
        w: Writer,
        query: CompiledQuery,
        op: StreamAggregate | TimeWindowAggregate,
        enc: Encoding,
        key_of: Callable[[Any], Any] | None,
        struct: StructDecoding,
        topic: str,
        gate: KeyGate | None,
    ) -> None:
        self.w, self.query, self.op, self.enc = w, query, op, enc
        self.key_of, self.struct, self.topic, self.gate = key_of, struct, topic, gate
        stream = query.plan.stream
        self.vs = stream.value_slot
        self.dicts = struct.row_type is dict
        attrs = {} if self.dicts else {self.vs: struct.attrs}
        types = {} if self.dicts else {self.vs: struct.types}
        self.gen = ExprGen(w, query.context, {self.vs: "v0"}, attrs, types)
        # DECIMAL +, - and * as Python's operators: the fold runs under the exact context
        # (_in_context), as the stateless batch function does (sql.codegen.batch).
        self.gen.context_ops = True
        self.windowed = isinstance(op, TimeWindowAggregate)
        self.key_columns: tuple[str, ...] = ()
        self.decimal_sums: dict[int, bool] = {}
        self.slotted = gate is not None

    def attr(self, column: str) -> str:
        if self.dicts:
            # A record that is not an object has no .get: it raises, so the general path runs it.
            return f"v0.get({column!r})"
        name = self.struct.attrs.get(column)
        if name is None:
            raise Unsupported(f"column {column!r} is not one the struct decodes")
        return f"v0.{name}"

    def write(self) -> None:
        w = self.w
        ns = w.namespace
        ns.update({"SLOW": _Slow(), "MISS": _MISS, "ENV": self.query.env, "NO_HEADERS": []})
        #: The EMIT CHANGES row of the record (appended by the row function, taken at once).
        self.rows = w.bind([], "ROWS")
        with w.block("def fold(records, partition, fails, slow, append, sinks):"):
            w.line("n_out = 0")
            with w.block("if sinks is not None:"):
                w.line("opened, part, open_sink = sinks.open, sinks.part, sinks.start")
                w.line("known = sinks.known")
            if self.gate is not None:
                w.line(f"checked = {w.bind(self.gate.checked, 'CHECKED')}(partition)")
            if self.slotted:
                # Fresh slots when the output's partitions changed (a new cache of them): a
                # slot keeps its output key's partition.
                known = "None if sinks is None else sinks.known"
                w.line(f"slots = {w.bind(Slots(), 'SLOTS')}(partition, {known})")
            with w.block("for rec in records:"):
                w.line("raw = rec.value")
                with w.block("if raw is None:"):
                    w.line("slow(rec)")
                    w.line("continue")
                with w.block("try:"):
                    for line in self.struct.lines:
                        w.line(line)
                    self._gate()
                    if self.windowed:
                        self._time()
                    self._where()
                    keys, args = self._key_and_args()
                    self._find(keys)
                with w.block("except Exception:"):
                    w.line("slow(rec)")
                    w.line("continue")
                self._create()
                with w.block("try:"):
                    self._fold(args)
                    self._emit()
                with w.block("except Exception as err:"):
                    w.line(f"del {self.rows}[:]")
                    w.line("fails.append((rec, err))")
            w.line("return n_out")
        if self.gen.used_context:
            self._in_context()

    def _in_context(self) -> None:
        """``fold`` with the exact DECIMAL context as the thread's, the caller's put back after
        (the fold runs synchronously: no other code of this thread runs meanwhile) and around
        ``slow``: the general path runs in the caller's context, as without the fold."""
        w = self.w
        get, put = (
            w.bind(decimal.getcontext, "getcontext"),
            w.bind(decimal.setcontext, "setcontext"),
        )
        ctx = w.bind(DECIMAL_CONTEXT, "DECIMAL_CONTEXT")
        with w.block("def fold_in_context(records, partition, fails, slow, append, sinks):"):
            w.line(f"prior = {get}()")
            with w.block("def slow_in_prior(rec):"):
                w.line(f"{put}(prior)")
                with w.block("try:"):
                    w.line("slow(rec)")
                with w.block("finally:"):
                    w.line(f"{put}({ctx})")
            w.line(f"{put}({ctx})")
            with w.block("try:"):
                w.line("return fold(records, partition, fails, slow_in_prior, append, sinks)")
            with w.block("finally:"):
                w.line(f"{put}(prior)")

    # -- before any state changes --------------------------------------------------------------
    def _gate(self) -> None:
        gate = self.gate
        if gate is None:
            return
        w = self.w
        passes = w.bind(gate.passes, "PASSES")
        value = "True" if gate.column is None else self.attr(gate.column)
        w.line(f"kc = {value}")
        if not self.slotted:
            cond = f"checked.get(rec.key, MISS) != kc and not {passes}(rec.key, partition, kc)"
            with w.block(f"if {cond}:"):
                w.line("raise SLOW")
            return
        # The record key's slot (sql.codegen.fold_slots): its key column's value is one that passed.
        w.line("rk = rec.key")
        w.line("sl = slots.get(rk)")
        with w.block("if sl is None or sl[0] != kc:"):
            with w.block(f"if checked.get(rk, MISS) != kc and not {passes}(rk, partition, kc):"):
                w.line("raise SLOW")
            w.line("sl = None")

    def _time(self) -> None:
        op = self.op
        assert isinstance(op, TimeWindowAggregate)
        w = self.w
        field = op.time_field
        w.line(f"t = {'rec.timestamp' if field is None else self.attr(field)}")
        with w.block("if type(t) is not int:"):
            w.line("raise SLOW")  # no event time (or not an integer): the general path decides
        op_name, heap = w.bind(op, "OP"), w.bind(op.heap, "HEAP")
        w.line(f"mt = {op_name}.max_time")
        with w.block("if mt is None or t > mt:"):
            w.line(f"wm = t - {int(op.ooo)}")
            with w.block(f"if {heap} and {heap}[0][0] <= wm:"):
                w.line("raise SLOW")  # it closes windows: the general path's _advance
            w.line(f"{op_name}.max_time = t")
            w.line(f"{op_name}.watermark = wm")
            w.line(f"{op_name}.time_dirty = True")
        with w.block("else:"):
            w.line(f"wm = {op_name}.watermark")

    def _where(self) -> None:
        shape = self.query.plan.shape
        assert shape is not None
        terms = [*shape.pushed, *shape.late]
        for c in terms:
            v = self.gen.residual(c.fn)
            with self.w.block(f"if {v} is not True:"):
                # FALSE or UNKNOWN: the record is dropped (an AND of terms: the closure's
                # all-TRUE test; a term raising raises in the general path too).
                self.w.line("continue")

    def _key_and_args(self) -> tuple[list[str], list[str | None]]:
        agg = self.op.agg
        keys = [self.gen.residual(f) for f in agg.keys]
        args: list[str | None] = []
        for s in agg.specs:
            args.append(None if s.arg is None else self.gen.residual(s.arg))
        return keys, args
