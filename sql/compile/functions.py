"""Function calls (through the registry) and the call-like syntax: CASE, CAST, INTERVAL, LIKE,
subscripts and JSON paths. Each compiles once into a closure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sql import logic
from sql.bind.scope import offset_of
from sql.errors import (
    E_ARG_TYPE,
    E_ARG_VALUE,
    E_ARITY,
    E_CAST_HINT,
    E_FUNCTION_FAILED,
    E_TYPE_MISMATCH,
    E_UNKNOWN_FUNCTION,
    E_UNSUPPORTED,
    BindError,
    RuntimeTypeError,
    SqlRuntimeError,
    SqlTypeError,
    UnsupportedError,
    suggest,
)
from sql.functions import (
    Function,
    Null,
    UnsupportedCallError,
    call_args,
    call_name,
    lookup,
    names,
)
from sql.runtime import Compiled, Env, Fn, constant
from sql.types import (
    ANY,
    BOOLEAN,
    INTERVAL,
    STRING,
    SqlType,
    cast,
    from_datatype,
    unify,
)

if TYPE_CHECKING:
    from sql.compile.expr import ExprCompiler

_UNITS: dict[str, int | Decimal] = {
    "WEEK": 604800,
    "DAY": 86400,
    "HOUR": 3600,
    "MINUTE": 60,
    "SECOND": 1,
    "MILLISECOND": Decimal("0.001"),  # TIMESTAMP(3) event time moves in milliseconds
    "MICROSECOND": Decimal("0.000001"),
}
#: What a function's Python implementation may raise on a value it cannot take: turned into a
#: per-record RuntimeTypeError naming the function (never a bare Python error in a worker).
_VALUE_ERRORS = (TypeError, ValueError, AttributeError, ArithmeticError, IndexError, KeyError)


def compile_function(c: ExprCompiler, node: exp.Expr) -> Compiled:
    fn = lookup(node)
    if fn is not None and fn.kind == "scalar":
        return compile_call(c, node, fn)
    syntax = _SYNTAX.get(type(node))
    if syntax is not None:
        return syntax(c, node)
    for klass, handler in _SYNTAX.items():
        if isinstance(node, klass):
            return handler(c, node)
    name = call_name(node)
    raise BindError(
        E_UNKNOWN_FUNCTION.format(name=name),
        sql=c.ctx.sql,
        offset=offset_of(node),
        suggestion=suggest(name, names()),
    )


def check_call(c: ExprCompiler, node: exp.Expr, fn: Function) -> list[exp.Expr]:
    """The call's argument expressions, after checking their number (types: :func:`check_args`)."""
    try:
        args = call_args(node, fn)
    except UnsupportedCallError as exc:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"{fn.name} with {exc.key.upper()}"),
            sql=c.ctx.sql,
            offset=offset_of(node),
        ) from None
    lo, hi = fn.min_args, fn.max_args
    if len(args) < lo or (hi is not None and len(args) > hi):
        raise BindError(
            E_ARITY.format(name=fn.name, expected=fn.arity_text, got=len(args)),
            sql=c.ctx.sql,
            offset=offset_of(node),
        )
    return args


def check_args(c: ExprCompiler, fn: Function, args: list[exp.Expr], types: list[SqlType]) -> None:
    """A static mismatch is a compile error with the argument's position and a CAST to write."""
    for i, (arg, t) in enumerate(zip(args, types, strict=True)):
        kind = fn.arg_kind(i)
        if kind.check_type(t):
            continue
        message = E_ARG_TYPE.format(name=fn.name, want=kind.label, n=i + 1, got=t)
        if kind.cast_to is not None:
            message += E_CAST_HINT.format(call=f"CAST({arg.sql()} AS {kind.cast_to})")
        raise SqlTypeError(message, sql=c.ctx.sql, offset=offset_of(arg))


def compile_call(c: ExprCompiler, node: exp.Expr, fn: Function) -> Compiled:
    args = check_call(c, node, fn)
    compiled = [c.compile(a) for a in args]
    types = [a.type for a in compiled]
    check_args(c, fn, args, types)
    rt = fn.result_type(types)
    fns = [a.fn for a in compiled]
    if fn.build is not None:
        return Compiled(fn.build(fns), rt)
    assert fn.impl is not None
    call = _guarded(fn, [a.type for a in compiled])
    if fn.deterministic and all(a.const for a in compiled):
        values = [a.value for a in compiled]
        try:
            return constant(call(values), rt)
        except SqlRuntimeError:
            pass  # raised per record, as the same call on column values would
    if len(fns) == 1:
        f0 = fns[0]
        return Compiled(lambda e: call([f0(e)]), rt)
    return Compiled(lambda e: call([f(e) for f in fns]), rt)


def _guarded(fn: Function, types: list[SqlType]) -> Callable[[list[Any]], Any]:
    """``fn.impl`` on a list of values, with its NULL policy and run-time checks for the
    arguments whose static type is unknown."""
    impl = fn.impl
    assert impl is not None
    strict = fn.null is Null.STRICT
    checks = [(i, fn.arg_kind(i)) for i, t in enumerate(types) if t.is_any and fn.arg_kind(i).label]

    def call(values: list[Any]) -> Any:
        if strict and None in values:
            return None
        for i, kind in checks:
            v = values[i]
            if v is not None and not kind.value_ok(v):
                raise RuntimeTypeError(
                    E_ARG_VALUE.format(name=fn.name, want=kind.label, n=i + 1, value=v)
                )
        try:
            return impl(*values)
        except SqlRuntimeError:
            raise
        except _VALUE_ERRORS as exc:
            raise RuntimeTypeError(
                E_FUNCTION_FAILED.format(name=fn.name, args=tuple(values), reason=exc)
            ) from None

    return call


