"""Aggregate functions: their argument kinds, result types and accumulators."""

from __future__ import annotations

from sqlglot import exp

from sql.functions.registry import ANY_ARG, NUMERIC_ARG, Function, Null, register
from sql.runtime.accumulators import (
    Avg,
    Count,
    CountDistinct,
    Max,
    Min,
    OrderedBag,
    Sum,
)
from sql.types import ANY, BIGINT, DECIMAL, DOUBLE, SqlType


def _sum_type(types: list[SqlType]) -> SqlType:
    t = types[0] if types else ANY
    return ANY if t.is_any else DECIMAL if t.name == "DECIMAL" else t


def _avg_type(types: list[SqlType]) -> SqlType:
    t = types[0] if types else ANY
    return ANY if t.is_any else DECIMAL if t.name == "DECIMAL" else DOUBLE


def _same(types: list[SqlType]) -> SqlType:
    return types[0] if types else ANY


def _count_type(types: list[SqlType]) -> SqlType:
    return BIGINT


register(
    Function(
        "COUNT",
        (ANY_ARG,),
        _count_type,
        "rows (`COUNT(*)`), non-NULL values, or distinct non-NULL values (`COUNT(DISTINCT x)`)",
        "COUNT(*), COUNT([DISTINCT] x)",
        null=Null.SKIP,
        nodes=(exp.Count,),
        kind="aggregate",
        accumulators=(Count, Count),
        distinct_accumulators=(CountDistinct, CountDistinct),
    )
)
register(
    Function(
        "SUM",
        (NUMERIC_ARG,),
        _sum_type,
        "exact sum (DOUBLE inputs summed exactly, rounded once); NULL over no rows",
        "SUM(n)",
        null=Null.SKIP,
        nodes=(exp.Sum,),
        kind="aggregate",
        accumulators=(Sum, Sum),
    )
)
register(
    Function(
        "AVG",
        (NUMERIC_ARG,),
        _avg_type,
        "mean: DECIMAL for DECIMAL input, else DOUBLE; NULL over no rows",
        "AVG(n)",
        null=Null.SKIP,
        nodes=(exp.Avg,),
        kind="aggregate",
        accumulators=(Avg, Avg),
    )
)
register(
    Function(
        "MIN",
        (ANY_ARG,),
        _same,
        "smallest value (retractable under table changes via an ordered multiset)",
        "MIN(x)",
        null=Null.SKIP,
        nodes=(exp.Min,),
        kind="aggregate",
        accumulators=(Min, lambda: OrderedBag(False)),
    )
)
register(
    Function(
        "MAX",
        (ANY_ARG,),
        _same,
        "largest value (retractable under table changes via an ordered multiset)",
        "MAX(x)",
        null=Null.SKIP,
        nodes=(exp.Max,),
        kind="aggregate",
        accumulators=(Max, lambda: OrderedBag(True)),
    )
)
