"""Expressions → Python statements and a name holding the value (sqlglot's executor does the
same: ``sqlglot/executor/python.py``).

Each operator the closure compiler would run through a :mod:`sql.logic` function is written
inline for the operand types it is usually given (from the static types), guarded by exact
``type(x) is T`` checks; any other value goes to the very ``sql.logic`` function the closure
would call. So NULLs, DECIMAL and three-valued logic are the closures' by construction, and a
value of an unexpected type costs a call, never a different answer. Constants come folded from
the closure compiler; column reads and inline results are computed once per path (common
subexpressions); anything not written inline calls its compiled closure on the env.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sql import logic
from sql.codegen.writer import Writer
from sql.compile.context import CompileContext, FusedSubquery
from sql.operators.maintained import InSet
from sql.runtime import Compiled, Fn, Read, ScaledRead
from sql.types import DECIMAL_CONTEXT

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
    exp.Mul: ("*", logic.mul, DECIMAL_CONTEXT.multiply),
}
_CALLED: dict[type[exp.Expr], Op] = {
    exp.Div: logic.div,
    exp.IntDiv: logic.intdiv,
    exp.Mod: logic.mod,
    exp.DPipe: logic.concat,
}


def _row_cache(get: Callable[[Any], Any]) -> tuple[dict[Any, Any], object] | None:
    """The row cache behind ``get`` when it is a cached table's ``get`` (``row_cache()``: its
    dict of rows by int/str probe and the marker of a key not cached), else None."""
    owner = getattr(get, "__self__", None)
    row_cache = getattr(owner, "row_cache", None)
    if row_cache is None or getattr(get, "__name__", None) != "get":
        return None
    cache: tuple[dict[Any, Any], object] = row_cache()
    return cache


#: Quantized DECIMAL values remembered per column read (then the memo starts over).
_MEMO_ROWS = 4096


class Unsupported(Exception):
    """The query (or a part of it) is not generated: the closures run it. ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExprGen:
    """Writes expressions of one query into ``w``; ``rows`` maps a relation's value slot to the
    local variable holding its row (the stream record, each joined row)."""

    def __init__(
        self,
        w: Writer,
        ctx: CompileContext,
        rows: dict[int, str],
        attrs: dict[int, dict[str, str]] | None = None,
    ) -> None:
        self.w = w
        self.ctx = ctx
        self.rows = rows
        #: Relations whose row is a struct: column name -> attribute (else rows are dicts).
        self.attrs = attrs or {}
        #: Names holding a finite Decimal or None whenever their code ran (a scaled DECIMAL
        #: read, exact arithmetic on such values and integers): their outputs need no check
        #: for NaN/Infinity.
        self.finite: set[str] = set()

    # -- entry points -----------------------------------------------------------------------------
    def compiled(self, c: Compiled) -> str:
        """The value of a compiled expression (an output, a join key)."""
        if c.const:
            return self._const_value(c.value)
        if c.read is not None:
            return self._typed_read(c)
        if c.scaled is not None:
            return self.read_scaled(c.scaled)
        entry = self.ctx.closures.get(id(c.fn))
        if entry is not None and entry[0] is c.fn:
            return self.node(entry[1])
        return self.call(c.fn)

    def residual(self, fn: Fn) -> str:
        """A compiled condition given by its closure only (a join's remaining ON terms)."""
        entry = self.ctx.closures.get(id(fn))
        if entry is not None and entry[0] is fn:
            return self.node(entry[1])
        return self.call(fn)

    def node(self, node: exp.Expr) -> str:
        c = self._compiled_of(node)
        if c is not None:
            if c.const:
                return self._const_value(c.value)
            if c.read is not None:
                return self._typed_read(c)
            if c.scaled is not None:
                return self.read_scaled(c.scaled)
        if isinstance(node, (exp.Paren, exp.Alias)):
            return self.node(node.this)
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            value: str = handler(self, node)
            return value
        if c is None:
            raise Unsupported(f"expression {node.sql(dialect='duckdb')} (not compiled alone)")
        fused = self.ctx.fused.get(id(c.fn))
        if fused is not None and fused[0] is c.fn:
            return self.subquery(fused[1])
        return self.call(c.fn)

    def subquery(self, f: FusedSubquery) -> str:
        """A fused subquery closure written out: the IN-set probe, or the key lookup as
        :func:`sql.operators.inner.by_key` does it (its row in the env for the closures)."""
        w = self.w
        t = w.temp()
        if f.kind == "in_set":
            assert f.lhs is not None
            x = self.compiled(f.lhs)
            contains = w.bind(f.contains, "contains")
            members = getattr(f.contains, "__self__", None)
            if isinstance(members, InSet):
                # A member found in the set's dict is TRUE (no errors remembered): the common
                # answer inline; every other case as contains() decides it.
                counts, errors = w.bind(members.counts, "members"), w.bind(members.errors, "errs")
                w.line(
                    f"{t} = True if (type({x}) is int or type({x}) is str) and {x} in {counts}"
                    f" and not {errors} else {contains}({x})"
                )
            else:
                w.line(f"{t} = {contains}({x})")
            return t
        miss = "False" if f.kind == "exists" else "None"
        key_c = self._compiled_by_fn(f.lookup.key)
        k = self.compiled(key_c) if key_c is not None else self.call(f.lookup.key)
        v = self.lookup(f.lookup.get, k)
        with w.block(f"if {v} is None:"):
            w.line(f"{t} = {miss}")
        with w.block("else:"):
            w.env_line(f"env[{f.vs}] = {v}")
            w.env_line(f"env[{f.ms}] = {k}")
            saved = self.rows.get(f.vs)
            self.rows[f.vs] = v
            try:
                if f.where is None:
                    self._found(f, t)
                else:
                    ok = self.residual(f.where)
                    with w.block(f"if {ok} is not True:"):
                        w.line(f"{t} = {miss}")
                    with w.block("else:"):
                        self._found(f, t)
            finally:
                if saved is None:
                    del self.rows[f.vs]
                else:
                    self.rows[f.vs] = saved
        return t

    def lookup(self, get: Callable[[Any], Any], k: str) -> str:
        """The row of key ``k`` through ``get`` (a table's, or its row cache's): None when ``k``
        is NULL, unhashable (no key equals it) or not found; a value that is not an object reads
        as an empty row. Looked up once per record and key: the same table probed with the same
        key again (an EXISTS and a scalar subquery on one row) reuses the row."""
        w = self.w
        owner = getattr(get, "__self__", None)
        ident = (id(owner), getattr(get, "__func__", None)) if owner is not None else (id(get),)
        key = ("lookup", ident, k)
        known = w.known(key)
        if known is not None:
            return known
        v = w.temp("s")
        g = w.bind(get, "get")
        cache = _row_cache(get)
        with w.block(f"if {k} is None:"):
            w.line(f"{v} = None")
        with w.block("else:"):
            if cache is None:
                self._get(g, k, v)
            else:
                # The row cache's dict probed inline (int and str probes are its keys; a cached
                # None is a known miss), the cache's own get on a miss.
                rows, miss = w.bind(cache[0], "rows"), w.bind(cache[1], "MISS")
                w.line(
                    f"{v} = {rows}.get({k}, {miss}) if type({k}) is str or type({k}) is int"
                    f" else {miss}"
                )
                with w.block(f"if {v} is {miss}:"):
                    self._get(g, k, v)
            not_dict = f"type({v}) is not dict and not isinstance({v}, dict)"
            with w.block(f"if {v} is not None and {not_dict}:"):
                w.line(f"{v} = EMPTY")
        w.remember(key, v)
        return v

    def _get(self, g: str, k: str, v: str) -> None:
        with self.w.block("try:"):
            self.w.line(f"{v} = {g}({k})")
        with self.w.block("except TypeError:"):  # an unhashable probe: no key equals it
            self.w.line(f"{v} = None")

    def _found(self, f: FusedSubquery, t: str) -> None:
        if f.kind == "scalar":
            v = self.compiled(f.outputs[0])
            self.w.line(f"{t} = {v}")
            if v in self.finite:  # else NULL: the subquery's value is finite too
                self.finite.add(t)
            return
        for c in f.outputs:  # as the closure: an output that fails is the record's error
            if not c.const:
                self.compiled(c)
        self.w.line(f"{t} = True")

    def _const_value(self, value: Any) -> str:
        name = self.w.const(value)
        if type(value) is Decimal and value.is_finite():
            self.finite.add(name)
        return name

    def _typed_read(self, c: Compiled) -> str:
        """A plain read; of a scaled DECIMAL column, it is a typed stream's (the decoder
        quantized it: finite), a table's DECIMAL needing conversion being a scaled read."""
        assert c.read is not None
        name = self.read(c.read)
        if c.type.name == "DECIMAL" and c.type.scale is not None:
            self.finite.add(name)
        return name

    def _compiled_by_fn(self, fn: Fn) -> Compiled | None:
        entry = self.ctx.closures.get(id(fn))
        return entry[2] if entry is not None and entry[0] is fn else None

    # -- pieces -----------------------------------------------------------------------------------
    def _compiled_of(self, node: exp.Expr) -> Compiled | None:
        entry = self.ctx.compiled.get(id(node))
        return entry[1] if entry is not None and entry[0] is node else None

    def _pytype(self, node: exp.Expr, value: str) -> type | None:
        c = self._compiled_of(node)
        if c is not None and c.const:
            return type(c.value)
        if c is None:
            return None
        return _PY.get(c.type.name)

    def read(self, read: Read) -> str:
        slot, name, py, conv = read
        key = ("read", slot, name)
        known = self.w.known(key)
        if known is not None:
            return known
        row = self.rows.get(slot)
        if row is None:
            raise Unsupported(f"a read of {name!r} outside the query's own relations")
        t = self.w.temp("c")
        attrs = self.attrs.get(slot)
        if attrs is None:
            self.w.line(f"{t} = {row}.get({name!r})")
        elif name in attrs:
            self.w.line(f"{t} = {row}.{attrs[name]}")
        else:
            raise Unsupported(f"a read of {name!r}, not a column of the struct")
        if conv is not None:
            # As the closure reads it: a value of the column's Python type kept, else converted.
            self.w.line(
                f"if {t} is not None and type({t}) is not {self.w.bind(py, 'T')}:"
                f" {t} = {self.w.bind(conv, 'conv')}({t})"
            )
        self.w.remember(key, t)
        return t

    def read_scaled(self, read: ScaledRead) -> str:
        """A scaled DECIMAL column of a table row, as its closure reads it: a finite Decimal
        quantized to the column's scale under its precision, anything else converted (the
        converter raises the CastError)."""
        slot, name, quantum, context, conv = read
        key = ("read", slot, name)
        known = self.w.known(key)
        if known is not None:
            return known
        row = self.rows.get(slot)
        if row is None:
            raise Unsupported(f"a read of {name!r} outside the query's own relations")
        w = self.w
        if slot in self.attrs:
            raise Unsupported(f"a converting read of {name!r} from a struct")
        t, m = w.temp("c"), w.temp("m")
        dec, fix = w.bind(Decimal, "T"), w.bind(conv, "conv")
        # Quantized values by value (a table's DECIMALs repeat: the same few rows): quantize is
        # a function of the value (0.5 and 0.50 give the same), but for zeros (0 and -0 are
        # equal keys with different results), which are never kept.
        memo = w.bind({}, "memo")
        w.line(f"{t} = {row}.get({name!r})")
        with w.block(f"if {t} is not None:"):
            with w.block(f"if type({t}) is {dec}:"):
                with w.block("try:"):
                    w.line(f"{m} = {memo}.get({t})")
                with w.block("except TypeError:"):  # a signaling NaN cannot be hashed
                    w.line(f"{m} = None")
                with w.block(f"if {m} is not None:"):
                    w.line(f"{t} = {m}")
                with w.block(f"elif {t}.is_finite():"):
                    with w.block("try:"):
                        q, c = w.bind(quantum, "K"), w.bind(context, "ctx")
                        w.line(f"{m} = {t}.quantize({q}, None, {c})")
                    with w.block("except ArithmeticError:"):  # more digits than the precision
                        w.line(f"{t} = {fix}({t})")
                    with w.block("else:"):
                        with w.block(f"if {t}:"):
                            with w.block(f"if len({memo}) >= {_MEMO_ROWS}:"):
                                w.line(f"{memo}.clear()")
                            w.line(f"{memo}[{t}] = {m}")
                        w.line(f"{t} = {m}")
                with w.block("else:"):
                    w.line(f"{t} = {fix}({t})")
            with w.block("else:"):
                w.line(f"{t} = {fix}({t})")
        w.remember(key, t)
        self.finite.add(t)
        return t

    def call(self, fn: Fn) -> str:
        self.w.uses_env = True
        t = self.w.temp()
        self.w.line(f"{t} = {self.w.bind(fn, 'f')}(env)")
        return t

    def _cse(self, node: exp.Expr) -> tuple[Any, str | None]:
        key = ("node", node.sql(dialect="duckdb"))
        return key, self.w.known(key)

    def comparison(self, node: exp.Binary) -> str:
        key, known = self._cse(node)
        if known is not None:
            return known
        sym, fn = _COMPARE[type(node)]
        a, b = self.node(node.this), self.node(node.expression)
        if a == "None" or b == "None":
            return "None"  # both operands were computed: their errors still raise
        ta, tb = self._pytype(node.this, a), self._pytype(node.expression, b)
        f = self.w.bind(fn, "op")
        t = self.w.temp()
        b_const = self._const(node.expression)
        nulls = f"{a} is None" if b_const else f"{a} is None or {b} is None"
        if ta is not None and tb is not None and (ta, tb) in _SAME:
            guard = f"type({a}) is {self.w.bind(ta, 'T')}"
            if not b_const:
                guard += f" and type({b}) is {self.w.bind(tb, 'T')}"
            self.w.line(f"{t} = None if {nulls} else ({a} {sym} {b} if {guard} else {f}({a}, {b}))")
        else:
            self.w.line(f"{t} = {f}({a}, {b})")
        self.w.remember(key, t)
        return t

    def _const(self, node: exp.Expr) -> bool:
        c = self._compiled_of(node)
        return c is not None and c.const

    def arithmetic(self, node: exp.Binary) -> str:
        key, known = self._cse(node)
        if known is not None:
            return known
        a, b = self.node(node.this), self.node(node.expression)
        t = self.w.temp()
        exact = _EXACT.get(type(node))
        if exact is None:
            f = self.w.bind(_CALLED[type(node)], "op")
            self.w.line(f"{t} = {f}({a}, {b})")
            self.w.remember(key, t)
            return t
        sym, fn, dec = exact
        f = self.w.bind(fn, "op")
        ta, tb = self._pytype(node.this, a), self._pytype(node.expression, b)
        if ta in (int, Decimal) and tb in (int, Decimal):
            fast = (
                f"{a} {sym} {b}"
                if ta is int and tb is int
                else f"{self.w.bind(dec, 'op')}({a}, {b})"
            )
            # A constant's type is known: only the other operand is checked.
            checks = [
                f"type({x}) is {self.w.bind(tx, 'T')}"
                for x, tx, node_x in ((a, ta, node.this), (b, tb, node.expression))
                if not self._const(node_x)
            ]
            guard = " and ".join(checks) or "True"
            self.w.line(f"{t} = {fast} if {guard} else {f}({a}, {b})")
            # Finite (or NULL) operands give a finite result (the exact context traps overflow).
            if all(x in self.finite or tx is int for x, tx in ((a, ta), (b, tb))):
                self.finite.add(t)
        else:
            self.w.line(f"{t} = {f}({a}, {b})")
        self.w.remember(key, t)
        return t

    def neg(self, node: exp.Neg) -> str:
        a = self.node(node.this)
        t = self.w.temp()
        self.w.line(f"{t} = {self.w.bind(logic.neg, 'op')}({a})")
        return t

    def null_safe(self, node: exp.Binary) -> str:
        a, b = self.node(node.this), self.node(node.expression)
        t = self.w.temp()
        f = self.w.bind(logic.is_distinct, "op")
        neg = "not " if isinstance(node, exp.NullSafeEQ) else ""
        self.w.line(f"{t} = {neg}{f}({a}, {b})")
        return t

    def not_(self, node: exp.Not) -> str:
        a = self.node(node.this)
        t = self.w.temp()
        self.w.line(f"{t} = None if {a} is None else not {a}")
        return t

    def is_(self, node: exp.Is) -> str:
        target = node.expression
        if isinstance(target, exp.Null):
            want = "None"
        elif isinstance(target, exp.Boolean):
            want = repr(bool(target.this))
        else:  # the closure compiler refused it already
            raise Unsupported(f"IS {target.sql()}")
        a = self.node(node.this)
        t = self.w.temp()
        self.w.line(f"{t} = {a} is {want}")
        return t

    def between(self, node: exp.Between) -> str:
        x = self.node(node.this)
        lo, hi = self.node(node.args["low"]), self.node(node.args["high"])
        t = self.w.temp()
        and_, ge, le = (self.w.bind(f, "op") for f in (logic.and_, logic.ge, logic.le))
        self.w.line(f"{t} = {and_}({ge}({x}, {lo}), {le}({x}, {hi}))")
        return t

    def connective(self, node: exp.Connector) -> str:
        """AND / OR in three-valued logic, short-circuit as the closures: terms in order until
        one decides (FALSE for AND, TRUE for OR); else UNKNOWN if any term was."""
        stop = "False" if isinstance(node, exp.And) else "True"
        other = "True" if stop == "False" else "False"
        terms = list(node.flatten())
        t = self.w.temp()
        seen: list[str] = []

        def chain(i: int) -> None:
            v = self.node(terms[i])
            seen.append(v)
            with self.w.block(f"if {v} is {stop}:"):
                self.w.line(f"{t} = {stop}")
            with self.w.block("else:"):
                if i + 1 < len(terms):
                    chain(i + 1)
                else:
                    unknown = " or ".join(f"{s} is None" for s in seen)
                    self.w.line(f"{t} = None if {unknown} else {other}")

        chain(0)
        return t


_HANDLERS: dict[type[exp.Expr], Any] = {
    **{k: ExprGen.comparison for k in _COMPARE},
    **{k: ExprGen.arithmetic for k in (*_EXACT, *_CALLED)},
    exp.Neg: ExprGen.neg,
    exp.NullSafeEQ: ExprGen.null_safe,
    exp.NullSafeNEQ: ExprGen.null_safe,
    exp.Not: ExprGen.not_,
    exp.Is: ExprGen.is_,
    exp.Between: ExprGen.between,
    exp.And: ExprGen.connective,
    exp.Or: ExprGen.connective,
}
