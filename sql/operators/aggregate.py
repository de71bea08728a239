"""GROUP BY over a stream: per-group accumulators, EMIT CHANGES or EMIT FINAL, persistable state.

:class:`AggregateOperator` is what every aggregate stage offers the compiled query: ``add`` (the
last stage of the per-record pipeline), ``finish`` (end of input) and the state hooks
``dirty_state`` / ``restore_state``. :class:`StreamAggregate` is the non-windowed one; the
windowed ones live in :mod:`sql.operators.window`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.codec import dumps
from sql.errors import StateError
from sql.runtime import Env, Fn
from sql.runtime.accumulators import Accumulator
from sql.runtime.parts import Aggregation
from sql.runtime.state import decode, encode, load_state, to_state

Row = dict[str, Any]

E_STATE_SHAPE = "state entry {id!r} does not fit this query ({reason})"
#: State id of the group of a non-windowed aggregate: ``g:`` + the JSON of its key values.
GROUP_PREFIX = "g:"


class Retraction(dict[str, Any]):
    """An emitted row that withdraws an earlier one (same key columns): a session window that was
    merged into another or whose start moved. A table sink writes a tombstone for its key."""

    __slots__ = ()


def key_id(gk: tuple[Any, ...]) -> str:
    """The stable text form of a group key (part of state ids)."""
    return dumps(encode(list(gk))).decode()


class AggregateOperator:
    """Shared by all aggregate stages: output rows from (group key, accumulators, window)."""

    is_windowed = False
    watermark: int | None = None

    def __init__(self, agg: Aggregation, outputs: list[Fn], names: list[str], emit: str) -> None:
        self.agg = agg
        self.outputs = outputs
        self.names = names
        self.emit = emit

    def add(self, env: Env, out: list[Row]) -> None:
        raise NotImplementedError

    def finish(self, env: Env) -> list[Row]:
        raise NotImplementedError

    def dirty_state(self) -> dict[str, Any | None]:
        raise NotImplementedError

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def row(
        self,
        env: Env,
        gk: tuple[Any, ...],
        accs: list[Accumulator],
        out: list[Row],
        kind: type[Row] = dict,
    ) -> bool:
        """Append the output row of one group; False when HAVING rejects it (not for retractions).

        HAVING is checked at emission time, so a HAVING subquery sees the tables as they are now.
        """
        agg = self.agg
        env[agg.key_slot] = gk
        env[agg.agg_slot] = tuple([a.result() for a in accs])
        if kind is dict and agg.having is not None and agg.having(env) is not True:
            return False
        out.append(kind(zip(self.names, [f(env) for f in self.outputs], strict=False)))
        return True

    def new_accumulators(self) -> list[Accumulator]:
        return [s.factory() for s in self.agg.specs]

    def accs_state(self, accs: list[Accumulator]) -> list[Any]:
        return [to_state(a) for a in accs]

    def load_accs(self, wid: str, states: Any) -> list[Accumulator]:
        specs = self.agg.specs
        if not isinstance(states, list) or len(states) != len(specs):
            raise StateError(
                E_STATE_SHAPE.format(id=wid, reason=f"expected {len(specs)} accumulator states"),
                id=wid,
            )
        return [load_state(s.factory(), st) for s, st in zip(specs, states, strict=True)]

    @staticmethod
    def load_key(wid: str, value: Any) -> tuple[Any, ...]:
        gk = decode(value)
        if not isinstance(gk, list):
            raise StateError(E_STATE_SHAPE.format(id=wid, reason="bad group key"), id=wid)
        return tuple(gk)


class StreamAggregate(AggregateOperator):
    """Groups live as long as the query (no window)."""

    def __init__(self, agg: Aggregation, outputs: list[Fn], names: list[str], emit: str) -> None:
        super().__init__(agg, outputs, names, emit)
        self.groups: dict[tuple[Any, ...], list[Accumulator]] = {}
        self.dirty: set[tuple[Any, ...]] = set()

    def add(self, env: Env, out: list[Row]) -> None:
        agg = self.agg
        gk = tuple(f(env) for f in agg.keys)
        accs = self.groups.get(gk)
        if accs is None:
            accs = self.groups[gk] = self.new_accumulators()
        for acc, spec in zip(accs, agg.specs, strict=True):
            acc.add(1 if spec.arg is None else spec.arg(env))
        self.dirty.add(gk)
        if self.emit == "changes":
            self.row(env, gk, accs, out)

    def finish(self, env: Env) -> list[Row]:
        out: list[Row] = []
        if self.emit == "final":
            if not self.agg.keys and not self.groups:
                self.groups[()] = self.new_accumulators()
            for gk, accs in self.groups.items():
                self.row(env, gk, accs, out)
        return out

    def dirty_state(self) -> dict[str, Any | None]:
        out: dict[str, Any | None] = {}
        for gk in self.dirty:
            accs = self.groups.get(gk)
            wid = GROUP_PREFIX + key_id(gk)
            out[wid] = None if accs is None else {"g": encode(list(gk)), "a": self.accs_state(accs)}
        self.dirty.clear()
        return out

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        for wid, value in items:
            if value is None:
                continue
            if not wid.startswith(GROUP_PREFIX) or not isinstance(value, dict):
                raise StateError(
                    E_STATE_SHAPE.format(id=wid, reason="not a group of this GROUP BY"), id=wid
                )
            gk = self.load_key(wid, value.get("g"))
            self.groups[gk] = self.load_accs(wid, value.get("a"))
