"""Expressions → Python statements and a name holding the value (sqlglot's executor does the
same: ``sqlglot/executor/python.py``).

:class:`ExprGen` walks an expression: constants come folded from the closure compiler; column
reads (:meth:`~ExprGen.read`, scaled DECIMAL reads) and inline results are computed once per path
(common subexpressions); fused subqueries are written out as their key lookups or IN-set probes;
operators go to :mod:`sql.codegen.operators`, which writes each inline for the operand types it is
usually given and calls the very :mod:`sql.logic` function the closure would for any other value
(so NULLs, DECIMAL and three-valued logic are the closures' by construction). Anything not
written inline calls its compiled closure on the env.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlglot import exp

from sql.codegen import projection, projection_probe
from sql.codegen.operators import HANDLERS
from sql.codegen.unsupported import Unsupported as Unsupported
from sql.codegen.writer import Writer
from sql.compile.context import CompileContext, FusedSubquery
from sql.operators.maintained import InSet
from sql.runtime import Compiled, Fn, Read, ScaledRead


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


class ExprGen:
    """Writes expressions of one query into ``w``; ``rows`` maps a relation's value slot to the
    local variable holding its row (the stream record, each joined row)."""

    def __init__(
        self,
        w: Writer,
        ctx: CompileContext,
        rows: dict[int, str],
        attrs: dict[int, dict[str, str]] | None = None,
        types: dict[int, dict[str, type]] | None = None,
        plan: projection.ProjectionPlan | None = None,
    ) -> None:
        self.w = w
        self.ctx = ctx
        self.rows = rows
        #: Relations whose row is a struct: column name -> attribute (else rows are dicts).
        self.attrs = attrs or {}
        #: Of those, the columns whose values are exactly of a Python type (or None).
        self.types = types or {}
        #: Names holding a value exactly of this type or None wherever their code ran (a typed
        #: struct's column, exact arithmetic on such values, a scaled DECIMAL read): operators
        #: on them test for NULL only, not for the operand types.
        self.exact: dict[str, type] = {}
        #: Names holding TRUE or FALSE, never NULL (an EXISTS, an IS test).
        self.never_null: set[str] = set()
        #: Names holding a finite Decimal or None whenever their code ran (a scaled DECIMAL
        #: read, exact arithmetic on such values and integers): their outputs need no check
        #: for NaN/Infinity.
        self.finite: set[str] = set()
        #: Projected lookups (:mod:`sql.codegen.projection`), None: rows are read.
        self.plan = plan
        #: Writing a projected value's row path (no map inside it).
        self.general = False
        #: The lookup site of each local holding a looked-up row.
        self.site_by_row: dict[str, projection.Site] = {}
        #: DECIMAL +, - and * on exact operands may be written as Python operators: the code
        #: runs with the exact context as the thread's (the batch function's wrapper);
        #: ``used_context`` says that some were.
        self.context_ops = False
        self.used_context = False

    # -- entry points -----------------------------------------------------------------------------
    def compiled(self, c: Compiled) -> str:
        """The value of a compiled expression (an output, a join key)."""
        if c.const:
            return self._const_value(c.value)
        if self.plan is not None and not self.general:
            v = projection_probe.intercept(self, c, None)
            if v is not None:
                return v
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
        c = self.compiled_of(node)
        if self.plan is not None and not self.general:
            v = projection_probe.intercept(self, c, node)
            if v is not None:
                return v
        if c is not None:
            if c.const:
                return self._const_value(c.value)
            if c.read is not None:
                return self._typed_read(c)
            if c.scaled is not None:
                return self.read_scaled(c.scaled)
        if isinstance(node, (exp.Paren, exp.Alias)):
            return self.node(node.this)
        handler = HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
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
                hashable = self.key_guard(x)
                w.line(
                    f"{t} = True if {hashable} and {x} in {counts}"
                    f" and not {errors} else {contains}({x})"
                )
            else:
                w.line(f"{t} = {contains}({x})")
            return t
        miss = "False" if f.kind == "exists" else "None"
        if f.kind == "exists":  # FALSE when not found, TRUE when found (_found)
            self.never_null.add(t)
        key_c = self._compiled_by_fn(f.lookup.key)
        k = self.compiled(key_c) if key_c is not None else self.call(f.lookup.key)
        v = self.lookup(f.lookup.get, k, f.vs)
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

    def lookup(self, get: Callable[[Any], Any], k: str, slot: int | None = None) -> str:
        """The row of key ``k`` through ``get`` (a table's, or its row cache's): None when ``k``
        is NULL, unhashable (no key equals it) or not found; a value that is not an object reads
        as an empty row. Looked up once per record and key: the same table probed with the same
        key again (an EXISTS and a scalar subquery on one row) reuses the row. ``slot``: the
        env slot of the row, for a projected lookup (:mod:`sql.codegen.projection`)."""
        w = self.w
        owner = getattr(get, "__self__", None)
        ident = (id(owner), getattr(get, "__func__", None)) if owner is not None else (id(get),)
        key = ("lookup", ident, k)
        known = w.known(key)
        if known is not None:
            site = self.site_by_row.get(known)
            if site is not None and slot is not None:
                site.slots.add(slot)
            return known
        if slot is not None and self.plan is not None and not self.general:
            v = projection_probe.lookup(self, get, k, slot)
        else:
            v = w.temp("s")
            self.lookup_into(get, k, v)
        w.remember(key, v)
        return v

    def lookup_into(self, get: Callable[[Any], Any], k: str, v: str) -> None:
        """The row path of :meth:`lookup`: the row (or None) into ``v``."""
        w = self.w
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
                if self.exact.get(k) in (int, str):  # and not None here
                    # A hit is one subscript; a key not cached (once per key) raises.
                    with w.block("try:"):
                        w.line(f"{v} = {rows}[{k}]")
                    with w.block("except KeyError:"):
                        self._get(g, k, v)
                else:
                    w.line(
                        f"{v} = {rows}.get({k}, {miss}) if type({k}) is str or type({k}) is int"
                        f" else {miss}"
                    )
                    with w.block(f"if {v} is {miss}:"):
                        self._get(g, k, v)
            not_dict = f"type({v}) is not dict and not isinstance({v}, dict)"
            with w.block(f"if {v} is not None and {not_dict}:"):
                w.line(f"{v} = EMPTY")

    def alias(self, row: str, other: str) -> None:
        """``other`` holds the looked-up ``row`` too (a join's row)."""
        site = self.site_by_row.get(row)
        if site is not None:
            self.site_by_row[other] = site

    def emptied(self, row: str) -> None:
        """``row`` (a projected lookup's) was just set to the empty row: its values are read
        from it (the row path) from here on."""
        site = self.site_by_row.get(row)
        if site is not None and site.var:
            self.w.line(f"{site.var} = {self.w.bind(projection.SLOW, 'SLOW')}")

    def key_guard(self, x: str) -> str:
        """The test that ``x`` is a probe of a dict keyed by ints and strs (a row cache, an
        IN-set): its type, or only not NULL when its type is known."""
        if self.exact.get(x) in (int, str):
            return f"{x} is not None"
        return f"(type({x}) is int or type({x}) is str)"

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
            if v in self.exact:
                self.exact[t] = self.exact[v]
            return
        for c in f.outputs:  # as the closure: an output that fails is the record's error
            if not c.const:
                self.compiled(c)
        self.w.line(f"{t} = True")

    def _const_value(self, value: Any) -> str:
        name = self.w.const(value)
        if type(value) is Decimal and value.is_finite():
            self.finite.add(name)
        if value is not None:
            self.exact[name] = type(value)
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
    def compiled_of(self, node: exp.Expr) -> Compiled | None:
        """The compiled form of ``node`` the closure compiler kept, if any."""
        entry = self.ctx.compiled.get(id(node))
        return entry[1] if entry is not None and entry[0] is node else None

    def _row(self, slot: int, name: str) -> str:
        """The variable holding the row of relation ``slot``, which ``name`` is read from."""
        row = self.rows.get(slot)
        if row is None:
            raise Unsupported(f"a read of {name!r} outside the query's own relations")
        return row

    def read(self, read: Read) -> str:
        slot, name, py, conv = read
        key = ("read", slot, name)
        known = self.w.known(key)
        if known is not None:
            return known
        row = self._row(slot, name)
        t = self.w.temp("c")
        attrs = self.attrs.get(slot)
        if attrs is None:
            self.w.line(f"{t} = {row}.get({name!r})")
        elif name in attrs:
            self.w.line(f"{t} = {row}.{attrs[name]}")
            exact = self.types.get(slot, {}).get(name)
            if exact is not None and (py is exact or conv is None):
                self.exact[t] = exact
                conv = None  # every value is of the column's type already
        else:
            raise Unsupported(f"a read of {name!r}, not a column of the struct")
        if conv is not None:
            # As the closure reads it: a value of the column's Python type kept, else converted.
            # The type first: most values are of it (then the NULL test is not reached).
            self.w.line(
                f"if type({t}) is not {self.w.bind(py, 'T')} and {t} is not None:"
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
        row = self._row(slot, name)
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
        with w.block(f"if type({t}) is {dec}:"):
            with w.block("try:"):
                w.line(f"{m} = {memo}.get({t})")
            with w.block("except TypeError:"):  # a signaling NaN cannot be hashed
                w.line(f"{m} = None")
            with w.block(f"if {m} is not None:"):
                w.line(f"{t} = {m}")
            with w.block(f"elif {t}.is_finite():"):
                with w.block("try:"):
                    # The context's quantize (positional: Decimal.quantize parses keywords).
                    q, c = w.bind(quantum, "K"), w.bind(context.quantize, "quantize")
                    w.line(f"{m} = {c}({t}, {q})")
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
        with w.block(f"elif {t} is not None:"):
            w.line(f"{t} = {fix}({t})")
        w.remember(key, t)
        self.finite.add(t)
        self.exact[t] = Decimal  # quantized, or converted (a CastError otherwise)
        return t

    def call(self, fn: Fn) -> str:
        self.w.uses_env = True
        t = self.w.temp()
        self.w.line(f"{t} = {self.w.bind(fn, 'f')}(env)")
        return t
