"""The inline ``+ - *`` paths (:mod:`sql.compile.arith`) give exactly what :mod:`sql.logic` gives.

Every pair of operand kinds, the inline ones (int, Decimal) and the ones that fall through
(NULL, bool, float, dates, intervals, text): same value and type, or the same error.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from sql import logic
from sql.compile.arith import binary

VALUES: list[Any] = [
    None,
    0,
    -7,
    10**30,
    Decimal("2.50"),
    Decimal("-0.001"),
    Decimal("12345678901234567890.123456789"),
    1.5,
    True,
    "3",
    dt.date(2024, 1, 31),
    dt.timedelta(days=1),
]


def outcome(fn: Any, a: Any, b: Any) -> tuple[str, Any]:
    try:
        v = fn(a, b)
    except Exception as exc:  # the error itself is the expected answer
        return "error", (type(exc), str(exc))
    return type(v).__name__, v if type(v) is not Decimal else (v, v.as_tuple())


@pytest.mark.parametrize(("name", "op"), [("+", logic.add), ("-", logic.sub), ("*", logic.mul)])
def test_inline_arithmetic_equals_sql_logic(name: str, op: Any) -> None:
    inline = binary(name, op, lambda e: e[0], lambda e: e[1])
    inlined = 0
    for a in VALUES:
        for b in VALUES:
            assert outcome(lambda x, y: inline([x, y]), a, b) == outcome(op, a, b), (a, name, b)
            inlined += type(a) in (int, Decimal) and type(b) in (int, Decimal)
    assert inlined == 36
