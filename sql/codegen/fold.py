"""Generated code for the output row of an aggregate (GROUP BY, windows): one function per query.

Every EMIT CHANGES update and every EMIT FINAL window builds one output row from the group key
and the group's accumulators. :meth:`sql.operators.aggregate.AggregateOperator.row` did it with a
list of results turned into a tuple, a list of output values and ``dict(zip(...))`` — general
code whose loops cost more than the few values it moves. Here that is written out per query as
straight-line code::

    def row(env, gk, accs, out, kind=dict):
        env[3] = gk
        env[4] = (accs[0].result(), accs[1].result())
        if kind is dict and having(env) is not True:   # only with HAVING
            return False
        values = {n0: f0(env), n1: f1(env), n2: f2(env)}
        out.append(values if kind is dict else kind(values))
        return True

the same steps in the same order (accumulator results left to right, HAVING on emitted rows
only, then the outputs left to right), so the same values and the same errors. Names, closures
and HAVING are bound as globals of the generated code; only slot numbers and loop indices are
written into its text. ``tests/unit/sql/test_fold.py`` runs queries with the generated row and
with the general one over hypothesis data and DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sql.runtime import Fn
from sql.runtime.accumulators import Accumulator
from sql.runtime.parts import Aggregation

Row = dict[str, Any]
#: ``row(env, group key, accumulators, out, kind=dict) -> bool`` (False: HAVING rejected it).
RowFn = Callable[..., bool]


def row_source(agg: Aggregation, outputs: Sequence[Fn], names: Sequence[str]) -> str:
    """The source of the row function (for ``explain`` and the tests)."""
    results = "".join(f"accs[{i}].result(), " for i in range(len(agg.specs)))
    items = ", ".join(f"n{i}: f{i}(env)" for i in range(len(outputs)))
    lines = [
        "def row(env, gk, accs, out, kind=dict):",
        f"    env[{int(agg.key_slot)}] = gk",
        f"    env[{int(agg.agg_slot)}] = ({results})",
    ]
    if agg.having is not None:
        lines += [
            "    if kind is dict and having(env) is not True:",
            "        return False",
        ]
    lines += [
        f"    values = {{{items}}}",
        "    out.append(values if kind is dict else kind(values))",
        "    return True",
    ]
    return "\n".join(lines) + "\n"


def row_function(agg: Aggregation, outputs: Sequence[Fn], names: Sequence[str]) -> RowFn:
    """The generated row function of one aggregate (see the module docstring)."""
    if len(outputs) != len(names):
        raise ValueError(f"{len(outputs)} outputs for {len(names)} names")
    namespace: dict[str, Any] = {"having": agg.having}
    for i, (f, n) in enumerate(zip(outputs, names, strict=True)):
        namespace[f"f{i}"], namespace[f"n{i}"] = f, n
    exec(compile(row_source(agg, outputs, names), "<aggregate row>", "exec"), namespace)
    fn: RowFn = namespace["row"]
    return fn


def general_row(
    agg: Aggregation, outputs: Sequence[Fn], names: Sequence[str]
) -> Callable[[list[Any], tuple[Any, ...], list[Accumulator], list[Row], type[Row]], bool]:
    """The reference the generated function is tested against: the loops it replaces."""

    def row(
        env: list[Any],
        gk: tuple[Any, ...],
        accs: list[Accumulator],
        out: list[Row],
        kind: type[Row] = dict,
    ) -> bool:
        env[agg.key_slot] = gk
        env[agg.agg_slot] = tuple([a.result() for a in accs])
        if kind is dict and agg.having is not None and agg.having(env) is not True:
            return False
        out.append(kind(zip(names, [f(env) for f in outputs], strict=False)))
        return True

    return row
