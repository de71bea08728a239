"""One generated function per stateless query: a fetched batch of one partition in, outputs
appended and dead letters collected.

The function fuses what the closures do per record (:mod:`sql.compile.query`: WHERE terms
before the joins, key-lookup joins, WHERE terms after them, the projection) with the caller's
decode and encode. The first join's keys are looked up once per batch: a first pass decodes and
filters every record and collects the distinct keys, one ``get_many`` fetches their rows (a
multi-get on a RocksDB table), a second pass does the rest. Each record runs inside its own
``try``: an error of one record (a decode error, a cast, a division by zero, an encoding
failure) is appended to ``fails`` with the record, as the closures' driver dead-letters it.
The joins are :mod:`sql.codegen.batch_join`; the output half (the row, its key and bytes,
appended to the sink) is :mod:`sql.codegen.batch_output`.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any, NamedTuple

from sql.codegen.batch_join import JoinWriter, batchable, key_compiled
from sql.codegen.batch_output import write_output
from sql.codegen.batch_spec import BatchFn, Encoding, Generated, StructDecoding
from sql.codegen.expr import ExprGen, Unsupported
from sql.codegen.projection import ProjectionMismatch, ProjectionPlan, value_site
from sql.codegen.writer import Writer
from sql.operators.sources import KeyLookup
from sql.plan.shape import Conjunct, JoinStep, StreamShape
from sql.query import CompiledQuery
from sql.types import DECIMAL_CONTEXT

_EMPTY: dict[str, Any] = {}
#: The headers of every output record (a list: the C record builder wants one).
_NO_HEADERS: list[Any] = []


def shape_of(query: CompiledQuery) -> StreamShape:
    """The query's steps, or :class:`Unsupported` naming what the generator leaves to closures."""
    plan = query.plan
    shape = plan.shape
    if shape is None or plan.aggregate is not None:
        raise Unsupported("aggregates and windows (GROUP BY, WINDOW) run as closures")
    if plan.observe is not None:
        raise Unsupported("windows run as closures")
    if shape.distinct:
        raise Unsupported("DISTINCT on a stream (rows seen so far) runs as closures")
    if shape.limit is not None:
        raise Unsupported("LIMIT on a stream runs as closures")
    if query.prefetcher is not None:
        raise Unsupported("external tables (probes fetched ahead per batch) run as closures")
    for j in shape.joins:
        if not isinstance(j.source, KeyLookup):
            raise Unsupported(
                f"the join of {j.relation.schema.name} is not a key lookup (runs as closures)"
            )
    return shape


def generate(
    query: CompiledQuery,
    decode: Callable[[bytes], Any],
    encoding: Encoding,
    key_of: Callable[[Any], Any] | None = None,
    *,
    batch_lookups: bool = False,
    struct: StructDecoding | None = None,
    project: bool = True,
) -> Generated:
    """The batch function of ``query``; raises :class:`Unsupported` for what it does not do.

    ``key_of``: the output key of a row (raising the caller's error when it cannot be made);
    None: the source record's key. ``batch_lookups``: the first join's distinct keys read with
    one ``get_many`` per batch (two passes) instead of one ``get`` per record. Off by default:
    over tables that answer from a row cache the two passes cost more than the calls they save
    (the batch's decoded records stay alive between the passes; docs/BENCHMARKS.md).
    ``struct``: the stream's typed decoding, used where the code allows it (else ``decode``).
    ``project``: lookups that read a column or two of their row probe a map of those values
    kept from the table's change feed (:mod:`sql.codegen.projection`); False: rows are read."""
    shape_of(query)  # Unsupported before any code is written
    if struct is not None and not batch_lookups:
        try:
            return _generate(_Inputs(query, decode, encoding, key_of, False, struct), project)
        except Unsupported:
            pass  # a read the struct has no attribute for, or a closure: the dict decoder
    return _generate(_Inputs(query, decode, encoding, key_of, batch_lookups, None), project)


class _Inputs(NamedTuple):
    """What one writing of the code takes (:func:`generate` may write it up to three times)."""

    query: CompiledQuery
    decode: Callable[[bytes], Any]
    encoding: Encoding
    key_of: Callable[[Any], Any] | None
    batch_lookups: bool
    struct: StructDecoding | None


