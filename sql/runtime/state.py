"""Accumulator state as JSON-safe values (to persist aggregates) and accumulator merging.

The encoding is lossless: a Decimal stays a Decimal with its digits and scale (written as a
string), big integers and non-finite floats survive, timestamps and dates keep their type. Every
encoded value is made of ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``list`` and
``dict`` with string keys, so any JSON encoder (orjson included) can write it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sql.errors import StateError
from sql.runtime.accumulators import (
    Accumulator,
    CountDistinct,
    CountStar,
    Min,
    OrderedBag,
    Sum,
)
from sql.types import DECIMAL_CONTEXT

E_STATE_VALUE = "cannot persist a value of type {type} in aggregate state"
E_STATE_TAG = "unknown tagged value {value!r} in aggregate state"
E_STATE_ACC = "cannot persist accumulator {type}"

_INT64 = 2**63


def encode(v: Any) -> Any:
    """A JSON-safe form of a SQL value (group keys, MIN/MAX values, distinct values)."""
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        return v if -_INT64 <= v < _INT64 else {"$i": str(v)}
    if t is float:
        return v if math.isfinite(v) else {"$f": repr(v)}
    if t is Decimal:
        return {"$d": str(v)}
    if t is dt.datetime:
        return {"$ts": v.isoformat()}
    if t is dt.date:
        return {"$date": v.isoformat()}
    if t is dt.time:
        return {"$time": v.isoformat()}
    if t is dt.timedelta:
        return {"$td": [v.days, v.seconds, v.microseconds]}
    if t is tuple:
        return {"$tuple": [encode(x) for x in v]}
    if t is list:
        return [encode(x) for x in v]
    if t is dict:
        return {"$map": [[encode(k), encode(x)] for k, x in v.items()]}
    raise StateError(E_STATE_VALUE.format(type=t.__name__), value=repr(v))


def decode(v: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) != 1:
        raise StateError(E_STATE_TAG.format(value=v))
    ((tag, x),) = v.items()
    if tag == "$i":
        return int(x)
    if tag == "$f":
        return float(x)
    if tag == "$d":
        return Decimal(x)
    if tag == "$ts":
        return dt.datetime.fromisoformat(x)
    if tag == "$date":
        return dt.date.fromisoformat(x)
    if tag == "$time":
        return dt.time.fromisoformat(x)
    if tag == "$td":
        return dt.timedelta(days=x[0], seconds=x[1], microseconds=x[2])
    if tag == "$tuple":
        return tuple(decode(y) for y in x)
    if tag == "$map":
        return {decode(k): decode(y) for k, y in x}
    raise StateError(E_STATE_TAG.format(value=v))


def _counts(counts: dict[Any, int]) -> list[list[Any]]:
    return [[encode(k), n] for k, n in counts.items()]


def to_state(acc: Accumulator) -> Any:
    """The JSON-safe state of one accumulator."""
    if isinstance(acc, Sum):  # and Avg
        return _sum_state(acc)
    if isinstance(acc, CountStar):  # and Count
        return acc.n
    if isinstance(acc, Min):  # and Max
        return encode(acc.best)
    if isinstance(acc, (OrderedBag, CountDistinct)):
        return _counts(acc.counts)
    raise StateError(E_STATE_ACC.format(type=type(acc).__name__))


def _sum_state(acc: Any) -> Any:
    # The exact part is always a Decimal: written as its bare string (no tag to build or read);
    # :func:`load_state` still reads the tagged form stores written before this one hold.
    ints, exact = acc.ints, acc.exact
    if type(ints) is not int or not -_INT64 <= ints < _INT64:
        ints = encode(ints)
    return [
        acc.n,
        ints,
        str(exact) if type(exact) is Decimal else encode(exact),
        acc.floats,
        acc.decimals,
    ]


def _count_state(acc: Any) -> Any:
    return acc.n


def state_fn(kind: type[Accumulator]) -> Callable[[Accumulator], Any]:
    """:func:`to_state` for accumulators of one class, without finding the class each time
    (an aggregate's accumulators are of one class per call: chosen once per query)."""
    if issubclass(kind, Sum):
        return _sum_state
    if issubclass(kind, CountStar):
        return _count_state
    return to_state


def accs_state_fn(kinds: Sequence[type[Accumulator]]) -> Callable[[list[Accumulator]], list[Any]]:
    """The states of one group's accumulators (one class per aggregate call, chosen once per
    query): ``[state(accs[0]), state(accs[1]), ...]`` written out as one function — a COUNT's
    and a SUM's state inline (the state of every dirty group or window, every batch), others
    through their state function."""
    ns: dict[str, Any] = {"Decimal": Decimal, "encode": encode, "LO": -_INT64, "HI": _INT64}
    lines = ["def accs_state(accs):"]
    items = []
    for i, kind in enumerate(kinds):
        a = f"a{i}"
        lines.append(f"    {a} = accs[{i}]")
        if issubclass(kind, Sum):
            # _sum_state: [n, ints (64-bit, else tagged), exact as its string, floats, decimals].
            lines += [
                f"    i{i} = {a}.ints",
                f"    if type(i{i}) is not int or not LO <= i{i} < HI:",
                f"        i{i} = encode(i{i})",
                f"    e{i} = {a}.exact",
                f"    e{i} = str(e{i}) if type(e{i}) is Decimal else encode(e{i})",
            ]
            items.append(f"[{a}.n, i{i}, e{i}, {a}.floats, {a}.decimals]")
        elif issubclass(kind, CountStar):
            items.append(f"{a}.n")
        else:
            ns[f"f{i}"] = state_fn(kind)
            items.append(f"f{i}({a})")
    lines.append(f"    return [{', '.join(items)}]")
    exec(compile("\n".join(lines) + "\n", "<accumulator states>", "exec"), ns)
    fn: Callable[[list[Accumulator]], list[Any]] = ns["accs_state"]
    return fn


def load_state(acc: Accumulator, state: Any) -> Accumulator:
    """Fill a fresh accumulator (from its spec's factory) with a state from :func:`to_state`."""
    if isinstance(acc, Sum):
        acc.n, ints, exact, acc.floats, acc.decimals = state
        acc.ints = decode(ints)
        acc.exact = Decimal(exact) if type(exact) is str else decode(exact)
    elif isinstance(acc, CountStar):
        acc.n = int(state)
    elif isinstance(acc, Min):
        acc.best = decode(state)
    elif isinstance(acc, OrderedBag):
        for k, n in state:
            acc.add_count(decode(k), n)
    elif isinstance(acc, CountDistinct):
        acc.counts = {decode(k): n for k, n in state}
    else:
        raise StateError(E_STATE_ACC.format(type=type(acc).__name__))
    return acc


def merge(into: Accumulator, other: Accumulator) -> None:
    """Fold ``other`` into ``into`` (same aggregate): session windows merging."""
    if isinstance(into, Sum) and isinstance(other, Sum):
        into.n += other.n
        into.ints += other.ints
        into.exact = DECIMAL_CONTEXT.add(into.exact, other.exact)
        into.floats += other.floats
        into.decimals += other.decimals
    elif isinstance(into, CountStar) and isinstance(other, CountStar):
        into.n += other.n
    elif isinstance(into, Min) and isinstance(other, Min):
        into.add(other.best)
    elif isinstance(into, OrderedBag) and isinstance(other, OrderedBag):
        for v, n in other.counts.items():
            into.add_count(v, n)
    elif isinstance(into, CountDistinct) and isinstance(other, CountDistinct):
        for v, n in other.counts.items():
            into.counts[v] = into.counts.get(v, 0) + n
    else:
        raise StateError(E_STATE_ACC.format(type=type(into).__name__))
