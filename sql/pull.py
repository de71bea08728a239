"""Pull queries (as ksqlDB's): one ``SELECT ... FROM <table> WHERE ... LIMIT n`` answered once
from a table's current rows.

The streaming compiler does the work: the queried table is offered to it as a *stream* whose
records are the table's rows (``_key`` reads the row's key), every other table stays a table
(joins and subqueries plan as in a continuous query). What this module adds is where the rows
come from — one ``get`` per key when a top-level ``AND`` term pins the key (``_key = 'a'``,
``id IN (1, 2)`` on the key field), a scan otherwise — and the bounds: a row limit and a time
limit, checked as the rows go. An aggregate query answers EMIT FINAL: its groups once every row
is in. Side effects are impossible: ``CREATE`` statements are refused, nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sql.bind.scope import offset_of
from sql.catalog import Catalog, RelationSchema
from sql.compile.context import CompileContext
from sql.dialect import from_of
from sql.errors import E_NOT_SCANNABLE, BindError, SqlError, UnsupportedError, suggest
from sql.operators.aggregate import Retraction
from sql.parse import parse_script
from sql.query import CompiledQuery
from tables import ScanTable, Table

E_PULL_CREATE = "a pull query is one SELECT over a table; CREATE statements are not allowed"
E_PULL_WINDOW = "a pull query reads a table's current rows: WINDOW is for streams"
E_PULL_EMIT = "a pull query answers once: EMIT is for continuous queries"
E_PULL_ORDER = "ORDER BY is not supported in a pull query: rows come in key order"
E_PULL_FROM = "a pull query reads FROM one table by name"
E_PULL_NOT_TABLE = "pull queries read tables only; {name!r} is not a table"
E_PULL_NO_SCAN = (
    "table {name!r} cannot be scanned: a pull query over it must pin its key"
    " (WHERE {key} = ... or {key} IN (...))"
)
E_PULL_TIME = "the pull query ran out of its time limit ({limit:g} s) after {scanned} rows"
#: Rows processed between two yields to the event loop (``execute_async``).
CHUNK = 500


class PullTimeoutError(SqlError):
    """An aggregate pull query did not see every row within its time limit (a partial aggregate
    would be a wrong answer, so there is none)."""


@dataclass(slots=True)
class PullResult:
    columns: list[str]
    rows: list[dict[str, Any]]
    #: "key lookup" or "full scan".
    strategy: str
    #: Table rows read (looked up or scanned).
    scanned: int
    #: Why the rows may be incomplete: None, "row limit" (more rows may match) or "time limit".
    stopped: str | None = None
    elapsed_ms: float = 0.0
    keys: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "strategy": self.strategy,
            "scanned": self.scanned,
            "complete": self.stopped is None,
            "stopped": self.stopped,
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def _literal(node: exp.Expr) -> Any:
    """The Python value of a literal key (string, number, negative number); raises otherwise."""
    if isinstance(node, exp.Neg):
        return -_literal(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    raise ValueError("not a literal")


def _conjuncts(node: exp.Expr | None) -> Iterator[exp.Expr]:
    if node is None:
        return
    if isinstance(node, exp.Where | exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def pinned_keys(
    where: exp.Expr | None, key_field: str | None, names: Iterable[str]
) -> tuple[list[Any], str] | None:
    """Keys a top-level ``AND`` term pins (``key = literal`` or ``key IN (literals)`` on
    ``_key`` or the key field, unqualified or qualified by ``names``), with the term's text."""
    key_columns = {"_key"} | ({key_field.lower()} if key_field else set())
    qualifiers = {n.lower() for n in names} | {""}

    def is_key(node: exp.Expr) -> bool:
        return (
            isinstance(node, exp.Column)
            and node.name.lower() in key_columns
            and node.table.lower() in qualifiers
        )

    for term in _conjuncts(where):
        try:
            if isinstance(term, exp.EQ):
                if is_key(term.left):
                    return [_literal(term.right)], term.sql(dialect="duckdb")
                if is_key(term.right):
                    return [_literal(term.left)], term.sql(dialect="duckdb")
            if isinstance(term, exp.In) and is_key(term.this) and term.expressions:
                keys = [_literal(e) for e in term.expressions]
                return list(dict.fromkeys(keys)), term.sql(dialect="duckdb")
        except (ValueError, TypeError):
            continue
    return None