def _generate(inputs: _Inputs, project: bool) -> Generated:
    query = inputs.query
    plan: ProjectionPlan | None = None
    if project and not inputs.batch_lookups:
        # Projected lookups (sql.codegen.projection): a first pass records what each lookup
        # reads of its row; none where a closure reads rows from the env.
        plan = ProjectionPlan()
        first = _write(inputs, plan)
        if first.uses_env or not plan.sites:
            plan = None
        else:
            plan.finish(query.context)
    try:
        w = _write(inputs, plan)
    except ProjectionMismatch:
        plan = None
        w = _write(inputs, None)
    source = w.source()
    exec(compile(source, f"<query {query.stream_name}>", "exec"), w.namespace)
    fn: BatchFn = w.namespace.get("batch_in_context") or w.namespace["batch"]
    notes = [] if plan is None else plan.explain()
    if notes:
        assert plan is not None
        query.context.closers.append(plan.close)
    return Generated(source, fn, notes)


def _write(inputs: _Inputs, plan: ProjectionPlan | None) -> Writer:
    query, encoding, key_of, struct = inputs.query, inputs.encoding, inputs.key_of, inputs.struct
    shape = shape_of(query)
    w = Writer()
    w.namespace.update(
        {
            "env": query.env,
            "decode": inputs.decode,
            "EMPTY": _EMPTY,
            "enc_slow": encoding.slow,
            "NO_HEADERS": _NO_HEADERS,
        }
    )
    if encoding.fast is not None:
        w.namespace["enc_fast"] = encoding.fast
    if key_of is not None:
        w.namespace["key_of"] = key_of
    if struct is not None:
        w.namespace.update(struct.namespace)
    keyed = key_of is not None
    body = _Body(w, query, shape, encoding, keyed, inputs.batch_lookups, struct, plan)
    body.write()
    if struct is not None and w.uses_env:
        raise Unsupported("a closure reads the stream's row as a dict")
    return w


