"""Compile-time side of prefetching: which probes of external tables a query can fetch ahead
per batch (:mod:`sql.operators.prefetch` runs them), and EXPLAIN's ``[source: ...]`` suffix."""

from __future__ import annotations

from sql.bind.scope import BoundRelation
from sql.compile.context import CompileContext
from sql.operators.as_of import event_millis
from sql.operators.prefetch import Prefetcher, Probe
from sql.plan.shape import Conjunct
from sql.runtime import Compiled, Env
from tables.protocol import AS_OF_TIMES, AT_VERSIONS, PrefetchTable, SnapshotLogTable, Table


def _column(key_field: str | None, pin_column: str) -> str | None:
    return None if pin_column == "_key" or pin_column == key_field else pin_column


def register_prefetch(
    ctx: CompileContext, table: Table, key_field: str | None, used: Conjunct, rel: BoundRelation
) -> None:
    """Remember ``used`` (a pin on ``table``) when the table fetches ahead."""
    if not isinstance(table, PrefetchTable) or used.pin is None:
        return
    column = _column(key_field, used.pin[0])
    reads = frozenset(used.slots - {rel.value_slot, rel.meta_slot})
    ctx.probes.append(Probe(table, column, used.pin[1].fn, reads))


def register_as_of_prefetch(
    ctx: CompileContext, table: Table, at: Compiled, by_version: bool
) -> None:
    """An as-of read of a table with snapshots: the snapshots a batch's records read are loaded
    before the batch runs (in a thread, under the table's ``on_error`` policy), not by the first
    record that needs one. Only an optimisation: a time the batch could not evaluate (it reads
    another joined table's row) is loaded by its record."""
    if not isinstance(table, SnapshotLogTable):
        return
    fn = at.fn

    def millis(env: Env) -> int | None:
        v = fn(env)
        return v if v is None or type(v) is int else event_millis(v)

    column = AT_VERSIONS if by_version else AS_OF_TIMES
    ctx.probes.append(Probe(table, column, fn if by_version else millis, frozenset()))


def source_text(table: Table, used: Conjunct | None, key_field: str | None) -> str:
    """EXPLAIN's `` [source: ...]`` suffix: where a table read goes (for an external table, the
    SQL it sends; never a password); empty for in-memory tables (tests, the offline runner's
    files)."""
    if table.kind == "memory":
        return ""
    text = table.describe()
    if isinstance(table, PrefetchTable) and used is not None and used.pin is not None:
        text += f"; sends: {table.pushed_sql(_column(key_field, used.pin[0]))}"
    return f" [source: {text}]"


def prefetcher(ctx: CompileContext, vs: int, ms: int) -> Prefetcher | None:
    """The prefetcher of a compiled query: its probes that read the stream record alone."""
    stream = {vs, ms}
    probes = [p for p in ctx.probes if p.reads <= stream]
    return Prefetcher(ctx.slots.count, vs, ms, probes) if probes else None
