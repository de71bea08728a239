"""Code generation: each stateless query compiled to one Python function per batch.

:func:`generate` writes the function that runs a fetched batch of one partition through a
:class:`~sql.query.CompiledQuery` — decode, WHERE, key-lookup joins, projection, encode, with the
per-record dead letters — from the same compiled plan the closures run (its
:attr:`~sql.compile.query.StreamPlan.shape`), calling the query's own closures for what it does
not write inline (subqueries, functions, CASE...). Queries it does not do at all (aggregates,
windows, DISTINCT, LIMIT, joins that are not key lookups, external tables) raise
:class:`Unsupported` with the reason; the closures run them. The closures stay the reference:
``tests/unit/sql/test_codegen.py`` runs both and DuckDB over generated queries and data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sql.codegen.batch import generate, shape_of
from sql.codegen.batch_spec import BatchFn, Encoding, Generated, StructDecoding
from sql.codegen.expr import Unsupported
from sql.codegen.fold_batch import GeneratedFold, KeyGate, fold_operator, generate_fold
from sql.codegen.fold_explain import explain_fold, explain_fold_line
from sql.codegen.sink import EmitSink, RecordSink
from sql.query import CompiledQuery


def _identity(raw: Any) -> Any:
    return raw


def _placeholder(row: Any) -> bytes:
    raise NotImplementedError


def explain_code(query: CompiledQuery, struct: StructDecoding | None = None) -> str:
    """The generated source of ``query`` as a worker runs it (a msgspec fast path for outputs;
    the NaN/Infinity check of DECIMAL outputs not known finite; ``struct``: the stream's typed
    decoding, as the worker's), or a comment saying why closures run it."""
    if query.plan.aggregate is not None:  # an aggregate: its generated fold (fold_batch)
        return explain_fold(query, struct)
    decimal = any(t.name == "DECIMAL" for t in query.output_types)
    try:
        gen = generate(
            query,
            _identity,
            Encoding(_placeholder, _placeholder, scan_nonfinite=decimal),
            None if not query.key_columns else _identity,
            struct=struct,
        )
    except Unsupported as exc:
        return f"# closures (not generated): {exc.reason}\n"
    return gen.source


def explain_line(query: CompiledQuery) -> str:
    """One EXPLAIN line: whether the worker runs generated code or closures, and why."""
    if query.plan.aggregate is not None:
        return explain_fold_line(query)
    try:
        shape_of(query)
    except Unsupported as exc:
        return f"Codegen: closures ({exc.reason})"
    try:
        gen = explain_code_or_raise(query)
    except Unsupported as exc:
        return f"Codegen: closures ({exc.reason})"
    # Lookups read through a map of the values they need (sql.codegen.projection).
    return "Codegen: one generated function per batch (--code prints it)" + "".join(
        f"\n  Projected lookup: {note}" for note in gen.notes
    )


def explain_code_or_raise(query: CompiledQuery) -> Generated:
    return generate(query, _identity, Encoding(_placeholder), None)


__all__ = [
    "BatchFn",
    "Decimal",
    "EmitSink",
    "Encoding",
    "Generated",
    "GeneratedFold",
    "KeyGate",
    "RecordSink",
    "StructDecoding",
    "Unsupported",
    "explain_code",
    "explain_line",
    "fold_operator",
    "generate",
    "generate_fold",
]
