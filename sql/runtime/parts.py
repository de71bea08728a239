"""What compiling one SELECT level produces for the operators to run: outputs, aggregation,
DISTINCT, ORDER BY and LIMIT (the WHERE conjuncts stay with the planner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sql.runtime import Compiled, Fn
from sql.runtime.accumulators import Accumulator
from sql.types import SqlType


@dataclass(slots=True)
class AggSpec:
    """One aggregate call: its argument closure (None for COUNT(*)) and accumulator factory."""

    name: str
    arg: Callable[[list[Any]], Any] | None
    factory: Callable[[], Accumulator]
    retractable: Callable[[], Accumulator]
    type: SqlType
    sql: str


@dataclass(slots=True)
class Aggregation:
    specs: list[AggSpec]
    keys: list[Fn]
    having: Fn | None
    agg_slot: int
    key_slot: int


@dataclass(slots=True)
class SelectParts:
    outputs: list[Compiled] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    agg: Aggregation | None = None
    distinct: bool = False
    order: list[tuple[Fn, bool]] = field(default_factory=list)  # (key, descending)
    limit: int | None = None
