"""Tumbling and hopping windows: epoch-aligned, half-open ``[start, end)``.

A record at ``t`` falls in every window ``[s, s + size)`` with ``s`` a multiple of the advance
and ``s <= t < s + size`` (one window when advance = size: tumbling). The watermark, closing and
state are :class:`~sql.operators.window.WindowedAggregate`'s.
"""

from __future__ import annotations

from typing import Any

from sql.operators.aggregate import Row
from sql.operators.window import Win, WindowedAggregate
from sql.runtime import Env


class TimeWindowAggregate(WindowedAggregate):
    """Tumbling (advance = size) and hopping windows, epoch-aligned, half-open [start, end)."""

    prefix = "w:"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.size = self.spec.size_ms
        self.step = self.spec.advance_ms
        self.windows: dict[tuple[tuple[Any, ...], int], Win] = {}

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
