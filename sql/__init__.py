"""Streaming SQL over live tables: subqueries compiled to key lookups, index probes and
maintained results, with SQL-correct NULLs and exact decimals.

Public API::

    from sql import Catalog, compile_query
    q = compile_query("SELECT ... FROM orders WHERE user_id IN (SELECT id FROM users)", catalog)
    rows = q.process({"user_id": 7, ...}, key=..., timestamp=...)
    # a pull query: once over a table's current rows (key lookups when the key is pinned)
    result = compile_pull_query("SELECT * FROM users WHERE id = 7", {"users": users}).execute()
"""

from sql.catalog import Catalog, RelationSchema
from sql.errors import (
    BindError,
    CastError,
    DivisionByZeroError,
    EventTimeError,
    LateRecordError,
    NumericOverflowError,
    ParseError,
    RuntimeTypeError,
    ScalarSubqueryError,
    SqlCompileError,
    SqlError,
    SqlRuntimeError,
    SqlTypeError,
    StateError,
    UnsupportedError,
)
from sql.operators.aggregate import Retraction
from sql.pull import PullQuery, PullResult, PullTimeoutError, compile_pull_query
from sql.query import CompiledQuery, Sink, compile_query

__all__ = [
    "BindError",
    "CastError",
    "Catalog",
    "CompiledQuery",
    "DivisionByZeroError",
    "EventTimeError",
    "LateRecordError",
    "NumericOverflowError",
    "ParseError",
    "PullQuery",
    "PullResult",
    "PullTimeoutError",
    "RelationSchema",
    "Retraction",
    "RuntimeTypeError",
    "ScalarSubqueryError",
    "Sink",
    "SqlCompileError",
    "SqlError",
    "SqlRuntimeError",
    "SqlTypeError",
    "StateError",
    "UnsupportedError",
    "compile_pull_query",
    "compile_query",
]
