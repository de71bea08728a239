"""Scalar functions, CASE and CAST: each compiled once into a closure (registry by node type)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sql import logic
from sql.bind.scope import offset_of
from sql.compile.context import Env
from sql.errors import E_UNKNOWN_FUNCTION, E_UNSUPPORTED, BindError, UnsupportedError, suggest
from sql.types import (
    ANY,
    BIGINT,
    BOOLEAN,
    INTERVAL,
    STRING,
    SqlType,
    cast,
    from_datatype,
    unify,
)

if TYPE_CHECKING:
    from sql.compile.expr import Compiled, ExprCompiler

#: Names offered as "did you mean" for an unknown function (aggregates included).
KNOWN_FUNCTIONS = (
    "ABS",
    "UPPER",
    "LOWER",
    "LENGTH",
    "ROUND",
    "TRIM",
    "COALESCE",
    "NULLIF",
    "IF",
    "CAST",
    "TRY_CAST",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
)
_UNITS = {"DAY": 86400, "HOUR": 3600, "MINUTE": 60, "SECOND": 1, "WEEK": 604800}


def compile_function(c: ExprCompiler, node: exp.Expr) -> Compiled:
    from sql.compile.expr import Compiled, constant

    if isinstance(node, exp.Case):
        return _case(c, node)
    if isinstance(node, exp.If):
        cond = c.predicate(node.this).fn
        then = c.compile(node.args["true"])
        other = c.compile(node.args["false"]) if node.args.get("false") else constant(None, ANY)
        ft, fo = then.fn, other.fn
        return Compiled(lambda e: ft(e) if cond(e) is True else fo(e), unify(then.type, other.type))
    if isinstance(node, exp.Coalesce):
        args = [c.compile(node.this)] + [c.compile(a) for a in node.expressions]
        fns = [a.fn for a in args]
        t = args[0].type
        for a in args[1:]:
            t = unify(t, a.type)

        def coalesce(e: Env) -> Any:
            for f in fns:
                v = f(e)
                if v is not None:
                    return v
            return None

        return Compiled(coalesce, t)
    if isinstance(node, exp.Nullif):
        a, b = c.compile(node.this), c.compile(node.expression)
        fa, fb = a.fn, b.fn

        def nullif(e: Env) -> Any:
            x = fa(e)
            return None if logic.eq(x, fb(e)) is True else x

        return Compiled(nullif, a.type)
    if isinstance(node, (exp.Cast, exp.TryCast)):
        target = from_datatype(node.to)
        if target is None:
            raise UnsupportedError(
                E_UNSUPPORTED.format(what=f"CAST to {node.to.sql()}"),
                sql=c.ctx.sql,
                offset=offset_of(node),
            )
        a = c.compile(node.this)
        fa = a.fn
        if isinstance(node, exp.TryCast):

            def try_cast(e: Env) -> Any:
                try:
                    return cast(fa(e), target)
                except Exception:
                    return None

            return Compiled(try_cast, target)
        if a.const:
            try:
                return constant(cast(a.value, target), target)
            except Exception:
                pass
        return Compiled(lambda e: cast(fa(e), target), target)
    if isinstance(node, exp.Interval):
        qty = Decimal(str(node.this.name))
        unit = (node.unit.name if node.unit else "SECOND").upper().rstrip("S")
        if unit not in _UNITS:
            raise UnsupportedError(
                E_UNSUPPORTED.format(what=f"INTERVAL unit {unit}"),
                sql=c.ctx.sql,
                offset=offset_of(node),
            )
        return constant(dt.timedelta(seconds=float(qty * _UNITS[unit])), INTERVAL)
    if isinstance(node, exp.Bracket):
        base = c.compile(node.this).fn
        idx = c.compile(node.expressions[0])
        fi = idx.fn

        def bracket(e: Env) -> Any:
            v, i = base(e), fi(e)
            if isinstance(v, dict):
                return v.get(i)
            if isinstance(v, list) and isinstance(i, int) and -len(v) <= i < len(v):
                return v[i]
            return None

        return Compiled(bracket, ANY)
    if isinstance(node, (exp.JSONExtract, exp.JSONExtractScalar)):
        return _json_path(c, node)
    if isinstance(node, (exp.Like, exp.ILike)):
        subject, pattern = c.compile(node.this), c.compile(node.expression)
        fs, fp = subject.fn, pattern.fn
        ci = isinstance(node, exp.ILike)
        if pattern.const and isinstance(pattern.value, str):
            match = logic.like_matcher(pattern.value, ci)
            return Compiled(lambda e: _null1(match, fs(e)), BOOLEAN)

        def like(s: str, p: str) -> bool:
            return logic.like_matcher(p, ci)(s)

        return Compiled(lambda e: _nulln(like, [fs(e), fp(e)]), BOOLEAN)
    simple = _SIMPLE.get(type(node))
    if simple is not None:
        fn, maybe_t = simple
        args = [c.compile(node.this)] + [c.compile(a) for a in node.expressions]
        if node.args.get("decimals") is not None:
            args.append(c.compile(node.args["decimals"]))
        fns = [a.fn for a in args]
        rt = args[0].type if maybe_t is None else maybe_t
        if len(fns) == 1:
            f0 = fns[0]
            return Compiled(lambda e: _null1(fn, f0(e)), rt)
        return Compiled(lambda e: _nulln(fn, [f(e) for f in fns]), rt)
    name = node.sql_name() if isinstance(node, exp.Func) else type(node).__name__
    if isinstance(node, exp.Anonymous):
        name = str(node.this)
    raise BindError(
        E_UNKNOWN_FUNCTION.format(name=name.upper()),
        sql=c.ctx.sql,
        offset=offset_of(node),
        suggestion=suggest(name, KNOWN_FUNCTIONS),
    )


def _case(c: ExprCompiler, node: exp.Case) -> Compiled:
    from sql.compile.expr import Compiled, constant

    subject = c.compile(node.this) if node.this is not None else None
    whens: list[tuple[Callable[[Env], Any], Callable[[Env], Any]]] = []
    t: SqlType = (
        ANY if not node.args.get("ifs") else c.compile(node.args["ifs"][0].args["true"]).type
    )
    for w in node.args.get("ifs") or []:
        cond = c.compile(w.this)
        then = c.compile(w.args["true"])
        t = unify(t, then.type)
        if subject is not None:
            whens.append((_equals(subject.fn, cond.fn), then.fn))
        else:
            whens.append((cond.fn, then.fn))
    default = c.compile(node.args["default"]) if node.args.get("default") else constant(None, ANY)
    t = unify(t, default.type)
    fd = default.fn

    def case(e: Env) -> Any:
        for cond, then in whens:
            if cond(e) is True:
                return then(e)
        return fd(e)

    return Compiled(case, t)


def _equals(fs: Callable[[Env], Any], fc: Callable[[Env], Any]) -> Callable[[Env], Any]:
    return lambda e: logic.eq(fs(e), fc(e))


def _json_path(c: ExprCompiler, node: exp.Expr) -> Compiled:
    from sql.compile.expr import Compiled

    base = c.compile(node.this).fn
    path = node.expression
    keys: list[Any] = []
    for p in path.expressions if isinstance(path, exp.JSONPath) else []:
        if isinstance(p, exp.JSONPathKey):
            keys.append(str(p.this))
        elif isinstance(p, exp.JSONPathSubscript):
            keys.append(int(p.this))
    as_text = isinstance(node, exp.JSONExtractScalar)

    def extract(e: Env) -> Any:
        v = base(e)
        for k in keys:
            if isinstance(v, dict) and isinstance(k, str):
                v = v.get(k)
            elif isinstance(v, list) and isinstance(k, int) and -len(v) <= k < len(v):
                v = v[k]
            else:
                return None
        if as_text and v is not None and not isinstance(v, str):
            from core.codec import dumps

            return dumps(v).decode()
        return v

    return Compiled(extract, STRING if as_text else ANY)


def _null1(fn: Callable[..., Any], a: Any) -> Any:
    return None if a is None else fn(a)


def _nulln(fn: Callable[..., Any], args: list[Any]) -> Any:
    return None if any(a is None for a in args) else fn(*args)


def _round(v: Any, digits: int = 0) -> Any:
    if isinstance(v, Decimal):
        return v.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if isinstance(v, int):
        return v
    return float(Decimal(repr(v)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


_SIMPLE: dict[type[exp.Expr], tuple[Callable[..., Any], SqlType | None]] = {
    exp.Abs: (abs, None),
    exp.Upper: (lambda s: s.upper(), STRING),
    exp.Lower: (lambda s: s.lower(), STRING),
    exp.Length: (len, BIGINT),
    exp.Round: (_round, None),
    exp.Trim: (lambda s: s.strip(), STRING),
}
