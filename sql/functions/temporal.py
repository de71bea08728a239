"""Time functions: processing time, and epoch milliseconds ↔ TIMESTAMP.

Names: ``TIMESTAMP_MILLIS(ms)`` and ``UNIX_MILLIS(ts)`` are BigQuery's pair; ``EPOCH_MS(x)`` is
DuckDB's (either direction, by the argument's type), so the same SQL runs in DuckDB. A TIMESTAMP
is a naive ``datetime`` in UTC (see :mod:`sql.types`); NOW() is the wall clock when the record
is processed, not its event time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlglot import exp

from sql.functions.registry import INTEGER_ARG, Arg, Function, UnsupportedCallError, register
from sql.types import ANY, BIGINT, TIMESTAMP, SqlType, millis_to_timestamp, timestamp_to_millis


def _is_point(t: SqlType) -> bool:
    return t.name in ("TIMESTAMP", "DATE")


def _point_value(v: Any) -> bool:
    return isinstance(v, dt.date)


TIMESTAMP_ARG = Arg("TIMESTAMP", _is_point, _point_value)
EPOCH_ARG = Arg(
    "BIGINT or TIMESTAMP",
    lambda t: t.name == "BIGINT" or _is_point(t),
    lambda v: _point_value(v) or (isinstance(v, int) and not isinstance(v, bool)),
)


def now() -> dt.datetime:
    """Processing time as TIMESTAMP(3): UTC, whole milliseconds."""
    t = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def epoch_ms(v: Any) -> Any:
    """DuckDB's ``epoch_ms``: milliseconds → TIMESTAMP, TIMESTAMP (or DATE) → milliseconds."""
    if isinstance(v, dt.date):
        return timestamp_to_millis(v)
    return millis_to_timestamp(v)


def _epoch_type(types: list[SqlType]) -> SqlType:
    t = types[0] if types else ANY
    if t.name == "BIGINT":
        return TIMESTAMP
    return BIGINT if _is_point(t) else ANY


def _epoch_args(node: exp.Expr) -> list[exp.Expr]:
    """sqlglot reads ``EPOCH_MS(x)`` as ``UnixToTime(x, scale=3)``; other scales (``TO_TIMESTAMP``
    of seconds) are other functions."""
    scale = node.args.get("scale")
    if not (isinstance(scale, exp.Literal) and scale.this == "3"):
        raise UnsupportedCallError("seconds")
    return [node.this]


register(
    Function(
        "NOW",
        (),
        TIMESTAMP,
        "processing time: the wall clock (UTC, milliseconds) when the record is processed,"
        " not its event time (`CURRENT_TIMESTAMP` too)",
        "NOW()",
        impl=now,
        nodes=(exp.CurrentTimestamp,),
        deterministic=False,
    )
)
register(
    Function(
        "TIMESTAMP_MILLIS",
        (INTEGER_ARG,),
        TIMESTAMP,
        "the TIMESTAMP `ms` epoch milliseconds stand for (BigQuery's name)",
        "TIMESTAMP_MILLIS(ms)",
        impl=millis_to_timestamp,
    )
)
register(
    Function(
        "UNIX_MILLIS",
        (TIMESTAMP_ARG,),
        BIGINT,
        "epoch milliseconds of a TIMESTAMP (a DATE: its midnight; BigQuery's name)",
        "UNIX_MILLIS(ts)",
        impl=timestamp_to_millis,
        nodes=(exp.UnixMillis,),
    )
)
register(
    Function(
        "EPOCH_MS",
        (EPOCH_ARG,),
        _epoch_type,
        "DuckDB's: a BIGINT of epoch milliseconds → TIMESTAMP; a TIMESTAMP → BIGINT",
        "EPOCH_MS(x)",
        impl=epoch_ms,
        nodes=(exp.UnixToTime,),
        args_of=_epoch_args,
    )
)
