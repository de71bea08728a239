"""Session windows: per group, activity separated by at least the inactivity gap.

As in ksqlDB, a session's ``window_start`` is its first event time and ``window_end`` its last
(inclusive). A record at ``t`` joins every session of its group that ends at or after ``t - gap``
and starts at or before ``t + gap``; when it bridges several they merge into one. A session
closes when the watermark passes ``window_end + gap + grace``; a record whose (merged) session
would already be closed is late. A closed session is never reopened: with the default
``late='dlq'`` its state is gone, and a later record within the gap starts a new session.

EMIT CHANGES output for merges: a session key is (group, window_start). Before the updated row of
the merged session, every previously emitted session it replaces — the absorbed ones, and itself
when its start moved earlier — is withdrawn by a :class:`~sql.operators.aggregate.Retraction`
row carrying its last values (a table sink turns it into a tombstone for that key).
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from sql.operators.aggregate import Retraction, Row
from sql.operators.window import Win, WindowedAggregate
from sql.runtime import Env
from sql.runtime.state import merge


class SessionWindowAggregate(WindowedAggregate):
    prefix = "s:"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gap = self.spec.gap_ms
        self.sessions: dict[tuple[Any, ...], list[Win]] = {}

    def bounds_text(self, start: int, end: int) -> str:
        return f"session [{start}, {end}]"

    def close_due(self, win: Win) -> int:
        return win.end + self.gap + self.grace + 1

    def assign(
        self, env: Env, gk: tuple[Any, ...], t: int, vals: list[Any], out: list[Row]
    ) -> None:
        gap = self.gap
        group = self.sessions.get(gk)
        hits = [s for s in group if s.end >= t - gap and s.start <= t + gap] if group else []
        start = end = t
        for s in hits:
            start = min(start, s.start)
            end = max(end, s.end)
        due = end + gap + self.grace + 1
        w = self.watermark
        assert w is not None
        closed = w >= due
        if closed and not w < due + self.retention:
            raise self.late(t, start, end, due)
        if hits:
            win = hits[0]  # the earliest absorbs the others
            for s in hits:
                if s.emitted and (s is not win or s.start != start):
                    self.row_of(env, s, out, Retraction)
                    s.emitted = False
            for s in hits[1:]:
                for a, b in zip(win.accs, s.accs, strict=True):
                    merge(a, b)
                self.drop(s)
            win.start, win.end = start, end
        else:
            win = Win(gk, t, t, self.new_accumulators(), self.next_seq())
            if group is None:
                group = self.sessions[gk] = []
            insort(group, win, key=_start)
        self.schedule(win, closed)
        self.update(env, win, vals, out)

    def insert(self, win: Win) -> None:
        insort(self.sessions.setdefault(win.gk, []), win, key=_start)

    def remove(self, win: Win) -> None:
        group = self.sessions.get(win.gk)
        if group is None:
            return
        for i, s in enumerate(group):
            if s is win:
                del group[i]
                break
        if not group:
            del self.sessions[win.gk]


def _start(win: Win) -> int:
    return win.start
