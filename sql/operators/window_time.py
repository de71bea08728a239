"""Tumbling and hopping windows: epoch-aligned, half-open ``[start, end)``.

A record at ``t`` falls in every window ``[s, s + size)`` with ``s`` a multiple of the advance
and ``s <= t < s + size`` (one window when advance = size: tumbling). The watermark, closing and
state are :class:`~sql.operators.window.WindowedAggregate`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sql.operators.aggregate import Row
from sql.operators.window import Win, WindowedAggregate
from sql.runtime import Env


class TimeWindowAggregate(WindowedAggregate):
    """Tumbling (advance = size) and hopping windows, epoch-aligned, half-open [start, end)."""

    prefix = "w:"
    #: Tumbling: fold records of open windows by :meth:`_tumbling_adder` (a subclass with its own
    #: ``assign`` never does; ``tests/unit/sql/test_window_fast.py`` turns it off to compare).
    fast_path = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.size = self.spec.size_ms
        self.step = self.spec.advance_ms
        self.windows: dict[tuple[tuple[Any, ...], int], Win] = {}
        tumbling = self.size == self.step
        if self.fast_path and tumbling and type(self).assign is TimeWindowAggregate.assign:
            self.add = self._tumbling_adder(self.add)  # type: ignore[method-assign,assignment]

    def _tumbling_adder(
        self, general: Callable[[Env, list[Row]], None]
    ) -> Callable[[Env, list[Row]], None]:
        """Tumbling: a record whose window exists and is open — most records — is folded here,
        :meth:`assign` and :meth:`update` written out (no value list, no zip, no calls between):
        the same steps in the same order. Anything else (no event time, a new window, a closed
        one, a late record) takes ``general``, which does the whole of it."""
        keys, specs = self.agg.keys, self.agg.specs
        if len(keys) != 1 or not 1 <= len(specs) <= 2:
            return general
        (key,) = keys
        a0 = specs[0].arg
        a1 = specs[1].arg if len(specs) == 2 else None
        one = len(specs) == 1
        slot, win_slot, size, grace = self.time_slot, self.win_slot, self.size, self.grace
        windows, dirty, row = self.windows, self.dirty, self.row
        changes = self.emit == "changes"

        def add(env: Env, out: list[Row]) -> None:
            t = env[slot]
            if t is not None:
                start = t - t % size
                win = windows.get(((key(env),), start))
                w = self.watermark
                if (
                    win is not None
                    and not win.closed
                    and w is not None
                    and w < start + size + grace
                ):
                    accs = win.accs
                    v0 = 1 if a0 is None else a0(env)
                    if one:
                        accs[0].add(v0)
                    else:
                        v1 = 1 if a1 is None else a1(env)
                        accs[0].add(v0)
                        accs[1].add(v1)
                    dirty.add(win)
                    if changes:
                        env[win_slot] = (start, win.end)
                        if row(env, win.gk, accs, out):
                            win.emitted = True
                    return
            general(env, out)

        return add

    def close_due(self, win: Win) -> int:
        return win.end + self.grace

    def assign(
        self, env: Env, gk: tuple[Any, ...], t: int, vals: list[Any], out: list[Row]
    ) -> None:
        size, step, grace = self.size, self.step, self.grace
        r = t % step
        last = t - r
        w = self.watermark
        assert w is not None
        windows = self.windows
        if step == size:  # tumbling: one window
            due = last + size + grace
            if w >= due and w >= due + self.retention:
                raise self.late(t, last, last + size, due)
            win = windows.get((gk, last))
            if win is None:
                win = windows[(gk, last)] = Win(
                    gk, last, last + size, self.new_accumulators(), self.next_seq()
                )
                self.schedule(win, w >= due)
            self.update(env, win, vals, out)
            return
        s = last - ((size - r - 1) // step) * step  # the earliest window holding t
        applied = skipped = 0
        while s <= last:
            due = s + size + grace
            if w >= due and not w < due + self.retention:
                skipped += 1
                s += step
                continue
            win = windows.get((gk, s))
            if win is None:
                win = windows[(gk, s)] = Win(
                    gk, s, s + size, self.new_accumulators(), self.next_seq()
                )
                self.schedule(win, w >= due)
            self.update(env, win, vals, out)
            applied += 1
            s += step
        if not applied:
            raise self.late(t, last, last + size, last + size + grace)
        self.late_drops += skipped

    def insert(self, win: Win) -> None:
        self.windows[(win.gk, win.start)] = win

    def remove(self, win: Win) -> None:
        self.windows.pop((win.gk, win.start), None)