def _case(c: ExprCompiler, node: exp.Case) -> Compiled:
    subject = c.compile(node.this) if node.this is not None else None
    whens: list[tuple[Fn, Fn]] = []
    t: SqlType | None = None  # each branch compiled once: nested CASEs stay linear
    for w in node.args.get("ifs") or []:
        then = c.compile(w.args["true"])
        t = then.type if t is None else unify(t, then.type)
        if subject is not None:
            cond = c.compile(w.this)
            whens.append((_equals(subject.fn, cond.fn), then.fn))
        else:
            whens.append((c.predicate(w.this).fn, then.fn))
    default = c.compile(node.args["default"]) if node.args.get("default") else constant(None, ANY)
    t = unify(t if t is not None else ANY, default.type)
    fd = default.fn

    def case(e: Env) -> Any:
        for cond, then in whens:
            if cond(e) is True:
                return then(e)
        return fd(e)

    return Compiled(case, t)


def _equals(fs: Fn, fc: Fn) -> Fn:
    return lambda e: logic.eq(fs(e), fc(e))


def _cast(c: ExprCompiler, node: exp.Cast) -> Compiled:
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


def _interval(c: ExprCompiler, node: exp.Interval) -> Compiled:
    text = str(node.this.name) if node.this is not None else ""
    unit = (node.unit.name if node.unit else "SECOND").upper().rstrip("S")
    if unit not in _UNITS:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"INTERVAL unit {unit}"),
            sql=c.ctx.sql,
            offset=offset_of(node),
        )
    try:
        qty = Decimal(text.strip())
        seconds = float(qty * _UNITS[unit])
        value = dt.timedelta(seconds=seconds)
    except (InvalidOperation, ValueError, OverflowError):
        raise SqlTypeError(
            f"invalid INTERVAL quantity {text!r}: expected a number such as INTERVAL '5' {unit}",
            sql=c.ctx.sql,
            offset=offset_of(node),
        ) from None
    return constant(value, INTERVAL)


def _bracket(c: ExprCompiler, node: exp.Bracket) -> Compiled:
    if len(node.expressions) != 1:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what="a subscript with other than one index"),
            sql=c.ctx.sql,
            offset=offset_of(node),
        )
    base = c.compile(node.this).fn
    fi = c.compile(node.expressions[0]).fn

    def bracket(e: Env) -> Any:
        v, i = base(e), fi(e)
        if isinstance(v, dict):
            try:
                return v.get(i)
            except TypeError:  # an unhashable index: no key equals it
                return None
        if isinstance(v, list) and type(i) is int and -len(v) <= i < len(v):
            return v[i]
        return None

    return Compiled(bracket, ANY)


def _json_path(c: ExprCompiler, node: exp.Expr) -> Compiled:
    base = c.compile(node.this).fn
    path = node.expression
    keys: list[Any] = []
    for p in path.expressions if isinstance(path, exp.JSONPath) else []:
        if isinstance(p, exp.JSONPathKey):
            keys.append(str(p.this))
        elif isinstance(p, exp.JSONPathSubscript):
            if not isinstance(p.this, int):
                raise UnsupportedError(
                    E_UNSUPPORTED.format(what=f"JSON path subscript {p.this!r}"),
                    sql=c.ctx.sql,
                    offset=offset_of(node),
                )
            keys.append(p.this)
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


def _like(c: ExprCompiler, node: exp.Like | exp.ILike) -> Compiled:
    op = "ILIKE" if isinstance(node, exp.ILike) else "LIKE"
    subject, pattern = c.compile(node.this), c.compile(node.expression)
    for side, arg in ((subject, node.this), (pattern, node.expression)):
        if not (side.type.is_any or side.type == STRING):
            raise SqlTypeError(
                E_TYPE_MISMATCH.format(op=op, left=subject.type, right=pattern.type)
                + E_CAST_HINT.format(call=f"CAST({arg.sql()} AS VARCHAR)"),
                sql=c.ctx.sql,
                offset=offset_of(arg),
            )
    fs, fp = subject.fn, pattern.fn
    ci = op == "ILIKE"
    if pattern.const and isinstance(pattern.value, str):
        match = logic.like_matcher(pattern.value, ci)

        def like_const(e: Env) -> Any:
            s = fs(e)
            if s is None:
                return None
            if type(s) is not str:
                raise RuntimeTypeError(E_ARG_VALUE.format(name=op, want="VARCHAR", n=1, value=s))
            return match(s)

        return Compiled(like_const, BOOLEAN)

    def like(e: Env) -> Any:
        s, p = fs(e), fp(e)
        if s is None or p is None:
            return None
        for n, v in ((1, s), (2, p)):
            if type(v) is not str:
                raise RuntimeTypeError(E_ARG_VALUE.format(name=op, want="VARCHAR", n=n, value=v))
        return logic.like_matcher(p, ci)(s)

    return Compiled(like, BOOLEAN)


#: Call-like syntax that is not a registry function, by sqlglot node class.
_SYNTAX: dict[type[exp.Expr], Callable[[ExprCompiler, Any], Compiled]] = {
    exp.Case: _case,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.Interval: _interval,
    exp.Bracket: _bracket,
    exp.JSONExtract: _json_path,
    exp.JSONExtractScalar: _json_path,
    exp.Like: _like,
    exp.ILike: _like,
}
