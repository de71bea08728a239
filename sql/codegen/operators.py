"""SQL operators written inline by :class:`~sql.codegen.expr.ExprGen` (one function per kind,
listed in :data:`HANDLERS` by sqlglot node type).

Each is written for the operand types it is usually given (from the static types), guarded by
exact ``type(x) is T`` checks; any other value goes to the very :mod:`sql.logic` function the
closure would call, so NULLs, DECIMAL and three-valued logic stay the closures'. Comparisons and
arithmetic are computed once per path (common subexpressions, keyed by their SQL text).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sql import logic
from sql.codegen.unsupported import Unsupported
from sql.types import DECIMAL_CONTEXT, multiply_decimal

if TYPE_CHECKING:
    from sql.codegen.expr import ExprGen

#: A binary operator function of :mod:`sql.logic` (or the DECIMAL context's).
Op = Callable[..., Any]
_PY: dict[str, type] = {"BIGINT": int, "STRING": str, "DECIMAL": Decimal, "DOUBLE": float}
#: Operand types Python's own operators compare exactly as :mod:`sql.logic` does (no DECIMAL
#: with DOUBLE: logic turns the DECIMAL into a float first; no bool: logic refuses it).
_SAME: frozenset[tuple[type, type]] = frozenset(
    {
        (int, int),
        (str, str),
        (Decimal, Decimal),
        (float, float),
        (int, Decimal),
        (Decimal, int),
        (int, float),
        (float, int),
    }
)
_COMPARE: dict[type[exp.Expr], tuple[str, Op]] = {
    exp.EQ: ("==", logic.eq),
    exp.NEQ: ("!=", logic.ne),
    exp.LT: ("<", logic.lt),
    exp.LTE: ("<=", logic.le),
    exp.GT: (">", logic.gt),
    exp.GTE: (">=", logic.ge),
}
#: ``+ - *``: ints inline, DECIMAL through the exact context (as :mod:`sql.compile.arith`).
_EXACT: dict[type[exp.Expr], tuple[str, Op, Op]] = {
    exp.Add: ("+", logic.add, DECIMAL_CONTEXT.add),
    exp.Sub: ("-", logic.sub, DECIMAL_CONTEXT.subtract),
    exp.Mul: ("*", logic.mul, multiply_decimal),
}
_CALLED: dict[type[exp.Expr], Op] = {
    exp.Div: logic.div,
    exp.IntDiv: logic.intdiv,
    exp.Mod: logic.mod,
    exp.DPipe: logic.concat,
}


def _pytype(g: ExprGen, node: exp.Expr) -> type | None:
    c = g.compiled_of(node)
    if c is not None and c.const:
        return type(c.value)
    if c is None:
        return None
    return _PY.get(c.type.name)


def _const(g: ExprGen, node: exp.Expr) -> bool:
    c = g.compiled_of(node)
    return c is not None and c.const


def _cse(g: ExprGen, node: exp.Expr) -> tuple[Any, str | None]:
    key = ("node", node.sql(dialect="duckdb"))
    return key, g.w.known(key)


def comparison(g: ExprGen, node: exp.Binary) -> str:
    key, known = _cse(g, node)
    if known is not None:
        return known
    sym, fn = _COMPARE[type(node)]
    a, b = g.node(node.this), g.node(node.expression)
    if a == "None" or b == "None":
        return "None"  # both operands were computed: their errors still raise
    ta, tb = _pytype(g, node.this), _pytype(g, node.expression)
    f = g.w.bind(fn, "op")
    t = g.w.temp()
    b_const = _const(g, node.expression)
    nulls = f"{a} is None" if b_const else f"{a} is None or {b} is None"
    if (g.exact.get(a), g.exact.get(b)) in _SAME:
        # Both operands of known types that compare as logic does: NULL is all to test.
        g.w.line(f"{t} = None if {nulls} else {a} {sym} {b}")
    elif ta is not None and tb is not None and (ta, tb) in _SAME:
        guard = f"type({a}) is {g.w.bind(ta, 'T')}"
        if not b_const:
            guard += f" and type({b}) is {g.w.bind(tb, 'T')}"
        g.w.line(f"{t} = None if {nulls} else ({a} {sym} {b} if {guard} else {f}({a}, {b}))")
    else:
        g.w.line(f"{t} = {f}({a}, {b})")
    g.w.remember(key, t)
    return t


def arithmetic(g: ExprGen, node: exp.Binary) -> str:
    key, known = _cse(g, node)
    if known is not None:
        return known
    a, b = g.node(node.this), g.node(node.expression)
    t = g.w.temp()
    exact = _EXACT.get(type(node))
    if exact is None:
        f = g.w.bind(_CALLED[type(node)], "op")
        g.w.line(f"{t} = {f}({a}, {b})")
        g.w.remember(key, t)
        return t
    sym, fn, dec = exact
    f = g.w.bind(fn, "op")
    ta, tb = _pytype(g, node.this), _pytype(g, node.expression)
    ea, eb = g.exact.get(a), g.exact.get(b)
    if ea in (int, Decimal) and eb in (int, Decimal):
        # Both operands of known types: NULL is all to test (logic gives NULL for it).
        ints = ea is int and eb is int
        # A DECIMAL product as multiply_decimal makes it, without its call: the exact
        # context's multiply, then a zero made unsigned (SQL has no -0.00).
        unsigned = not ints and dec is multiply_decimal
        if unsigned:
            dec = DECIMAL_CONTEXT.multiply
        if ints or g.context_ops:
            # Python's operator; on a DECIMAL under the thread's context, which is
            # DECIMAL_CONTEXT here: the same result and signals as the context's method,
            # without its argument parsing.
            fast = f"{a} {sym} {b}"
            g.used_context = g.used_context or not ints
        else:
            fast = f"{g.w.bind(dec, 'op')}({a}, {b})"
        nulls = " or ".join(
            f"{x} is None"
            for x, node_x in ((a, node.this), (b, node.expression))
            if not _const(g, node_x)
        )
        g.w.line(f"{t} = {fast}" if not nulls else f"{t} = None if {nulls} else {fast}")
        if unsigned:
            g.w.line(f"if not {t} and {t} is not None: {t} = {t}.copy_abs()")
        g.exact[t] = int if ints else Decimal
        if all(x in g.finite or tx is int for x, tx in ((a, ea), (b, eb))):
            g.finite.add(t)
    elif ta in (int, Decimal) and tb in (int, Decimal):
        fast = f"{a} {sym} {b}" if ta is int and tb is int else f"{g.w.bind(dec, 'op')}({a}, {b})"
        # A constant's type is known: only the other operand is checked.
        checks = [
            f"type({x}) is {g.w.bind(tx, 'T')}"
            for x, tx, node_x in ((a, ta, node.this), (b, tb, node.expression))
            if not _const(g, node_x)
        ]
        guard = " and ".join(checks) or "True"
        g.w.line(f"{t} = {fast} if {guard} else {f}({a}, {b})")
        # Finite (or NULL) operands give a finite result (the exact context traps overflow).
        if all(x in g.finite or tx is int for x, tx in ((a, ta), (b, tb))):
            g.finite.add(t)
    else:
        g.w.line(f"{t} = {f}({a}, {b})")
    g.w.remember(key, t)
    return t


def neg(g: ExprGen, node: exp.Neg) -> str:
    a = g.node(node.this)
    t = g.w.temp()
    g.w.line(f"{t} = {g.w.bind(logic.neg, 'op')}({a})")
    return t


def null_safe(g: ExprGen, node: exp.Binary) -> str:
    a, b = g.node(node.this), g.node(node.expression)
    t = g.w.temp()
    f = g.w.bind(logic.is_distinct, "op")
    negate = "not " if isinstance(node, exp.NullSafeEQ) else ""
    g.w.line(f"{t} = {negate}{f}({a}, {b})")
    return t


def not_(g: ExprGen, node: exp.Not) -> str:
    a = g.node(node.this)
    t = g.w.temp()
    g.w.line(f"{t} = None if {a} is None else not {a}")
    return t


def is_(g: ExprGen, node: exp.Is) -> str:
    target = node.expression
    if isinstance(target, exp.Null):
        want = "None"
    elif isinstance(target, exp.Boolean):
        want = repr(bool(target.this))
    else:  # the closure compiler refused it already
        raise Unsupported(f"IS {target.sql()}")
    a = g.node(node.this)
    t = g.w.temp()
    g.w.line(f"{t} = {a} is {want}")
    g.never_null.add(t)
    return t


def between(g: ExprGen, node: exp.Between) -> str:
    x = g.node(node.this)
    lo, hi = g.node(node.args["low"]), g.node(node.args["high"])
    t = g.w.temp()
    and_, ge, le = (g.w.bind(f, "op") for f in (logic.and_, logic.ge, logic.le))
    g.w.line(f"{t} = {and_}({ge}({x}, {lo}), {le}({x}, {hi}))")
    return t


def connective(g: ExprGen, node: exp.Connector) -> str:
    """AND / OR in three-valued logic, short-circuit as the closures: terms in order until one
    decides (FALSE for AND, TRUE for OR); else UNKNOWN if any term was."""
    stop = "False" if isinstance(node, exp.And) else "True"
    other = "True" if stop == "False" else "False"
    terms = list(node.flatten())
    t = g.w.temp()
    seen: list[str] = []

    def chain(i: int) -> None:
        v = g.node(terms[i])
        seen.append(v)
        with g.w.block(f"if {v} is {stop}:"):
            g.w.line(f"{t} = {stop}")
        with g.w.block("else:"):
            if i + 1 < len(terms):
                chain(i + 1)
            else:
                unknown = " or ".join(f"{s} is None" for s in seen)
                g.w.line(f"{t} = None if {unknown} else {other}")

    chain(0)
    return t


#: The inline writer of each operator node type; :meth:`ExprGen.node` calls the closure of
#: anything else.
HANDLERS: dict[type[exp.Expr], Callable[[ExprGen, Any], str]] = {
    **{k: comparison for k in _COMPARE},
    **{k: arithmetic for k in (*_EXACT, *_CALLED)},
    exp.Neg: neg,
    exp.NullSafeEQ: null_safe,
    exp.NullSafeNEQ: null_safe,
    exp.Not: not_,
    exp.Is: is_,
    exp.Between: between,
    exp.And: connective,
    exp.Or: connective,
}
