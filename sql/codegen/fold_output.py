"""The output half of the generated fold (:mod:`sql.codegen.fold_batch`): the EMIT CHANGES row
of a folded record, its key and its bytes, appended to the output.

The row is the generated row function's (:mod:`sql.codegen.fold`) written out when every
output is a group key, an aggregate result or a window bound and there is no HAVING (found by
running the output functions over marked slot values); the key is
:func:`agents.encode.make_key`'s for integers, the bytes the caller's :class:`Encoding`; outputs
go to the caller's ``append`` or, with ``sinks``, to their partition's C record builder inline.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from sql.codegen.batch_spec import Encoding
from sql.codegen.writer import Writer
from sql.operators.aggregate import StreamAggregate
from sql.operators.window_time import TimeWindowAggregate
from sql.query import CompiledQuery
from sql.runtime.accumulators import Count, CountStar, Sum
from sql.types import DECIMAL_CONTEXT


class _Mark:
    """A marked slot value: an output function returning it reads that value, written ``code``."""

    __slots__ = ("code",)

    def __init__(self, code: str) -> None:
        self.code = code


def _row_struct(names: list[str]) -> type:
    """A msgspec struct whose fields are ``names`` in order (any text: renamed from f0...)."""
    fields = [(f"f{i}", object) for i in range(len(names))]
    rename = {f"f{i}": n for i, n in enumerate(names)}
    # gc=False: it holds output values only (scalars), never a reference back to itself.
    return msgspec.defstruct("Row", fields, rename=rename, gc=False)


class FoldOutput:
    """Writes the output steps of a fold; :class:`sql.codegen.fold_batch._FoldBody` the rest."""

    w: Writer
    query: CompiledQuery
    op: StreamAggregate | TimeWindowAggregate
    enc: Encoding
    key_of: Callable[[Any], Any] | None
    key_columns: tuple[str, ...]
    topic: str
    windowed: bool
    #: Record keys have slots (:class:`sql.codegen.fold_slots.Slots`).
    slotted: bool
    #: The global name of the list the row function appends the record's row to.
    rows: str
    #: Aggregate calls (by index) that are a SUM folded from DECIMAL values inline.
    decimal_sums: dict[int, bool]
    #: Code of the row as a dict (``row`` itself unless it is a struct: see :meth:`_emit`).
    row = "row"
    #: Code of the row's columns, where known (:meth:`_row_values`).
    values: dict[str, str]
    #: The output key is the slot's (its bytes and partition kept there).
    slot_key = False
    #: The group key is the record's key column value alone (:class:`FoldState`).
    same_key: bool

    def _emit(self) -> None:
        op = self.op
        if op.emit != "changes":
            return  # EMIT FINAL: rows when windows close (the general path) or at the end
        w = self.w
        rows = self.rows
        values = self._row_values()
        if values is None:
            row = w.bind(op.row, "ROW")
            if self.windowed:
                assert isinstance(op, TimeWindowAggregate)
                w.line(f"ENV[{int(op.win_slot)}] = (start, win.end)")
                with w.block(f"if {row}(ENV, gk, win.accs, {rows}):"):
                    w.line("win.emitted = True")
            else:
                w.line(f"{row}(ENV, gk, accs, {rows})")
            with w.block(f"if {rows}:"):
                w.line(f"row = {rows}.pop()")
                self._output({})
            return
        # The row function's steps written out (sql.codegen.fold.row_source, without HAVING):
        # every accumulator's result left to right, then the row of the outputs.
        for i, kind in enumerate(type(s.factory()) for s in op.agg.specs):
            if kind is CountStar or kind is Count:
                w.line(f"r{i} = a{i}.n")  # a{i}: the accumulator, read by the fold
            elif kind is Sum and self.decimal_sums.get(i):
                # Sum.result of a SUM over DECIMAL values only (no DOUBLE in it: floats 0).
                # Without integers in it, ``exact`` itself: ADD(exact, 0) is the same value
                # written the same way, as exact is never -0 (it starts at +0, and a sum is
                # -0 only of two -0s under ROUND_HALF_UP), its exponent never above 0 (the
                # exponent of a sum is its operands' least, and Decimal(0)'s is 0) and its
                # digits within the context's precision (every value of it came out of ADD).
                # tests/unit/sql/test_fold_decimal.py checks that over hypothesis sums.
                a, add = f"a{i}", w.bind(DECIMAL_CONTEXT.add, "ADD")
                w.line(
                    f"r{i} = None if {a}.n == 0 else ({a}.exact if not {a}.ints"
                    f" else {add}({a}.exact, {a}.ints))"
                    f" if {a}.decimals and not {a}.floats else {a}.result()"
                )
            else:
                w.line(f"r{i} = a{i}.result()")
        items = ", ".join(f"{n!r}: {v}" for n, v in values.items())
        if self.enc.fast is not None:
            # A struct of the outputs in order: msgspec writes it as it writes the dict of them
            # (the same bytes; ~40% less than building and encoding the dict). The dict is built
            # only where a fallback (the key function, the slow encoder) takes the row.
            struct = w.bind(_row_struct(list(values)), "ROWT")
            w.line(f"row = {struct}({', '.join(values.values())})")
            self.row = f"{{{items}}}"
        else:
            w.line(f"row = {{{items}}}")
        if self.windowed:
            w.line("win.emitted = True")
        self._output(values)

    def _row_values(self) -> dict[str, str] | None:
        """Each output as code when every one is a group key, an aggregate result or a window
        bound (found by running the output functions over marked slots), and there is no
        HAVING; else None (the generated row function runs)."""
        op = self.op
        agg = op.agg
        if agg.having is not None or len(set(op.names)) != len(op.names):
            return None
        env = self.query.env
        slots = [agg.key_slot, agg.agg_slot]
        key_marks = tuple(_Mark(c) for c in self._group_codes())
        agg_marks = tuple(_Mark(f"r{i}") for i in range(len(agg.specs)))
        marks: list[tuple[_Mark, ...]] = [key_marks, agg_marks]
        if self.windowed:
            assert isinstance(op, TimeWindowAggregate)
            slots.append(op.win_slot)
            marks.append((_Mark("start"), _Mark("win.end")))
        saved = [env[s] for s in slots]
        out: dict[str, str] = {}
        try:
            for s, m in zip(slots, marks, strict=True):
                env[s] = m
            for name, fn in zip(op.names, op.outputs, strict=True):
                try:
                    v = fn(env)
                except Exception:
                    return None
                if type(v) is not _Mark:
                    return None
                out[name] = v.code
        finally:
            for s, v in zip(slots, saved, strict=True):
                env[s] = v
        return out

    def _output(self, values: dict[str, str]) -> None:
        """Key, encode and append ``row`` (``values``: code of its columns, where known)."""
        w = self.w
        self.values = values
        self._key(values)
        self._encode()
        with w.block("if sinks is None:"):
            w.line(f"append({w.const(self.topic)}, key, out, None, None)")
        with w.block("else:"):
            # The partition's C record builder, called inline (sql.codegen.sink).
            if self.slot_key:
                # The slot's output key has its partition in the slot once found (the slots
                # start over when the output's partitions change: Slots.__call__).
                w.line("p = sl[-1]")
                with w.block("if p is None:"):
                    self._partition()
                    w.line("sl[-1] = p")
            else:
                self._partition()
            w.line("e = opened.get(p)")
            with w.block("if e is None:"):
                w.line("e = opened[p] = open_sink(p)")
            with w.block("if e[0](e[1], None, key, out, NO_HEADERS) is None:"):
                w.line("sinks.roll(e, key, out)")
            w.line("e[1] += 1")
        w.line("n_out += 1")

    def _partition(self) -> None:
        # The output's own partition cache first (the partitioner's result by key).
        w = self.w
        w.line("p = known.get(key)")
        with w.block("if p is None:"):
            w.line("p = part(key)")

    def _key(self, values: dict[str, str]) -> None:
        w = self.w
        columns = self.key_columns
        if self.key_of is None or not columns:
            w.line("key = rec.key")
            return
        if self.slotted and all(values.get(c) in self._slot_constant() for c in columns):
            # Made of the group key and the window start only: written once per slot
            # (sql.codegen.fold_slots.Slots), its last item.
            w.line("key = sl[-2]")
            with w.block("if key is None:"):
                self._key_of(values)
                w.line("sl[-2] = key")
            self.slot_key = True
            return
        self._key_of(values)

    def _slot_constant(self) -> set[str]:
        """Code of the row values that are the same for every record of a slot."""
        known = set(self._group_codes())
        return known | {"start", "win.end"} if self.windowed else known

    def _group_codes(self) -> list[str]:
        """Code of each group key value: the record's key column value ``kc`` when the group
        key is that value alone (equal to the slot's: the one object read, not the group key's
        tuple), else the group key's items."""
        if self.same_key:
            return ["kc"]
        return [f"gk[{i}]" for i in range(len(self.op.agg.keys))]

    def _key_of(self, values: dict[str, str]) -> None:
        w = self.w
        columns = self.key_columns
        key_of = w.bind(self.key_of, "key_of")
        ks = []
        for c in columns:
            known = values.get(c)
            if known is not None and known.isidentifier():
                ks.append(known)
                continue
            k = w.temp("k")
            w.line(f"{k} = {known if known is not None else f'{self.row}.get({c!r})'}")
            ks.append(k)
        if len(columns) == 1:
            # tables.keys.key_bytes of an integer: its digits.
            (k,) = ks
            with w.block(f"if type({k}) is int:"):
                w.line(f'key = b"%d" % {k}')
            with w.block("else:"):
                w.line(f"key = {key_of}({self.row})")
            return
        # agents.encode.make_key: the JSON array of the key columns, as orjson writes it — for
        # integers orjson takes (64 bits, signed or not) their digits. Written here: orjson's
        # bytes cost ~3 µs each when kept (a fresh 1 KiB buffer per call), these ~0.3 µs.
        ints = " and ".join(f"type({k}) is int and {-(2**63)} <= {k} <= {2**64 - 1}" for k in ks)
        with w.block(f"if {ints}:"):
            w.line(f'key = b"[{",".join("%d" for _ in ks)}]" % ({", ".join(ks)},)')
        with w.block("else:"):
            w.line(f"key = {key_of}({self.row})")

    def _encode(self) -> None:
        w = self.w
        enc = self.enc
        slow = w.bind(enc.slow, "enc_slow")
        if enc.fast is None:
            w.line(f"out = {slow}({self.row})")
            return
        fast = w.bind(enc.fast, "enc_fast")
        with w.block("try:"):
            w.line(f"out = {fast}(row)")
        with w.block("except (TypeError, ValueError, OverflowError):"):
            w.line(f"out = {slow}({self.row})")
        if enc.scan_nonfinite:
            dec = w.bind(Decimal, "T")
            names = [
                n
                for n, t in zip(self.query.output_columns, self.query.output_types, strict=True)
                if t.name == "DECIMAL"
            ]
            for n in names:
                w.line(f"d = {self.values.get(n) or f'{self.row}.get({n!r})'}")
                with w.block(f"if type(d) is {dec} and not d.is_finite():"):
                    w.line(f"out = {slow}({self.row})")