def _aggregates(select: exp.Select) -> bool:
    if select.args.get("group") is not None:
        return True
    return any(e.find(exp.AggFunc) is not None for e in select.expressions)


class PullQuery:
    """A compiled pull query; :meth:`execute` runs it once over the table's current rows.
    Compile it per request: it holds the compiled query's LIMIT/DISTINCT state."""

    def __init__(
        self,
        sql: str,
        tables: Mapping[str, Table],
        schemas: dict[str, RelationSchema] | None = None,
    ) -> None:
        script = parse_script(sql)
        if script.declarations or script.sink is not None:
            raise UnsupportedError(E_PULL_CREATE, sql=sql, offset=0)
        select = script.require_query()
        if script.window is not None:
            raise UnsupportedError(E_PULL_WINDOW, sql=sql, offset=offset_of(select))
        if script.emit is not None:
            raise UnsupportedError(E_PULL_EMIT, sql=sql, offset=script.emit_offset)
        if select.args.get("order") is not None:
            raise UnsupportedError(E_PULL_ORDER, sql=sql, offset=offset_of(select.args["order"]))
        from_ = from_of(select)
        src = from_.this if from_ is not None else None
        if not isinstance(src, exp.Table):
            raise UnsupportedError(E_PULL_FROM, sql=sql, offset=offset_of(src or select))
        by_name = {name.lower(): t for name, t in tables.items()}
        table = by_name.get(src.name.lower())
        if table is None:
            raise BindError(
                E_PULL_NOT_TABLE.format(name=src.name),
                sql=sql,
                offset=offset_of(src),
                suggestion=suggest(src.name, by_name),
            )
        self.sql = sql
        self.table = table
        cache = schemas if schemas is not None else {}

        def inferred(name: str, t: Table) -> RelationSchema | None:
            # Columns as the catalog infers them from a sample of rows: most of a key lookup's
            # cost, so a caller answering many queries may keep them (``schemas``) a while.
            if name not in cache:
                if not callable(getattr(t, "items", None)):
                    return None  # a table without a scan: its columns are not sampled
                schema = Catalog.of({name: t}).schema(name)
                if schema is None:
                    return None
                cache[name] = schema
            return cache[name]

        catalog = Catalog()
        for name, other in by_name.items():
            if other is not table:
                catalog.add_table(name, other, inferred(name, other))
        # The queried table's columns offered as a stream's: closed when known, open for an
        # empty table.
        schema = inferred(src.name.lower(), table)
        columns = dict(schema.columns) if schema is not None and schema.columns else None
        catalog.add_stream(src.name, columns, key_field=table.key_field)
        # Before compiling: the compiler rewrites the tree it binds.
        pins = pinned_keys(select.args.get("where"), table.key_field, {src.alias_or_name})
        self.keys: list[Any] | None = None if pins is None else pins[0]
        self.pin = "" if pins is None else pins[1]
        if self.keys is None and not callable(getattr(table, "items", None)):
            raise UnsupportedError(
                E_PULL_NO_SCAN.format(name=table.name, key=table.key_field or "_key"),
                sql=sql,
                offset=offset_of(select.args.get("where") or src),
            )
        self.aggregate = _aggregates(select)
        if self.aggregate:
            script.emit = "final"  # one answer once every row is in
        self._query = CompiledQuery(script, CompileContext(sql, catalog), None)
        limit = select.args.get("limit")
        node = None if limit is None else (limit.expression or limit.this)
        self.limit: int | None = None if node is None else int(node.name)

    @property
    def columns(self) -> list[str]:
        return list(self._query.output_columns)

    @property
    def strategy(self) -> str:
        return "key lookup" if self.keys is not None else "full scan"

    def explain(self) -> str:
        how = f"key lookup {self.pin}" if self.keys is not None else "FULL SCAN (row/time limit)"
        inner = self._query.explain().splitlines()
        return "\n".join([f"PullQuery {self.table.name}: {how}", *("  " + s for s in inner)])

    def _rows(self) -> Iterator[tuple[Any, Any]]:
        if self.keys is None:
            if not isinstance(self.table, ScanTable):  # an external table: by key only
                raise UnsupportedError(
                    E_NOT_SCANNABLE.format(table=self.table.name, source=self.table.describe())
                )
            yield from self.table.items()
            return
        for key in self.keys:
            value = self.table.get(key)
            if value is not None:
                yield key, value

    def _run(
        self, max_rows: int, time_limit: float, clock: Callable[[], float]
    ) -> Generator[None, None, PullResult]:
        start = clock()
        cap = max_rows if self.limit is None else min(self.limit, max_rows)
        record = self._query.record_fn()
        out: list[dict[str, Any]] = []
        scanned, stopped = 0, None
        try:
            for key, value in self._rows():
                if not self.aggregate and len(out) >= cap:
                    # A LIMIT the query asked for is an answer, not a cut.
                    stopped = None if self.limit is not None and cap == self.limit else "row limit"
                    break
                scanned += 1
                row = value if isinstance(value, Mapping) else {"value": value}
                out.extend(record(row, key, None, -1, scanned - 1))
                if scanned % CHUNK == 0:
                    if clock() - start > time_limit:
                        if self.aggregate:
                            raise PullTimeoutError(
                                E_PULL_TIME.format(limit=time_limit, scanned=scanned),
                                scanned=scanned,
                            )
                        stopped = "time limit"
                        break
                    yield
            if self.aggregate:
                out = [r for r in self._query.finish() if not isinstance(r, Retraction)]
                if len(out) > cap:
                    out, stopped = out[:cap], "row limit"
        finally:
            self._query.close()
        rows = [dict(r) for r in out[:cap]]
        elapsed = (clock() - start) * 1000
        return PullResult(self.columns, rows, self.strategy, scanned, stopped, elapsed)

    def execute(
        self,
        *,
        max_rows: int = 1000,
        time_limit: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> PullResult:
        """Runs to the end in one go (tests, the CLI)."""
        steps = self._run(max_rows, time_limit, clock)
        while (result := _step(steps)) is None:
            pass
        return result

    async def execute_async(self, *, max_rows: int = 1000, time_limit: float = 2.0) -> PullResult:
        """As :meth:`execute`, yielding to the event loop every ``CHUNK`` rows: a scan shares
        the worker's loop with the table loaders and the queries."""
        import asyncio

        steps = self._run(max_rows, time_limit, time.monotonic)
        while True:
            if (result := _step(steps)) is not None:
                return result
            await asyncio.sleep(0)


def _step(steps: Generator[None, None, PullResult]) -> PullResult | None:
    """One step of a scan (:meth:`PullQuery._run`): None while it goes on, its result at its end."""
    try:
        next(steps)
    except StopIteration as done:
        result: PullResult = done.value
        return result
    return None


def compile_pull_query(
    sql: str, tables: Mapping[str, Table], schemas: dict[str, RelationSchema] | None = None
) -> PullQuery:
    """Parse, bind and plan a pull query over ``tables`` (name → table). Raises a
    :class:`~sql.errors.SqlCompileError` (line and column) for a bad query.

    ``schemas``: a cache of the tables' inferred columns (lower-case name → schema), read and
    filled here; the caller decides how long it stays valid."""
    return PullQuery(sql, tables, schemas)
