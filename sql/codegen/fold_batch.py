"""One generated function per aggregate query: a fetched batch of one partition folded into the
live groups or windows, with its EMIT CHANGES rows encoded and appended.

The general path (:class:`agents.process.BatchProcessor` over :meth:`CompiledQuery.process`)
runs a record through a dict decoder, the query's closures (observe, WHERE, the aggregate's
``add``), the generated row function, then the output key and the encoder, one call each. Here
those steps are written out per query (the stateless generator's way, :mod:`sql.codegen.batch`):
the record decoded into the stream's msgspec struct, the co-partitioning check a dict lookup of
keys already checked, the event time and watermark, WHERE, the group key and the aggregate
arguments (:class:`~sql.codegen.expr.ExprGen` over the struct), the window found, COUNT and SUM
folded inline (a DECIMAL SUM in the accumulator's exact context, as ``Sum.add`` does), then the
row (:mod:`sql.codegen.fold`), its key and its bytes appended to the output. A record key's
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

import contextlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sql.codegen.batch_spec import Encoding, StructDecoding
from sql.codegen.expr import ExprGen, Unsupported
from sql.codegen.fold_output import FoldOutput
from sql.codegen.fold_slots import Slots
from sql.codegen.writer import Writer
from sql.operators.aggregate import StreamAggregate
from sql.operators.window import Win
from sql.operators.window_time import TimeWindowAggregate
from sql.query import CompiledQuery
from sql.runtime.accumulators import Count, CountStar, Sum
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
    fn: FoldFn = w.namespace["fold"]
    return GeneratedFold(source, fn)


class _FoldBody(FoldOutput):
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

    def _key_is_gate(self, keys: list[str]) -> bool:
        """Whether the group key is the gate column's value alone, of a type whose equal values
        are the same value (BIGINT, VARCHAR): then a slot whose value equals the record's
        (``sl[0] == kc``, checked by the gate) holds this record's group key already."""
        gate = self.gate
        if gate is None or gate.column is None or len(keys) != 1 or self.dicts:
            return False
        # The key's code is the column's plain read (``c = v0.<attr>``, no conversion: the
        # struct's values are of the column's type), the gate's ``kc`` read the same way.
        read = self.w.known(("read", self.vs, gate.column))
        return read == keys[0] and self.gen.exact.get(read) in (int, str)

    def _find(self, keys: list[str]) -> None:
        w = self.w
        gk = f"({keys[0]},)" if len(keys) == 1 else f"({', '.join(keys)})"
        slotted = self.slotted
        same = slotted and self._key_is_gate(keys)
        if not self.windowed:
            if same:
                # The slot's group (its key column's value equals this record's).
                with w.block("if sl is not None:"):
                    w.line("gk = sl[1]")
                    w.line("accs = sl[2]")
                with w.block("else:"):
                    w.line(f"gk = {gk}")
                    w.line("accs = None")
                return
            w.line(f"gk = {gk}")
            if slotted:
                # The slot's group when it is this one (an equal key: the dict's answer too).
                with w.block("if sl is not None and sl[1] == gk:"):
                    w.line("accs = sl[2]")
                with w.block("else:"):
                    w.line("accs = sl = None")
            return
        op = self.op
        assert isinstance(op, TimeWindowAggregate)
        size, due = int(op.size), int(op.size + op.grace)
        windows = w.bind(op.windows, "WINDOWS")
        w.line(f"start = t - t % {size}")
        if same:
            # The slot's window when it is this one (the slot's group is this record's); a
            # window in a slot may have closed since (closed is checked below; a tumbling
            # window is dropped only once closed).
            with w.block("if sl is not None and sl[2] == start:"):
                w.line("gk = sl[1]")
                w.line("win = sl[3]")
            with w.block("else:"):
                w.line(f"gk = {gk}")
                w.line(f"win = {windows}.get((gk, start))")
                w.line("sl = None")
        elif slotted:
            w.line(f"gk = {gk}")
            # The slot's window when it is this one; a window in a slot may have closed since
            # (closed is checked below; a tumbling window is dropped only once closed).
            with w.block("if sl is not None and sl[2] == start and sl[1] == gk:"):
                w.line("win = sl[3]")
            with w.block("else:"):
                w.line(f"win = {windows}.get((gk, start))")
                w.line("sl = None")
        else:
            w.line(f"gk = {gk}")
            w.line(f"win = {windows}.get((gk, start))")
        # Open: the watermark before its close (end + grace); else closed, late or (with
        # late='update') kept for late records: the general path.
        with w.block(f"if wm >= start + {due} or (win is not None and win.closed):"):
            w.line("raise SLOW")

    # -- the fold --------------------------------------------------------------------------------
    def _create(self) -> None:
        w = self.w
        op = self.op
        # AggregateOperator.new_accumulators written out: each call's factory called in turn.
        new = ", ".join(f"{w.bind(s.factory, 'F')}()" for s in op.agg.specs)
        slotted = self.slotted
        if not self.windowed:
            groups = w.bind(op.groups, "GROUPS")  # type: ignore[union-attr]
            with w.block("if accs is None:") if slotted else contextlib.nullcontext():
                w.line(f"accs = {groups}.get(gk)")
                with w.block("if accs is None:"):
                    w.line(f"accs = {groups}[gk] = [{new}]")
                if slotted:
                    w.line("slots[rk] = sl = [kc, gk, accs, None, None]")
            return
        assert isinstance(op, TimeWindowAggregate)
        windows, make = w.bind(op.windows, "WINDOWS"), w.bind(Win, "Win")
        name, heap, push = w.bind(op, "OP"), w.bind(op.heap, "HEAP"), w.bind(heapq.heappush, "PUSH")
        size = int(op.size)
        with w.block("if win is None:"):
            # TimeWindowAggregate.assign's new window, open (the watermark is before its close),
            # with next_seq and schedule(win, False) written out: it closes at end + grace, its
            # one entry in the close heap pushed.
            made = f"{make}(gk, start, start + {size}, [{new}], {name}.seq)"
            w.line(f"win = {windows}[(gk, start)] = {made}")
            w.line(f"{name}.seq += 1")
            w.line(f"win.due = win.queued = due = start + {size + int(op.grace)}")
            w.line(f"{name}.pushes += 1")
            w.line(f"{push}({heap}, (due, win.seq, {name}.pushes, win))")
        if slotted:
            with w.block("if sl is None:"):
                w.line("slots[rk] = sl = [kc, gk, start, win, None, None]")
        w.line("accs = win.accs")

    def _fold(self, args: list[str | None]) -> None:
        w = self.w
        add = w.bind(DECIMAL_CONTEXT.add, "ADD")
        for i, (spec, arg) in enumerate(zip(self.op.agg.specs, args, strict=True)):
            kind = type(spec.factory())
            a = f"a{i}"
            w.line(f"{a} = accs[{i}]")
            if arg is None or kind is CountStar:
                w.line(f"{a}.n += 1")
            elif kind is Count:
                with w.block(f"if {arg} is not None:"):
                    w.line(f"{a}.n += 1")
            elif issubclass(kind, Sum) and self.gen.exact.get(arg) is Decimal:
                self.decimal_sums[i] = True
                with w.block(f"if {arg} is not None:"):  # Sum._apply of a Decimal
                    w.line(f"{a}.exact = {add}({a}.exact, {arg})")
                    w.line(f"{a}.decimals += 1")
                    w.line(f"{a}.n += 1")
            elif issubclass(kind, Sum) and self.gen.exact.get(arg) is int:
                with w.block(f"if {arg} is not None:"):
                    w.line(f"{a}.ints += {arg}")
                    w.line(f"{a}.n += 1")
            else:
                w.line(f"{a}.add({arg})")
        dirty = w.bind(self.op.dirty, "DIRTY")
        w.line(f"{dirty}.add({'win' if self.windowed else 'gk'})")
