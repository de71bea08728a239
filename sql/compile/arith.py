"""Arithmetic: its operators, the type of each result, and ``+ - *`` with the common operand
types inline (BIGINT, DECIMAL).

:mod:`sql.logic` decides every case (NULLs, bools, DOUBLE with DECIMAL, dates, errors) with a few
type checks and calls; a record whose operands are both ``int`` or ``Decimal`` (or one of each)
gets the same result here without them, anything else falls through to the ``sql.logic``
function. Results are identical: the same exact context for DECIMAL, Python ints for BIGINT.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sql import logic
from sql.runtime import Env, Fn
from sql.types import (
    ANY,
    BIGINT,
    DECIMAL,
    DECIMAL_CONTEXT,
    DOUBLE,
    INTERVAL,
    NULL,
    TIMESTAMP,
    SqlType,
    multiply_decimal,
)

#: sqlglot node → the operation (:mod:`sql.logic`) and its name in errors.
ARITHMETIC: dict[type[exp.Expr], tuple[Callable[[Any, Any], Any], str]] = {
    exp.Add: (logic.add, "+"),
    exp.Sub: (logic.sub, "-"),
    exp.Mul: (logic.mul, "*"),
    exp.Div: (logic.div, "/"),
    exp.IntDiv: (logic.intdiv, "//"),
    exp.Mod: (logic.mod, "%"),
}


def arith_type(op: str, a: SqlType, b: SqlType) -> SqlType | None:
    """The static type of ``a op b``; None: the operands do not go together (a type error)."""
    if a.name == "NULL" and b.name == "NULL":
        return NULL
    if (a.is_any or a.is_numeric) and (b.is_any or b.is_numeric):
        if a.is_any or b.is_any:
            known = b if a.is_any else a
            if op == "/" and known.name == "BIGINT":
                return ANY
            return ANY if known.is_any else known if known.name != "BIGINT" else ANY
        if op == "/" and a.name == "BIGINT" and b.name == "BIGINT":
            return DOUBLE
        if "DOUBLE" in (a.name, b.name):
            return DOUBLE
        if "DECIMAL" in (a.name, b.name):
            return DECIMAL
        return BIGINT
    temporal = {"DATE", "TIMESTAMP"}
    if op in "+-" and {a.name, b.name} <= temporal | {"INTERVAL", "ANY", "NULL"}:
        return _temporal_type(op, a.name, b.name)
    return None


def _temporal_type(op: str, a: str, b: str) -> SqlType:
    """``TIMESTAMP ± INTERVAL`` and ``DATE ± INTERVAL`` are TIMESTAMPs (PostgreSQL, DuckDB),
    ``TIMESTAMP - TIMESTAMP`` and ``INTERVAL ± INTERVAL`` INTERVALs, ``DATE - DATE`` days
    (BIGINT); other mixes are known per value only."""
    point = {"DATE", "TIMESTAMP"}
    if (b == "INTERVAL" and a in point) or (op == "+" and a == "INTERVAL" and b in point):
        return TIMESTAMP
    if a == b == "INTERVAL" or (op == "-" and a == b == "TIMESTAMP"):
        return INTERVAL
    if op == "-" and a == b == "DATE":
        return BIGINT
    return ANY


def binary(name: str, op: Callable[[Any, Any], Any], fa: Fn, fb: Fn) -> Fn:
    """``op(fa(env), fb(env))``, specialised for ``name`` in ``+ - *``."""
    if name == "*":
        dmul = multiply_decimal

        def mul(e: Env) -> Any:
            a, b = fa(e), fb(e)
            ta, tb = type(a), type(b)
            if (ta is Decimal or ta is int) and (tb is Decimal or tb is int):
                return a * b if ta is int and tb is int else dmul(a, b)
            return op(a, b)

        return mul
    if name == "+":
        dadd = DECIMAL_CONTEXT.add

        def add(e: Env) -> Any:
            a, b = fa(e), fb(e)
            ta, tb = type(a), type(b)
            if (ta is Decimal or ta is int) and (tb is Decimal or tb is int):
                return a + b if ta is int and tb is int else dadd(a, b)
            return op(a, b)

        return add
    if name == "-":
        dsub = DECIMAL_CONTEXT.subtract

        def sub(e: Env) -> Any:
            a, b = fa(e), fb(e)
            ta, tb = type(a), type(b)
            if (ta is Decimal or ta is int) and (tb is Decimal or tb is int):
                return a - b if ta is int and tb is int else dsub(a, b)
            return op(a, b)

        return sub
    return lambda e: op(fa(e), fb(e))
