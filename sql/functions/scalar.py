"""Scalar functions: strings, numbers and conditionals. One :func:`register` call each."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlglot import exp

from sql import logic
from sql.functions.registry import (
    ANY_ARG,
    BOOLEAN_ARG,
    INTEGER_ARG,
    NUMERIC_ARG,
    STRING_ARG,
    Function,
    Null,
    register,
    same_type,
)
from sql.runtime import Env, Fn
from sql.types import BIGINT, STRING, SqlType, unify


def _round(v: Any, digits: int = 0) -> Any:
    if isinstance(v, int):
        return v
    q = Decimal(1).scaleb(-digits)
    if isinstance(v, Decimal):
        return v.quantize(q, rounding=ROUND_HALF_UP)
    return float(Decimal(repr(v)).quantize(q, rounding=ROUND_HALF_UP))


def _trim(s: str, chars: str | None = None) -> str:
    return s.strip() if chars is None else s.strip(chars)


def _coalesce(fns: list[Fn]) -> Fn:
    def coalesce(e: Env) -> Any:
        for f in fns:
            v = f(e)
            if v is not None:
                return v
        return None

    return coalesce


def _if(fns: list[Fn]) -> Fn:
    cond, then = fns[0], fns[1]
    other = fns[2] if len(fns) > 2 else (lambda e: None)
    return lambda e: then(e) if cond(e) is True else other(e)


def _nullif(a: Any, b: Any) -> Any:
    return None if a is not None and logic.eq(a, b) is True else a


def _unify_all(types: list[SqlType]) -> SqlType:
    t = types[0]
    for other in types[1:]:
        t = unify(t, other)
    return t


register(
    Function(
        "ABS",
        (NUMERIC_ARG,),
        same_type,
        "absolute value",
        "ABS(n)",
        impl=abs,
        nodes=(exp.Abs,),
    )
)
register(
    Function(
        "ROUND",
        (NUMERIC_ARG, INTEGER_ARG),
        same_type,
        "rounded half away from zero to `d` decimal places (default 0); exact for DECIMAL",
        "ROUND(n [, d])",
        impl=_round,
        optional=1,
        nodes=(exp.Round,),
    )
)
register(
    Function(
        "UPPER",
        (STRING_ARG,),
        STRING,
        "upper case",
        "UPPER(s)",
        impl=str.upper,
        nodes=(exp.Upper,),
    )
)
register(
    Function(
        "LOWER",
        (STRING_ARG,),
        STRING,
        "lower case",
        "LOWER(s)",
        impl=str.lower,
        nodes=(exp.Lower,),
    )
)
register(
    Function(
        "LENGTH",
        (STRING_ARG,),
        BIGINT,
        "number of characters (`LEN` too)",
        "LENGTH(s)",
        impl=len,
        nodes=(exp.Length,),
    )
)
register(
    Function(
        "TRIM",
        (STRING_ARG, STRING_ARG),
        STRING,
        "`s` without leading and trailing whitespace (or the characters of `chars`)",
        "TRIM(s [, chars])",
        impl=_trim,
        optional=1,
        nodes=(exp.Trim,),
    )
)
register(
    Function(
        "COALESCE",
        (ANY_ARG,),
        _unify_all,
        "the first non-NULL argument; later arguments are not evaluated",
        "COALESCE(x, ...)",
        build=_coalesce,
        null=Null.LAZY,
        variadic=True,
        nodes=(exp.Coalesce,),
    )
)
register(
    Function(
        "IF",
        (BOOLEAN_ARG, ANY_ARG, ANY_ARG),
        lambda ts: unify(ts[1], ts[2]) if len(ts) > 2 else ts[1],
        "`a` when `cond` is TRUE, else `b` (NULL when omitted)",
        "IF(cond, a [, b])",
        build=_if,
        null=Null.LAZY,
        optional=1,
        nodes=(exp.If,),
    )
)
register(
    Function(
        "NULLIF",
        (ANY_ARG, ANY_ARG),
        same_type,
        "NULL when `a = b`, else `a`",
        "NULLIF(a, b)",
        impl=_nullif,
        null=Null.VALUES,
        nodes=(exp.Nullif,),
    )
)
