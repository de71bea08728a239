"""The SQL error family: one root, positions on compile-time errors, record context at run time.

Compile-time errors (parse, bind, type, unsupported) carry ``line``/``column`` (1-based), a caret
excerpt of the offending line and, for unknown names, the nearest valid identifier. Run-time errors
belong to one record: the query keeps running for the next one, the caller decides what to do
with the failed record (the runner reports it and exits non-zero).
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

from core.errors import TablestreamError

E_UNKNOWN_TABLE = "unknown table or stream {name!r}"
E_UNKNOWN_COLUMN = "unknown column {name!r}"
E_UNKNOWN_KEY_COLUMN = "stream {stream!r} declares key={key!r}, which is not one of its columns"
E_UNKNOWN_QUALIFIER = "unknown table alias {name!r} in {ref!r}"
E_AMBIGUOUS_COLUMN = "column {name!r} is ambiguous: it exists in {relations}"
E_TYPE_MISMATCH = "type mismatch: cannot apply {op} to {left} and {right}"
E_NOT_BOOLEAN = "{clause} must be BOOLEAN, got {type}"
E_AGGREGATE_NOT_ALLOWED = "aggregate function {name} is not allowed in {clause}"
E_NOT_GROUPED = "column {name!r} must appear in GROUP BY or be used in an aggregate function"
E_SUBQUERY_COLUMNS = "subquery must return exactly one column, got {count}"
E_UNSUPPORTED = "{what} is not supported"
E_NOT_YET = "{what} is parsed but not supported yet (it comes with the versioned-tables issue)"
E_SCALAR_ROWS = (
    "more than one row returned by a scalar subquery ({count} rows): "
    "subquery #{sid} at line {line}, column {column}: ({text})"
)
E_SEVERAL_ROWS = (
    "!! may return several rows: correlated on {on}, not on the key {key} "
    "(a record matching two rows fails)"
)
E_DIVISION_BY_ZERO = "division by zero"
E_RUNTIME_TYPE = "cannot apply {op} to {left!r} and {right!r}"
E_CAST = "cannot cast {value!r} to {type}"
E_NUMERIC_OVERFLOW = (
    "numeric field overflow: {value} does not fit DECIMAL({precision},{scale}) (a field with"
    " precision {precision}, scale {scale} must round to an absolute value less than 10^{digits})"
)
E_UNKNOWN_FUNCTION = "unknown function {name}"
E_ARITY = "{name} takes {expected}, got {got}"
E_ARG_TYPE = "{name} expects {want} as argument {n}, got {got}"
E_CAST_HINT = "; cast it explicitly: {call}"
E_ARG_VALUE = "{name} expects {want} as argument {n}, got {value!r}"
E_FUNCTION_FAILED = "{name} failed on {args}: {reason}"
E_NO_QUERY = "the script has no SELECT or CREATE ... AS SELECT statement"
E_STREAM_REQUIRED = "the query must read FROM a stream, got table {name!r}"
E_ALREADY_DECLARED = "{name!r} is declared twice"
#: A scan of a table whose rows are not local (an external table without a full cache).
E_NOT_SCANNABLE = (
    "table {table!r} ({source}) cannot be scanned: read it by its key, by an equality on a"
    " column, or declare it with cache='full'"
)


class SqlError(TablestreamError):
    """Root of every SQL error."""


class SqlCompileError(SqlError):
    """An error found before any record runs; carries the position in the SQL text."""

    def __init__(
        self,
        message: str,
        *,
        sql: str = "",
        offset: int | None = None,
        suggestion: str | None = None,
        **fields: Any,
    ) -> None:
        line, column = position(sql, offset) if offset is not None else (0, 0)
        excerpt = caret_excerpt(sql, offset) if offset is not None else ""
        text = message
        if suggestion:
            text += f" (did you mean {suggestion!r}?)"
        if line:
            text = f"line {line}, column {column}: {text}"
        if excerpt:
            text += "\n" + excerpt
        super().__init__(text, line=line, column=column, suggestion=suggestion, **fields)
        self.line = line
        self.column = column
        self.excerpt = excerpt
        self.suggestion = suggestion
        self.reason = message

    def located(self, sql: str, offset: int) -> SqlCompileError:
        """This error at ``offset`` when it has no position of its own (a node without any
        identifier or literal, such as ``SELECT`` alone): every compile error has one."""
        if self.line:
            return self
        fields = {k: v for k, v in self.fields.items() if k not in ("line", "column")}
        fields.pop("suggestion", None)
        return type(self)(self.reason, sql=sql, offset=offset, suggestion=self.suggestion, **fields)


class ParseError(SqlCompileError):
    """The text is not valid SQL for this dialect."""


class BindError(SqlCompileError):
    """Unknown or ambiguous names, misplaced aggregates, wrong subquery shape."""


class SqlTypeError(BindError):
    """Operands whose types cannot meet (STRING + INTEGER, WHERE on a number, ...)."""


class UnsupportedError(SqlCompileError):
    """Valid SQL this engine does not run (yet)."""


class SqlRuntimeError(SqlError):
    """An error of one record; ``record`` holds its context when known."""

    def __init__(self, message: str, record: Any = None, **fields: Any) -> None:
        super().__init__(message, record=record, **fields)
        self.record = record
        #: Rows the failed record still caused and that must be emitted: windows that its event
        #: time closed before it failed (see ``CompiledQuery.process``).
        self.rows: list[dict[str, Any]] = []


class ScalarSubqueryError(SqlRuntimeError):
    """A scalar subquery returned more than one row for this record."""


class DivisionByZeroError(SqlRuntimeError):
    """Division or modulo by zero for this record."""


class RuntimeTypeError(SqlRuntimeError):
    """Values of dynamically typed columns that cannot meet (e.g. 'a' < 1)."""


class CastError(SqlRuntimeError):
    """A value that cannot be converted to the requested type."""


class NumericOverflowError(CastError):
    """A value with more digits than its DECIMAL(p, s) allows (PostgreSQL's "numeric field
    overflow"): ``fields`` ``value``, ``precision``, ``scale``."""


class LateRecordError(SqlRuntimeError):
    """A record whose window already closed (watermark past window end + grace).

    ``fields``: ``reason='late'``, ``event_time``, ``window`` (``{"start", "end"}`` in epoch ms),
    ``watermark``, ``grace``; the agent sends the record to the dead-letter topic.
    """


class EventTimeError(SqlRuntimeError):
    """A windowed query's record without a usable event time (field missing, NULL or not a time)."""


class StateError(SqlError):
    """Persisted aggregate state that does not fit this query (another query's state, bad data)."""


def position(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``sql``."""
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, column


def caret_excerpt(sql: str, offset: int) -> str:
    """The offending line with a caret under ``offset``."""
    if not sql:
        return ""
    offset = max(0, min(offset, len(sql)))
    start = sql.rfind("\n", 0, offset) + 1
    end = sql.find("\n", offset)
    end = len(sql) if end < 0 else end
    return f"  {sql[start:end]}\n  {' ' * (offset - start)}^"


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name``, if any is close enough to be a likely typo."""
    pool = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.6)
    return pool[match[0]] if match else None


class _Short:
    """A value in an error message, its repr cut short (a reason must stay small, whatever
    the record held: a 1 MB string, a 10,000-digit integer, a deeply nested array)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        if isinstance(self.value, int) and self.value.bit_length() > 256:
            return f"<integer of {self.value.bit_length()} bits>"
        return _REPR.repr(self.value)


def short(value: Any) -> _Short:
    """``value`` for an error message: its repr cut short."""
    return _Short(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
