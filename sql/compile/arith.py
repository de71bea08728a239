"""``+``, ``-`` and ``*`` with the common operand types inline (BIGINT, DECIMAL).

:mod:`sql.logic` decides every case (NULLs, bools, DOUBLE with DECIMAL, dates, errors) with a few
type checks and calls; a record whose operands are both ``int`` or ``Decimal`` (or one of each)
gets the same result here without them, anything else falls through to the ``sql.logic``
function. Results are identical: the same exact context for DECIMAL, Python ints for BIGINT.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sql.runtime import Env, Fn
from sql.types import DECIMAL_CONTEXT


def binary(name: str, op: Callable[[Any, Any], Any], fa: Fn, fb: Fn) -> Fn:
    """``op(fa(env), fb(env))``, specialised for ``name`` in ``+ - *``."""
    if name == "*":
        dmul = DECIMAL_CONTEXT.multiply

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
