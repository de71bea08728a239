"""The seed's table-side SQL API, on any :class:`~tables.protocol.Table`, built on the compiler.

``Queryable(table)`` answers ``sql_filter``, ``sql_exists``, ``sql_column_values`` and
``sql_scalar``. Each distinct call is compiled once and cached: the planner picks a key lookup,
an index probe or a maintained result exactly as for a subquery, so ``sql_exists("enabled =
true")`` called per record costs a counter read, not a scan. The WHERE text goes on its own line
of the generated statement, so error columns on line 2 are columns of the caller's fragment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from sql.bind.scope import Scope
from sql.catalog import Catalog, RelationSchema
from sql.compile.context import CompileContext
from sql.compile.subquery import compile_subquery
from sql.parse import parse_select, recursion_headroom
from sql.types import SqlType
from tables import Key, Table, Value


class Queryable:
    """SQL over one table. Not thread-safe (like a compiled query)."""

    def __init__(self, table: Table, columns: Mapping[str, SqlType] | None = None) -> None:
        self.table = table
        self.catalog = Catalog.of({table.name: table})
        if columns is not None:
            self.catalog.schemas[table.name.lower()] = RelationSchema(
                table.name, "table", dict(columns), key_field=table.key_field, declared=True
            )
        self._compiled: dict[
            tuple[str, str, str], tuple[Callable[[list[Any]], Any], list[Any]]
        ] = {}
        self._closers: list[Callable[[], None]] = []
        self._plans: dict[tuple[str, str, str], str] = {}

    def _fn(self, kind: str, select_list: str, where: str) -> Any:
        cache_key = (kind, select_list, where)
        hit = self._compiled.get(cache_key)
        if hit is None:
            name = exp.to_identifier(self.table.name).sql(dialect="duckdb")
            sql = f"SELECT {select_list} FROM {name}" + (
                f" WHERE\n{where}" if where.strip() else ""
            )
            ctx = CompileContext(sql, self.catalog)
            ctx.subquery = lambda k, sel, scope, lhs, node: compile_subquery(
                ctx, k, sel, scope, lhs, node
            )
            with recursion_headroom(sql):
                select = parse_select(sql, 0, len(sql))
                compiled = compile_subquery(ctx, kind, select, Scope(sql, ctx.slots), None, select)
            self._closers += ctx.closers
            self._plans[cache_key] = "\n".join("  " * d + text for d, text in ctx.explain)
            hit = self._compiled[cache_key] = (compiled.fn, [None] * ctx.slots.count)
        fn, env = hit
        return fn(env)

    def sql_filter(self, where: str) -> dict[Key, Value]:
        """Rows (key → value) satisfying ``where``."""
        out: dict[Key, Value] = {}
        for (key,) in self._fn("rows", "_key", where):
            value = self.table.get(key)
            if value is not None:
                out[key] = value
        return out

    def sql_exists(self, where: str) -> bool:
        return bool(self._fn("exists", "1", where))

    def sql_column_values(self, column: str, where: str = "") -> list[Any]:
        """Values of ``column`` (any expression) over the rows satisfying ``where``, NULLs kept."""
        return [row[0] for row in self._fn("rows", column, where)]

    def sql_scalar(self, select_expr: str, where: str = "") -> Any:
        """One value: NULL for no row, :class:`~sql.errors.ScalarSubqueryError` for several."""
        return self._fn("scalar", select_expr, where)

    def explain(self) -> dict[tuple[str, str, str], str]:
        """The plan of every call compiled so far: (kind, select list, where) → EXPLAIN text."""
        return dict(self._plans)

    def close(self) -> None:
        for c in self._closers:
            c()
        self._closers.clear()
        self._compiled.clear()
        self._plans.clear()
