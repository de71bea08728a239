"""Pull queries for the web: ``POST /query`` and the table pages' ``where`` filter, through
:func:`sql.compile_pull_query`; SQL errors become 400s carrying line, column and excerpt."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from app.web.http import HttpError
from sql import (
    PullTimeoutError,
    RelationSchema,
    SqlCompileError,
    SqlError,
    compile_pull_query,
)
from tables import Table

if TYPE_CHECKING:
    from app.web.context import WebContext

#: Seconds a pull query may run (it shares the worker's event loop, yielding every few rows).
TIME_LIMIT_S = 2.0
#: Seconds the tables' inferred columns are reused between pull queries (a new column shows
#: up in queries this long after its first row at the latest).
SCHEMA_TTL_S = 10.0
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tables(ctx: WebContext) -> dict[str, Table]:
    return {t.name: t for t in ctx.tables()}


def _schemas(ctx: WebContext) -> dict[str, RelationSchema]:
    now = time.monotonic()
    if now - ctx.pull_schemas_at > SCHEMA_TTL_S:
        ctx.pull_schemas.clear()
        ctx.pull_schemas_at = now
    return ctx.pull_schemas


def _excerpt(text: str, line: int, column: int) -> str:
    lines = text.splitlines() or [""]
    source = lines[min(line, len(lines)) - 1]
    return f"  {source}\n  {' ' * (min(column, len(source) + 1) - 1)}^"


def sql_error(
    exc: SqlError, line_shift: int = 0, what: str = "sql", text: str | None = None
) -> HttpError:
    """A 400 for ``exc``; ``line_shift`` maps the position back into the user's own ``text``
    when it was wrapped into a larger statement (the filter box's predicate)."""
    if isinstance(exc, SqlCompileError):
        line = max(1, exc.line - line_shift) if exc.line else None
        column = exc.column if exc.line and exc.line > line_shift else (1 if exc.line else None)
        message = exc.reason + (f" (did you mean {exc.suggestion!r}?)" if exc.suggestion else "")
        excerpt = exc.excerpt
        if text is not None:
            excerpt = _excerpt(text, line, column) if line and column else ""
        return HttpError(
            400,
            message,
            kind=type(exc).__name__,
            line=line,
            column=column,
            excerpt=excerpt,
            parameter=what,
        )
    return HttpError(400, str(exc), kind=type(exc).__name__, parameter=what)


async def run_pull(ctx: WebContext, sql: str, limit: int) -> dict[str, Any]:
    try:
        query = compile_pull_query(sql, _tables(ctx), _schemas(ctx))
        result = await query.execute_async(max_rows=limit, time_limit=TIME_LIMIT_S)
    except (SqlError, PullTimeoutError) as exc:
        raise sql_error(exc) from None
    return {**result.as_dict(), "plan": query.explain()}


def _quote(name: str) -> str:
    return name if _IDENT.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def filter_sql(table: Table, where: str, after: str | None) -> str:
    """The pull query behind a filter box: the predicate alone on line 2 onward, so an error's
    line is the predicate's line + 1 and its column is the predicate's column."""
    sql = f"SELECT _key AS k FROM {_quote(table.name)} WHERE (\n{where}\n)"
    if after is not None:  # keys in key order: UTF-8 text compares as its bytes do
        sql += " AND _key > '" + after.replace("'", "''") + "'"
    return sql


async def filter_rows(
    ctx: WebContext, table: Table, where: str, limit: int, after: str | None
) -> tuple[list[tuple[Any, Any]], str | None]:
    """Rows of ``table`` matching the SQL predicate ``where``, in the order the table yields
    them, and why the answer may be incomplete (None, "row limit", "time limit")."""
    try:
        query = compile_pull_query(filter_sql(table, where, after), _tables(ctx), _schemas(ctx))
        result = await query.execute_async(max_rows=limit, time_limit=TIME_LIMIT_S)
    except (SqlError, PullTimeoutError) as exc:
        raise sql_error(exc, line_shift=1, what="where", text=where) from None
    rows = []
    for r in result.rows:
        value = table.get(r["k"])
        if value is not None:
            rows.append((r["k"], value))
    rows.sort(key=lambda kv: str(kv[0]))
    return rows, result.stopped
