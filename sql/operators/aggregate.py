"""GROUP BY over a stream: per-group accumulators, EMIT CHANGES or EMIT FINAL, persistable state.

:class:`AggregateOperator` is what every aggregate stage offers the compiled query: ``add`` (the
last stage of the per-record pipeline), ``finish`` (end of input) and the state hooks
``dirty_state`` / ``restore_state``. :class:`StreamAggregate` is the non-windowed one; the
windowed ones live in :mod:`sql.operators.window`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.codec import dumps
from sql.errors import StateError
from sql.runtime import Env, Fn
from sql.runtime.accumulators import Accumulator
from sql.runtime.parts import Aggregation
from sql.runtime.state import accs_state_fn, decode, encode, load_state

if TYPE_CHECKING:
    from sql.codegen.fold import RowFn

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
        #: The states of one group's accumulators (a state function per call, chosen once).
        self.accs_state = accs_state_fn([type(s.factory()) for s in agg.specs])
        # Imported here: sql.codegen imports the compiled query, which imports this module.
        from sql.codegen.fold import row_function

        #: ``row(env, gk, accs, out, kind=dict) -> bool``: append the output row of one group;
        #: False when HAVING rejects it (not for retractions). HAVING is checked at emission
        #: time, so a HAVING subquery sees the tables as they are now. Generated per query
        #: (:mod:`sql.codegen.fold`).
        self.row: RowFn = row_function(agg, outputs, names)

    def add(self, env: Env, out: list[Row]) -> None:
        raise NotImplementedError

    def finish(self, env: Env) -> list[Row]:
        raise NotImplementedError

    def dirty_state(self) -> dict[str, Any | None]:
        raise NotImplementedError

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def new_accumulators(self) -> list[Accumulator]:
        return [s.factory() for s in self.agg.specs]

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
        #: Group key -> (state id, JSON-safe key): computed once per group, not once per batch.
        self._ids: dict[tuple[Any, ...], tuple[str, Any]] = {}
        self.add = self._adder()  # type: ignore[method-assign,assignment]

    def _adder(self) -> Callable[[Env, list[Row]], None]:
        """:meth:`add` with this query's keys, arguments and EMIT bound once (per record cost)."""
        agg = self.agg
        keys = tuple(agg.keys)
        args = tuple(agg.specs[i].arg for i in range(len(agg.specs)))
        groups, dirty, new, row = self.groups, self.dirty, self.new_accumulators, self.row
        changes = self.emit == "changes"
        one = keys[0] if len(keys) == 1 else None

        def add(env: Env, out: list[Row]) -> None:
            gk = (one(env),) if one is not None else tuple([f(env) for f in keys])
            accs = groups.get(gk)
            if accs is None:
                accs = groups[gk] = new()
            for acc, arg in zip(accs, args, strict=False):  # same length by construction
                acc.add(1 if arg is None else arg(env))
            dirty.add(gk)
            if changes:
                row(env, gk, accs, out)

        return add

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
        ids, groups, accs_state = self._ids, self.groups, self.accs_state
        for gk in self.dirty:
            ident = ids.get(gk)
            if ident is None:
                ident = ids[gk] = (GROUP_PREFIX + key_id(gk), encode(list(gk)))
            accs = groups.get(gk)
            # [key, accumulator states]: a list, not a dict of named fields (half the bytes to
            # pickle per group per batch); restore also reads the dict stores written before.
            out[ident[0]] = None if accs is None else [ident[1], accs_state(accs)]
        self.dirty.clear()
        return out

    def restore_state(self, items: Iterable[tuple[str, Any]]) -> None:
        for wid, value in items:
            if value is None:
                continue
            if isinstance(value, dict):  # the layout before lists
                value = [value.get("g"), value.get("a")]
            if not wid.startswith(GROUP_PREFIX) or not isinstance(value, list) or len(value) != 2:
                raise StateError(
                    E_STATE_SHAPE.format(id=wid, reason="not a group of this GROUP BY"), id=wid
                )
            gk = self.load_key(wid, value[0])
            self.groups[gk] = self.load_accs(wid, value[1])
