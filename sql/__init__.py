"""Streaming SQL over live tables: subqueries compiled to key lookups, index probes and
maintained results, with SQL-correct NULLs and exact decimals.

Public API::

    from sql import Catalog, compile_query
    q = compile_query("SELECT ... FROM orders WHERE user_id IN (SELECT id FROM users)", catalog)
    rows = q.process({"user_id": 7, ...}, key=..., timestamp=...)
    # a pull query: once over a table's current rows (key lookups when the key is pinned)
    result = compile_pull_query("SELECT * FROM users WHERE id = 7", {"users": users}).execute()

Other packages import from here only; the modules below are the engine's own business.
"""

from sql.catalog import Catalog, RelationSchema, qualified
from sql.codegen import (
    EmitSink,
    Encoding,
    Generated,
    GeneratedFold,
    KeyGate,
    RecordSink,
    StructDecoding,
    Unsupported,
    explain_code,
    explain_line,
    fold_operator,
    generate,
    generate_fold,
)
from sql.compile.aggregate_key import GroupKey
from sql.compile.partitioning import COPARTITIONED, EVERY_PARTITION, REPARTITIONED, Partitioning
from sql.dialect import Declaration, Tablestream, from_of, split_statement
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
    position,
)
from sql.functions import Function, register
from sql.operators.aggregate import Retraction
from sql.parse import Script, parse_script, query_scripts, statements
from sql.pull import PullQuery, PullResult, PullTimeoutError, compile_pull_query
from sql.query import PLANNER_RULES, CompiledQuery, Sink, compile_query
from sql.types import BIGINT_MAX, BIGINT_MIN, SqlType, converter, decimal_context

__all__ = [
    "BIGINT_MAX",
    "BIGINT_MIN",
    "COPARTITIONED",
    "EVERY_PARTITION",
    "PLANNER_RULES",
    "REPARTITIONED",
    "BindError",
    "CastError",
    "Catalog",
    "CompiledQuery",
    "Declaration",
    "DivisionByZeroError",
    "EmitSink",
    "Encoding",
    "EventTimeError",
    "Function",
    "Generated",
    "GeneratedFold",
    "GroupKey",
    "KeyGate",
    "LateRecordError",
    "NumericOverflowError",
    "ParseError",
    "Partitioning",
    "PullQuery",
    "PullResult",
    "PullTimeoutError",
    "RecordSink",
    "RelationSchema",
    "Retraction",
    "RuntimeTypeError",
    "ScalarSubqueryError",
    "Script",
    "Sink",
    "SqlCompileError",
    "SqlError",
    "SqlRuntimeError",
    "SqlType",
    "SqlTypeError",
    "StateError",
    "StructDecoding",
    "Tablestream",
    "Unsupported",
    "UnsupportedError",
    "compile_pull_query",
    "compile_query",
    "converter",
    "decimal_context",
    "explain_code",
    "explain_line",
    "fold_operator",
    "from_of",
    "generate",
    "generate_fold",
    "parse_script",
    "position",
    "qualified",
    "query_scripts",
    "register",
    "split_statement",
    "statements",
]
