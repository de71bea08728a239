"""``t FOR SYSTEM_TIME AS OF expr``: checks at compile time, the time expression, the source.

An as-of read is a key lookup in the table's history (``get_as_of``), so it needs an equality on
the table's key; the time expression reads the enclosing query (the stream record's event time).
"""

from __future__ import annotations

from sqlglot import exp

from sql.bind.scope import Scope, offset_of
from sql.compile.context import CompileContext
from sql.compile.expr import ExprCompiler
from sql.compile.prefetch import register_as_of_prefetch
from sql.errors import E_UNSUPPORTED, BindError, SqlTypeError, UnsupportedError
from sql.operators.as_of import as_of_lookup
from sql.plan.as_of_lookup import as_of_key
from sql.plan.shape import Conjunct
from sql.runtime import Compiled, Fn
from sql.time_travel import by_version, constant, phrase, phrase_span
from sql.types import BIGINT, DATE, STRING, TIMESTAMP
from tables import SnapshotLogTable, Table, VersionedTable

E_AS_OF_NOT_VERSIONED = (
    "FOR SYSTEM_TIME AS OF needs a versioned table, and {table!r} keeps no history "
    "(declare it WITH (versions='N') or WITH (history_retention='7d'))"
)
E_AS_OF_KEY = (
    "{phrase} on {table!r} needs an equality on its key ({key}): an as-of read is "
    "a key lookup in the table's history"
)
E_AS_OF_TYPE = "FOR SYSTEM_TIME AS OF must be a TIMESTAMP, DATE or epoch milliseconds, got {type}"
E_VERSION_LITERAL = "{phrase} needs a snapshot id (a whole number literal), got {got}"
E_VERSION_NO_HISTORY = (
    "{phrase} needs a table with snapshots (connector='iceberg') or a versioned table, "
    "and {table!r} is neither"
)
_TIME_TYPES = (TIMESTAMP, DATE, BIGINT, STRING)
_FORMS = ("TIMESTAMP", "VERSION", "SNAPSHOT")


def check_as_of(ctx: CompileContext, node: exp.Table, table: Table) -> None:
    """Reject what no as-of read can answer: other period kinds, tables without history, a
    version that is no literal snapshot id."""
    version = node.args.get("version")
    if version is None:
        return
    offset = _for_offset(ctx.sql, node)
    if str(version.this).upper() not in _FORMS or str(version.args.get("kind")) != "AS OF":
        what = version.sql(dialect="duckdb")
        raise UnsupportedError(E_UNSUPPORTED.format(what=what), sql=ctx.sql, offset=offset)
    snapshots = isinstance(table, SnapshotLogTable)
    if by_version(version):
        if constant(version) is None:
            raise BindError(
                E_VERSION_LITERAL.format(phrase=phrase(version), got=version.expression.sql()),
                sql=ctx.sql,
                offset=offset_of(version.expression) or offset,
            )
        if not (snapshots or (isinstance(table, VersionedTable) and table.versioned)):
            raise BindError(
                E_VERSION_NO_HISTORY.format(phrase=phrase(version), table=table.name),
                sql=ctx.sql,
                offset=offset,
                table=table.name,
            )
        return
    if not (snapshots or (isinstance(table, VersionedTable) and table.versioned)):
        raise BindError(
            E_AS_OF_NOT_VERSIONED.format(table=table.name),
            sql=ctx.sql,
            offset=offset,
            table=table.name,
        )


def as_of_time(ctx: CompileContext, node: exp.Table, scope: Scope) -> Compiled | None:
    """The compiled AS OF expression (call before the table joins ``scope``), or None."""
    version = node.args.get("version")
    if version is None:
        return None
    at = ExprCompiler(ctx, scope, phrase(version)).compile(version.expression)
    if not (at.type.is_any or at.type in _TIME_TYPES):
        raise SqlTypeError(
            E_AS_OF_TYPE.format(type=at.type), sql=ctx.sql, offset=offset_of(version.expression)
        )
    return at


def as_of_source(
    ctx: CompileContext,
    node: exp.Table,
    table: Table,
    key_field: str | None,
    conjuncts: list[Conjunct],
    at: Compiled,
) -> tuple[Fn, Conjunct]:
    """The row source of an as-of read and the key conjunct it consumed."""
    assert isinstance(table, (VersionedTable, SnapshotLogTable))
    used = as_of_key(conjuncts, key_field)
    if used is None or used.pin is None:
        raise missing_as_of_key(ctx, node, table, key_field)
    versioned = by_version(node.args["version"])
    register_as_of_prefetch(ctx, table, at, versioned)
    return as_of_lookup(table, used.pin[1].fn, at.fn, versioned), used


def missing_as_of_key(
    ctx: CompileContext, node: exp.Table, table: Table, key_field: str | None
) -> UnsupportedError:
    return UnsupportedError(
        E_AS_OF_KEY.format(
            phrase=phrase(node.args["version"]), table=table.name, key=key_field or "_key"
        ),
        sql=ctx.sql,
        offset=_for_offset(ctx.sql, node),
    )


def _for_offset(sql: str, node: exp.Table) -> int | None:
    span = phrase_span(sql, node)
    return span[0] if span is not None else offset_of(node.this)