class _Body:
    def __init__(
        self,
        w: Writer,
        query: CompiledQuery,
        shape: StreamShape,
        enc: Encoding,
        keyed: bool,
        batch_lookups: bool,
        struct: StructDecoding | None = None,
        plan: ProjectionPlan | None = None,
    ) -> None:
        self.w = w
        self.struct = struct
        self.query = query
        self.shape = shape
        self.enc = enc
        self.keyed = keyed
        stream = shape.stream
        self.rows = {stream.value_slot: "v0"}
        attrs = {} if struct is None else {stream.value_slot: struct.attrs}
        types = {} if struct is None else {stream.value_slot: struct.types}
        self.gen = ExprGen(w, query.context, self.rows, attrs, types, plan)
        self.gen.context_ops = True  # see _in_context
        first = shape.joins[0] if shape.joins else None
        self.batched = batch_lookups and first is not None and batchable(first)
        self.joins = JoinWriter(w, self.gen, query, self.rows)

    def write(self) -> None:
        w = self.w
        with w.block("def batch(records, partition, sink, fails):"):
            w.line("tombstones = 0")
            # n_rec: the offset of the next output in the sink's open batch; the outputs are
            # counted from it (n_out: those of batches rolled over, less the first offset).
            w.line("append, n_rec = sink.open()")
            w.line("n_out = -n_rec")
            if self.batched:
                w.line("todo = []")
                w.line("want = set()")
            with w.block("for rec in records:"):
                w.line("raw = rec.value")
                with w.block("if raw is None:"):
                    w.line("tombstones += 1")
                    w.line("continue")
                with w.block("try:"):
                    if self.struct is None:
                        w.line("v0 = decode(raw)")
                    else:
                        for line in self.struct.lines:
                            w.line(line)
                    self._set_stream_env()
                    self._filters(self.shape.pushed)
                    if self.batched:
                        self._collect_key(self.shape.joins[0])
                    else:
                        self._rest(0)
                with w.block("except Exception as err:"):
                    w.line("fails.append((rec, err))")
            if self.batched:
                self._second_pass()
            w.line("sink.close(n_rec)")
            w.line("return n_out + n_rec, tombstones")
        if self.gen.used_context:
            self._in_context()

    def _in_context(self) -> None:
        """The function the agents call when the code uses DECIMAL operators: ``batch`` with the
        exact DECIMAL context as the thread's, the caller's put back after (the batch runs
        synchronously: no other code of this thread runs meanwhile)."""
        w = self.w
        get, put = (
            w.bind(decimal.getcontext, "getcontext"),
            w.bind(decimal.setcontext, "setcontext"),
        )
        ctx = w.bind(DECIMAL_CONTEXT, "DECIMAL_CONTEXT")
        with w.block("def batch_in_context(records, partition, sink, fails):"):
            w.line(f"prior = {get}()")
            w.line(f"{put}({ctx})")
            with w.block("try:"):
                w.line("return batch(records, partition, sink, fails)")
            with w.block("finally:"):
                w.line(f"{put}(prior)")

    # -- the record's env, for the closures it calls ---------------------------------------
    def _set_stream_env(self) -> None:
        stream, ts_field = self.shape.stream, self.query.timestamp_field
        event_time = "rec.timestamp"
        if ts_field:
            event_time = f"v0.get({ts_field!r}, rec.timestamp)"
        self.w.env_line(f"env[{stream.value_slot}] = v0")
        self.w.env_line(
            f"env[{stream.meta_slot}] ="
            f" (rec.key, rec.timestamp, {event_time}, partition, rec.offset)"
        )

    # -- steps ------------------------------------------------------------------------------
    def _filters(self, terms: list[Conjunct]) -> None:
        """AND-ed terms: in order until one is FALSE; the record passes when all are TRUE."""
        values = []
        for i, c in enumerate(terms):
            v = self.gen.node(c.node)
            values.append(v)
            last = i == len(terms) - 1
            with self.w.block(f"if {v} is not True:" if last else f"if {v} is False:"):
                self.w.line("continue")
        # An earlier term that was UNKNOWN fails the conjunction too (the terms after it ran:
        # an error of theirs is the record's, as with the closures).
        unknown = [v for v in values[:-1] if v not in self.gen.never_null]
        if unknown:
            cond = " or ".join(f"{v} is not True" for v in unknown)
            with self.w.block(f"if {cond}:"):
                self.w.line("continue")

    def _collect_key(self, join: JoinStep) -> None:
        w = self.w
        assert isinstance(join.source, KeyLookup)
        k = self._key(join, 0)
        with w.block(f"if {k} is not None and (type({k}) is int or type({k}) is str):"):
            w.line(f"want.add({k})")
        w.line(f"todo.append((rec, v0, {k}))")

    def _key(self, join: JoinStep, i: int) -> str:
        k = self.joins.key(join)
        name = f"k{i}"
        self.w.line(f"{name} = {k}")
        return name

    def _second_pass(self) -> None:
        w = self.w
        w.forget_all()
        first = self.shape.joins[0]
        assert isinstance(first.source, KeyLookup)
        table = first.source.get.__self__  # type: ignore[attr-defined]
        many = w.bind(table.get_many, "many")
        with w.block("try:"):
            w.line(f"found = {many}(want)")
        with w.block("except Exception:"):  # then each record reads its row alone
            w.line("found = None")
        key = key_compiled(self.query, first)
        if key is not None and key.read is not None:
            w.remember(("read", key.read[0], key.read[1]), "k0")
        with w.block("for rec, v0, k0 in todo:"):
            with w.block("try:"):
                self._set_stream_env()
                self._rest(0, found="found")
            with w.block("except Exception as err:"):
                w.line("fails.append((rec, err))")

    def _rest(self, i: int, found: str | None = None) -> None:
        """Joins from the ``i``-th, then the late WHERE terms, the projection and the output."""
        joins = self.shape.joins
        if i == len(joins):
            self._filters(self.shape.late)
            write_output(self.w, self.gen, self.shape, self.enc, self.keyed)
            return
        self.joins.join(joins[i], i, found)
        if i == len(joins) - 1:
            self._fold_candidate(joins[i])
        self._rest(i + 1)

    def _fold_candidate(self, join: JoinStep) -> None:
        """First pass of projected lookups: the last join, inner, whose record is then tested by
        one WHERE term on its row alone — the map may drop the rows that term drops
        (:mod:`sql.codegen.projection`; it checks that nothing else reads the row)."""
        plan, late = self.gen.plan, self.shape.late
        if plan is None or not plan.collecting or join.left or join.residual is not None:
            return
        if len(late) != 1:
            return
        slot = join.relation.value_slot
        site = self.gen.site_by_row.get(self.rows.get(slot, ""))
        node = late[0].node
        found = value_site(self.gen, self.gen.compiled_of(node), node)
        if site is not None and found is not None and found[0] is site:
            site.fold_candidate = (found[1], slot)
