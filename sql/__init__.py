"""Streaming SQL over live tables: subqueries compiled to key lookups, index probes and
maintained results, with SQL-correct NULLs and exact decimals.

Public API::

    from sql import Catalog, compile_query
    q = compile_query("SELECT ... FROM orders WHERE user_id IN (SELECT id FROM users)", catalog)
    rows = q.process({"user_id": 7, ...}, key=..., timestamp=...)
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
    "compile_query",
]
