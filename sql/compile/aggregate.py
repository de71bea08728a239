"""Aggregate calls: found per query level, checked and typed through the function registry."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from sql.bind.scope import Scope, offset_of
from sql.compile.context import CompileContext
from sql.compile.functions import check_args
from sql.errors import (
    E_AGGREGATE_NOT_ALLOWED,
    E_ARITY,
    E_UNSUPPORTED,
    SqlTypeError,
    UnsupportedError,
)
from sql.functions import lookup
from sql.runtime.accumulators import Accumulator, CountStar
from sql.runtime.parts import AggSpec


def find_aggregates(nodes: list[exp.Expr]) -> list[exp.AggFunc]:
    """Aggregate calls of this query level (not inside subqueries), in order."""
    out: list[exp.AggFunc] = []

    def visit(n: exp.Expr) -> None:
        if isinstance(n, (exp.Subquery, exp.Exists, exp.Select)):
            return
        if isinstance(n, exp.In) and n.args.get("query") is not None:
            visit(n.this)
            return
        if isinstance(n, exp.AggFunc):
            out.append(n)
            return
        for child in n.iter_expressions():
            visit(child)

    for node in nodes:
        visit(node)
    return out


def compile_aggregate(ctx: CompileContext, scope: Scope, call: exp.AggFunc) -> AggSpec:
    from sql.compile.expr import ExprCompiler

    fn = lookup(call)
    name = call.key.upper()
    if fn is None or fn.kind != "aggregate" or fn.accumulators is None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"aggregate {name}"), sql=ctx.sql, offset=offset_of(call)
        )
    arg_node = call.this
    distinct = isinstance(arg_node, exp.Distinct)
    args = list(arg_node.expressions) if distinct else [arg_node] if arg_node is not None else []
    args += [a for a in call.expressions if isinstance(a, exp.Expr)] if not distinct else []
    star = not args or isinstance(args[0], exp.Star)
    if len(args) > 1 or (star and (distinct or fn.name != "COUNT")):
        expected = "1 argument" if fn.name != "COUNT" else "* or 1 argument"
        raise SqlTypeError(
            E_ARITY.format(
                name=f"{name}{'(DISTINCT)' * distinct}", expected=expected, got=len(args)
            ),
            sql=ctx.sql,
            offset=offset_of(call) if not args else offset_of(args[-1]),
        )
    if distinct and fn.distinct_accumulators is None:
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"{name}(DISTINCT ...)"), sql=ctx.sql, offset=offset_of(call)
        )
    if star:
        append: Callable[[], Accumulator] = CountStar
        retract: Callable[[], Accumulator] = CountStar
        arg = None
        t = fn.result_type([])
    else:
        (arg_node,) = args
        if find_aggregates([arg_node]):
            raise SqlTypeError(
                E_AGGREGATE_NOT_ALLOWED.format(name=name, clause=f"the argument of {name}"),
                sql=ctx.sql,
                offset=offset_of(arg_node),
            )
        ec = ExprCompiler(ctx, scope, f"the argument of {name}")
        c = ec.compile(arg_node)
        check_args(ec, fn, [arg_node], [c.type])
        arg = c.fn
        append, retract = fn.distinct_accumulators if distinct else fn.accumulators  # type: ignore[misc]
        t = fn.result_type([c.type])
    ctx.types[id(call)] = t
    return AggSpec(name.lower(), arg, append, retract, t, call.sql(dialect="duckdb"))
