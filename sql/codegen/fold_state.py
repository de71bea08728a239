"""The state half of the generated fold (:mod:`sql.codegen.fold_batch`): the record's group or
window found (through its record key's slot, :mod:`sql.codegen.fold_slots`) or created, and its
accumulators folded inline — the operator's own live state, as the general path changes it.

DECIMAL sums add with Python's ``+`` on the folded values: the fold runs with the exact context
(``DECIMAL_CONTEXT``) as the thread's (:func:`sql.codegen.fold_batch.generate_fold`'s wrapper),
so ``exact + v`` is ``DECIMAL_CONTEXT.add(exact, v)`` — the same context, so the same result and
signals — without the method's argument parsing (~750 instructions a record).
"""

from __future__ import annotations

import contextlib
import heapq
from decimal import Decimal
from typing import TYPE_CHECKING

from sql.codegen.expr import ExprGen
from sql.codegen.writer import Writer
from sql.operators.aggregate import StreamAggregate
from sql.operators.window import Win
from sql.operators.window_time import TimeWindowAggregate
from sql.runtime.accumulators import Count, CountStar, Sum

if TYPE_CHECKING:
    from sql.codegen.fold_batch import KeyGate


class FoldState:
    """Writes the state steps of a fold; :class:`sql.codegen.fold_batch._FoldBody` the rest."""

    w: Writer
    op: StreamAggregate | TimeWindowAggregate
    gen: ExprGen
    gate: KeyGate | None
    #: Rows are dicts (read with .get), not the stream's struct.
    dicts: bool
    #: The stream's value slot.
    vs: int
    windowed: bool
    #: Record keys have slots (:class:`sql.codegen.fold_slots.Slots`).
    slotted: bool
    #: Aggregate calls (by index) that are a SUM folded from DECIMAL values inline.
    decimal_sums: dict[int, bool]
    #: The group key is the gate column's value (``kc``) alone (see :meth:`_key_is_gate`).
    same_key = False

    @property
    def slot_accs(self) -> int:
        """Where a slot's accumulators begin (:class:`sql.codegen.fold_slots.Slots`)."""
        return 4 if self.windowed else 3

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
        same = self.same_key = slotted and self._key_is_gate(keys)
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
                    items = "".join(f"accs[{i}], " for i in range(len(op.agg.specs)))
                    w.line(f"slots[rk] = sl = [kc, gk, accs, {items}None, None]")
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
                w.line("accs = win.accs")
                items = "".join(f"accs[{i}], " for i in range(len(op.agg.specs)))
                w.line(f"slots[rk] = sl = [kc, gk, start, win, {items}None, None]")
        else:
            w.line("accs = win.accs")

    def _fold(self, args: list[str | None]) -> None:
        w = self.w
        for i, (spec, arg) in enumerate(zip(self.op.agg.specs, args, strict=True)):
            kind = type(spec.factory())
            a = f"a{i}"
            # A slot holds its window's or group's accumulators after the window or group
            # (sql.codegen.fold_slots): no read of the window's list.
            w.line(f"{a} = sl[{self.slot_accs + i}]" if self.slotted else f"{a} = accs[{i}]")
            if arg is None or kind is CountStar:
                w.line(f"{a}.n += 1")
            elif kind is Count:
                with w.block(f"if {arg} is not None:"):
                    w.line(f"{a}.n += 1")
            elif issubclass(kind, Sum) and self.gen.exact.get(arg) is Decimal:
                self.decimal_sums[i] = True
                with w.block(f"if {arg} is not None:"):  # Sum._apply of a Decimal
                    # DECIMAL_CONTEXT.add: the thread's context here (see the module docstring).
                    w.line(f"{a}.exact += {arg}")
                    self.gen.used_context = True
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
