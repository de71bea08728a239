"""Forced plan: a subquery over ``t FOR SYSTEM_TIME AS OF expr`` (or ``t AT SNAPSHOT n``) is one
as-of key lookup."""

from __future__ import annotations

from sqlglot import exp

from sql.plan.shape import Access, AccessShape, Conjunct, Plan
from sql.time_travel import by_version, constant, label
from tables import SnapshotLogTable, Table

STRATEGY = "as-of key lookup"


def as_of_key(conjuncts: list[Conjunct], key_field: str | None) -> Conjunct | None:
    """The conjunct pinning the table's key (an as-of read is a key lookup in the history)."""
    for c in conjuncts:
        if c.pin is not None and (c.pin[0] == "_key" or c.pin[0] == key_field):
            return c
    return None


def describe(node: exp.Table, table: Table | None = None) -> str:
    """``FOR SYSTEM_TIME AS OF <expr>`` for EXPLAIN; for a table with snapshots, the snapshot
    it reads (or "per record")."""
    version = node.args["version"]
    text = label(version)
    if isinstance(table, SnapshotLogTable):
        value = constant(version)
        if by_version(version):
            text += f" ({table.explain_as_of(None, value)})"
        else:
            text += f" ({table.explain_as_of(value, None)})"
    return text


def as_of_key_lookup(node: exp.Table, shape: AccessShape) -> Plan | None:
    """The table as of the record's time: maintained results and indexes describe only its
    present. None when no conjunct pins the key (compilation reports it)."""
    used = as_of_key(shape.conjuncts, shape.key_field)
    if used is None or used.pin is None:
        return None
    return Plan(
        STRATEGY,
        f"{used.node.sql(dialect='duckdb')} {describe(node, shape.table)}",
        access=Access("as_of", used.pin[1], by_version=by_version(node.args["version"])),
        residual=[c for c in shape.conjuncts if c is not used],
        pin=used,
    )
