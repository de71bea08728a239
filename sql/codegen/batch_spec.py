"""The data the batch generator (:mod:`sql.codegen.batch`) takes and gives: how output rows are
encoded, how a declared stream's records decode into a struct, and the generated function.

Separate from the generator so the callers that build these (agents' encoders and decoders)
read the contract without the code writer, and to keep :mod:`sql.codegen.batch` under 400
lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sql.codegen.sink import RecordSink

#: ``batch(records, partition, sink, fails) -> (outputs, tombstones)``.
BatchFn = Callable[[Any, int, RecordSink, list[Any]], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Encoding:
    """How output rows become bytes. ``slow(row)`` is the reference encoder (it raises the
    caller's error for a row it cannot encode); ``fast`` an equivalent for the common rows that
    may raise TypeError/ValueError/OverflowError for others (then ``slow`` decides), or None.
    ``scan_nonfinite``: ``fast`` writes NaN/Infinity decimals as such, ``slow`` refuses them —
    a row whose DECIMAL output may be one (not known finite from its reads and arithmetic) is
    checked, and encoded again by ``slow`` when it is."""

    slow: Callable[[Any], bytes]
    fast: Callable[[Any], bytes] | None = None
    scan_nonfinite: bool = False


@dataclass(frozen=True, slots=True)
class StructDecoding:
    """A declared stream's records decoded into a struct read by attribute (the caller's
    typed decoder, e.g. msgspec): ``lines`` set ``v0`` from ``raw`` (or raise the record's
    error), using the globals in ``namespace``; ``attrs`` maps a column to its attribute.
    Used when the generated code reads only those columns and calls no closure (closures read
    rows as dicts); else the dict decoder runs. ``types``: a column's Python type where every
    value the decoding gives is exactly of it or None (no guards of the operand types then)."""

    attrs: dict[str, str]
    lines: list[str]
    namespace: dict[str, Any]
    row_type: type
    types: dict[str, type] = field(default_factory=dict)


@dataclass(slots=True)
class Generated:
    source: str
    fn: BatchFn
    #: What EXPLAIN says of the function beyond its source: the projected lookups.
    notes: list[str] = field(default_factory=list)
