"""EXPLAIN of an aggregate's generated fold (:mod:`sql.codegen.fold_batch`): its source as a
co-partitioned worker runs it, and one line saying whether the worker runs it."""

from __future__ import annotations

from typing import Any

from sql.codegen.batch_spec import Encoding, StructDecoding
from sql.codegen.fold_batch import GeneratedFold, KeyGate, generate_fold
from sql.codegen.unsupported import Unsupported
from sql.query import CompiledQuery


def _identity(x: Any) -> Any:
    return x


#: Why an aggregate that is not co-partitioned runs per record.
NOT_COPARTITIONED = (
    "aggregates and windows run per record unless co-partitioned: GROUP BY the stream's key"
)


def explain_fold(query: CompiledQuery, struct: StructDecoding | None = None) -> str:
    """The fold's source as a co-partitioned worker runs it (``struct``: the stream's typed
    decoding, else its dict decoder), or a comment saying why the general path runs it."""
    try:
        return _explained(query, struct).source
    except Unsupported as exc:
        return f"# closures (not generated): {exc.reason}\n"


def explain_fold_line(query: CompiledQuery) -> str:
    """One EXPLAIN line about the fold of an aggregate."""
    try:
        _explained(query, None)
    except Unsupported as exc:
        return f"Codegen: closures ({exc.reason})"
    return "Codegen: one generated fold per batch, co-partitioned (--code prints it)"


def _explained(query: CompiledQuery, struct: StructDecoding | None) -> GeneratedFold:
    parts = query.partitioning()
    if parts is None or not parts.copartitioned:
        raise Unsupported(NOT_COPARTITIONED)
    gate = KeyGate(parts.key_column, lambda partition: {}, lambda key, partition, value: False)
    key_of = _identity if query.key_columns else None
    sink = query.sink.topic if query.sink is not None else "<sink>"
    return generate_fold(
        query,
        Encoding(_identity),
        key_of,
        query.key_columns,
        struct if struct is not None else _identity,
        sink,
        gate,
    )
