"""Expressions → Python closures, compiled once per query.

``compile_expr(node)`` returns a :class:`Compiled`: a closure ``fn(env) -> value`` plus the static
type. A record never walks the sqlglot tree: every dispatch on node kind, operand type and constant
happens here, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sql import logic
from sql.bind.scope import Scope, offset_of
from sql.compile.arith import ARITHMETIC, arith_type, binary
from sql.compile.columns import column_reader, inline_read, scaled_read
from sql.compile.context import AggBinding, CompileContext
from sql.errors import (
    E_AGGREGATE_NOT_ALLOWED,
    E_NOT_BOOLEAN,
    E_NOT_GROUPED,
    E_TYPE_MISMATCH,
    E_UNSUPPORTED,
    SqlTypeError,
    UnsupportedError,
)
from sql.runtime import Compiled, Env, Read, constant
from sql.types import (
    ANY,
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INTERVAL,
    NULL,
    STRING,
    SqlType,
    comparable,
    decimal_type,
    from_datatype,
    mismatch_hint,
)

_EMPTY: dict[str, Any] = {}


_COMPARISONS: dict[type[exp.Expr], tuple[Callable[[Any, Any], Any], str]] = {
    exp.EQ: (logic.eq, "="),
    exp.NEQ: (logic.ne, "<>"),
    exp.LT: (logic.lt, "<"),
    exp.LTE: (logic.le, "<="),
    exp.GT: (logic.gt, ">"),
    exp.GTE: (logic.ge, ">="),
}


class ExprCompiler:
    """Compiles expressions of one scope and clause (the clause names errors: WHERE, HAVING...)."""

    def __init__(
        self, ctx: CompileContext, scope: Scope, clause: str, agg: AggBinding | None = None
    ) -> None:
        self.ctx = ctx
        self.scope = scope
        self.clause = clause
        self.agg = agg

    # -- helpers --------------------------------------------------------------------------------
    def _type_error(self, node: exp.Expr, op: str, a: SqlType, b: SqlType) -> SqlTypeError:
        left, right = node.args.get("this"), node.args.get("expression")
        hint = mismatch_hint(
            a,
            b,
            left.sql(dialect="duckdb") if isinstance(left, exp.Expr) else "x",
            right.sql(dialect="duckdb") if isinstance(right, exp.Expr) else "y",
        )
        return SqlTypeError(
            E_TYPE_MISMATCH.format(op=op, left=a, right=b) + hint,
            sql=self.ctx.sql,
            offset=offset_of(node),
        )

    def predicate(self, node: exp.Expr) -> Compiled:
        """A condition (WHERE, ON, HAVING): must be BOOLEAN (or of unknown type)."""
        c = self.compile(node)
        if not (c.type.is_any or c.type == BOOLEAN):
            raise SqlTypeError(
                E_NOT_BOOLEAN.format(clause=self.clause, type=c.type),
                sql=self.ctx.sql,
                offset=offset_of(node),
            )
        return c

    # -- dispatch -------------------------------------------------------------------------------
    def compile(self, node: exp.Expr) -> Compiled:
        c = self._compile(node)
        if self.ctx is not None:
            self.ctx.note(node, c)
        return c

    def _compile(self, node: exp.Expr) -> Compiled:
        if self.agg is not None:
            key_pos = self.agg.keys.get(group_text(node))
            if key_pos is not None and not isinstance(node, exp.Literal):
                slot = self.agg.key_slot
                return Compiled(lambda e: e[slot][key_pos], self._key_type(node))
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
        for klass, h in _HANDLERS.items():
            if isinstance(node, klass):
                return h(self, node)
        from sql.compile.functions import compile_function

        return compile_function(self, node)

    def _key_type(self, node: exp.Expr) -> SqlType:
        saved, self.agg = self.agg, None
        try:
            return self.compile(node).type
        finally:
            self.agg = saved

    def column(self, node: exp.Column) -> Compiled:
        ref = self.scope.resolve(node)
        if self.agg is not None and ref.relation is not None and ref.alias_fn is None:
            agg_scope = self.agg.scope
            if agg_scope is not None and ref.relation in agg_scope.relations:
                raise SqlTypeError(
                    E_NOT_GROUPED.format(name=node.sql()), sql=self.ctx.sql, offset=offset_of(node)
                )
        typed = self.ctx is not None and self.ctx.typed_streams
        return Compiled(
            column_reader(ref, typed),
            ref.type if not ref.path else ANY,
            read=inline_read(ref, typed),
            scaled=scaled_read(ref, typed),
        )

    def literal(self, node: exp.Literal) -> Compiled:
        text = node.this
        if node.is_string:
            return constant(text, STRING)
        if text.lstrip("-").isdigit():
            return constant(int(text), BIGINT)
        d = Decimal(text)
        if "e" in text.lower():
            return constant(float(text), DOUBLE)
        return constant(d, decimal_type(d))

    def boolean(self, node: exp.Boolean) -> Compiled:
        return constant(bool(node.this), BOOLEAN)

    def null(self, node: exp.Null) -> Compiled:
        return constant(None, NULL)

    def paren(self, node: exp.Expr) -> Compiled:
        return self.compile(node.this)

    def comparison(self, node: exp.Binary) -> Compiled:
        op, name = _COMPARISONS[type(node)]
        a, b = self.compile(node.this), self.compile(node.expression)
        if not comparable(a.type, b.type):
            raise self._type_error(node, name, a.type, b.type)
        fa, fb = a.fn, b.fn
        if b.const:
            bv = b.value
            return Compiled(lambda e: op(fa(e), bv), BOOLEAN)
        return Compiled(lambda e: op(fa(e), fb(e)), BOOLEAN)

    def null_safe(self, node: exp.Binary) -> Compiled:
        a, b = self.compile(node.this), self.compile(node.expression)
        if not comparable(a.type, b.type):
            raise self._type_error(node, "IS DISTINCT FROM", a.type, b.type)
        fa, fb = a.fn, b.fn
        if isinstance(node, exp.NullSafeEQ):
            return Compiled(lambda e: not logic.is_distinct(fa(e), fb(e)), BOOLEAN)
        return Compiled(lambda e: logic.is_distinct(fa(e), fb(e)), BOOLEAN)

    def arithmetic(self, node: exp.Binary) -> Compiled:
        op, name = ARITHMETIC[type(node)]
        a, b = self.compile(node.this), self.compile(node.expression)
        t = arith_type(name, a.type, b.type)
        if t is None:
            raise self._type_error(node, name, a.type, b.type)
        fa, fb = a.fn, b.fn
        if a.const and b.const:
            try:
                v = op(a.value, b.value)
            except Exception:
                pass
            else:
                return constant(v, t)
        if b.const:
            bv = b.value
            return Compiled(lambda e: op(fa(e), bv), t)
        return Compiled(binary(name, op, fa, fb), t)

    def concat(self, node: exp.DPipe) -> Compiled:
        a, b = self.compile(node.this), self.compile(node.expression)
        fa, fb = a.fn, b.fn
        return Compiled(lambda e: logic.concat(fa(e), fb(e)), STRING)

    def neg(self, node: exp.Neg) -> Compiled:
        a = self.compile(node.this)
        if not (a.type.is_numeric or a.type.is_any or a.type == INTERVAL):
            raise self._type_error(node, "-", a.type, a.type)
        if a.const and a.value is not None:
            return constant(-a.value, a.type)
        fa = a.fn
        return Compiled(lambda e: logic.neg(fa(e)), a.type)

    def and_(self, node: exp.And) -> Compiled:
        # Flatten a chain of ANDs so a record pays one loop, not a closure per AND.
        parts = [self.predicate(p).fn for p in node.flatten()]
        if len(parts) == 2:
            f0, f1 = parts

            def and2(e: Env) -> Any:
                a = f0(e)
                if a is False:
                    return False
                b = f1(e)
                if b is False:
                    return False
                return None if a is None or b is None else True

            return Compiled(and2, BOOLEAN)

        return Compiled(logic.all_of(parts), BOOLEAN)

    def or_(self, node: exp.Or) -> Compiled:
        parts = [self.predicate(p).fn for p in node.flatten()]
        return Compiled(logic.any_of(parts), BOOLEAN)

    def not_(self, node: exp.Not) -> Compiled:
        a = self.predicate(node.this)
        fa = a.fn
        return Compiled(lambda e: logic.not_(fa(e)), BOOLEAN)

    def is_(self, node: exp.Is) -> Compiled:
        a = self.compile(node.this)
        fa = a.fn
        target = node.expression
        if isinstance(target, exp.Null):
            return Compiled(lambda e: fa(e) is None, BOOLEAN)
        if isinstance(target, exp.Boolean):
            want = bool(target.this)
            return Compiled(lambda e: fa(e) is want, BOOLEAN)
        raise UnsupportedError(
            E_UNSUPPORTED.format(what=f"IS {target.sql()}"),
            sql=self.ctx.sql,
            offset=offset_of(node),
        )

    def between(self, node: exp.Between) -> Compiled:
        x = self.compile(node.this)
        lo, hi = self.compile(node.args["low"]), self.compile(node.args["high"])
        for other in (lo, hi):
            if not comparable(x.type, other.type):
                raise self._type_error(node, "BETWEEN", x.type, other.type)
        fx, flo, fhi = x.fn, lo.fn, hi.fn

        def between(e: Env) -> Any:
            v = fx(e)
            return logic.and_(logic.ge(v, flo(e)), logic.le(v, fhi(e)))

        return Compiled(between, BOOLEAN)

    def in_(self, node: exp.In) -> Compiled:
        query = node.args.get("query")
        lhs = self.compile(node.this)
        if query is not None:
            select = query.this if isinstance(query, exp.Subquery) else query
            return self._subquery("in", select, lhs, node)
        items = [self.compile(v) for v in node.expressions]
        for it in items:
            if not comparable(lhs.type, it.type):
                raise self._type_error(node, "IN", lhs.type, it.type)
        fx = lhs.fn
        if all(it.const for it in items):
            values = tuple(it.value for it in items)
            non_null = [v for v in values if v is not None]
            has_null = len(non_null) != len(values)
            try:
                fast = frozenset(non_null)
            except TypeError:
                fast = None
            # Python's == never equates a date with a datetime (SQL compares a DATE as its
            # midnight): lists with temporal values take the generic loop.
            if fast is not None and all(
                type(v) is not float and not isinstance(v, dt.date) for v in fast
            ):
                # Hash probe first; the generic loop only decides FALSE vs UNKNOWN.
                def in_set(e: Env) -> Any:
                    x = fx(e)
                    if x is None:
                        return None
                    if type(x) is float or type(x) is bool or isinstance(x, dt.date):
                        return logic.in_values(x, values)
                    if x in fast:
                        return True
                    return None if has_null else False

                return Compiled(in_set, BOOLEAN)
            return Compiled(lambda e: logic.in_values(fx(e), values), BOOLEAN)
        fns = [it.fn for it in items]
        return Compiled(lambda e: logic.in_values(fx(e), [f(e) for f in fns]), BOOLEAN)

    def exists(self, node: exp.Exists) -> Compiled:
        select = node.this
        if isinstance(select, exp.Subquery):
            select = select.this
        return self._subquery("exists", select, None, node)

    def scalar_subquery(self, node: exp.Subquery) -> Compiled:
        if not isinstance(node.this, exp.Select):
            raise UnsupportedError(
                E_UNSUPPORTED.format(what="this subquery form"),
                sql=self.ctx.sql,
                offset=offset_of(node),
            )
        return self._subquery("scalar", node.this, None, node)

    def _subquery(
        self, kind: str, select: exp.Select, lhs: Compiled | None, node: exp.Expr
    ) -> Compiled:
        assert self.ctx.subquery is not None
        return self.ctx.subquery(kind, select, self.scope, lhs, node)

    def aggregate(self, node: exp.AggFunc) -> Compiled:
        i = self.agg.index_of(node) if self.agg is not None else None
        if self.agg is None or i is None:
            raise SqlTypeError(
                E_AGGREGATE_NOT_ALLOWED.format(name=node.key.upper(), clause=self.clause),
                sql=self.ctx.sql,
                offset=offset_of(node),
            )
        slot = self.agg.agg_slot
        t = self.ctx.types.get(id(node), ANY)
        return Compiled(lambda e: e[slot][i], t)

    def alias(self, node: exp.Alias) -> Compiled:
        return self.compile(node.this)


def group_text(node: exp.Expr) -> str:
    """The text a GROUP BY term and a SELECT expression are matched by: one spelling for both
    sides (sqlglot's rendering, lower-cased), so ``Upper(Name)`` finds ``GROUP BY upper(name)``."""
    return node.sql(dialect="duckdb").lower()


_HANDLERS: dict[type[exp.Expr], Callable[[ExprCompiler, Any], Compiled]] = {
    exp.Column: ExprCompiler.column,
    exp.Literal: ExprCompiler.literal,
    exp.Boolean: ExprCompiler.boolean,
    exp.Null: ExprCompiler.null,
    exp.Paren: ExprCompiler.paren,
    exp.Alias: ExprCompiler.alias,
    exp.NullSafeEQ: ExprCompiler.null_safe,
    exp.NullSafeNEQ: ExprCompiler.null_safe,
    exp.DPipe: ExprCompiler.concat,
    exp.Neg: ExprCompiler.neg,
    exp.And: ExprCompiler.and_,
    exp.Or: ExprCompiler.or_,
    exp.Not: ExprCompiler.not_,
    exp.Is: ExprCompiler.is_,
    exp.Between: ExprCompiler.between,
    exp.In: ExprCompiler.in_,
    exp.Exists: ExprCompiler.exists,
    exp.Subquery: ExprCompiler.scalar_subquery,
    **{k: ExprCompiler.comparison for k in _COMPARISONS},
    **{k: ExprCompiler.arithmetic for k in ARITHMETIC},
    exp.AggFunc: ExprCompiler.aggregate,
}

__all__ = ["Compiled", "ExprCompiler", "Read", "constant", "from_datatype"]
