"""Non-windowed GROUP BY over a stream: per-group accumulators, EMIT CHANGES or EMIT FINAL."""

from __future__ import annotations

from typing import Any

from sql.compile.aggregate import Accumulator
from sql.compile.context import Env, Fn
from sql.compile.select import Aggregation


class StreamAggregate:
    """Groups live as long as the query (no windows yet); HAVING is checked at emission time,
    so a HAVING subquery sees the tables as they are when the row is emitted."""

    def __init__(self, agg: Aggregation, outputs: list[Fn], names: list[str], emit: str) -> None:
        self.agg = agg
        self.outputs = outputs
        self.names = names
        self.emit = emit
        self.groups: dict[tuple[Any, ...], list[Accumulator]] = {}

    def add(self, env: Env, out: list[dict[str, Any]]) -> None:
        agg = self.agg
        gk = tuple(f(env) for f in agg.keys)
        accs = self.groups.get(gk)
        if accs is None:
            accs = self.groups[gk] = [s.factory() for s in agg.specs]
        for acc, spec in zip(accs, agg.specs, strict=True):
            acc.add(1 if spec.arg is None else spec.arg(env))
        if self.emit == "changes":
            self._emit(env, gk, accs, out)

    def finish(self, env: Env) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.emit == "final":
            if not self.agg.keys and not self.groups:
                self.groups[()] = [s.factory() for s in self.agg.specs]
            for gk, accs in self.groups.items():
                self._emit(env, gk, accs, out)
        return out

    def _emit(
        self, env: Env, gk: tuple[Any, ...], accs: list[Accumulator], out: list[dict[str, Any]]
    ) -> None:
        agg = self.agg
        env[agg.key_slot] = gk
        env[agg.agg_slot] = tuple(a.result() for a in accs)
        if agg.having is not None and agg.having(env) is not True:
            return
        out.append(dict(zip(self.names, [f(env) for f in self.outputs], strict=True)))
