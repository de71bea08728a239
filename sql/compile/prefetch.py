"""Compile-time side of prefetching: which probes of external tables a query can fetch ahead
per batch, and in which round (:mod:`sql.operators.prefetch` runs them); the joined tables whose
rows later probes read (fillers); EXPLAIN's ``[source: ...]`` suffix."""

from __future__ import annotations

from sql.bind.scope import BoundRelation
from sql.compile.context import CompileContext
from sql.operators.as_of import event_millis
from sql.operators.prefetch import Filler, Prefetcher, Probe
from sql.plan.shape import Conjunct
from sql.runtime import Compiled, Env, Fn
from tables import AS_OF_TIMES, AT_VERSIONS, PrefetchTable, SnapshotLogTable, Table


def _column(key_field: str | None, pin_column: str) -> str | None:
    return None if pin_column == "_key" or pin_column == key_field else pin_column


def _reads(used: Conjunct, rel: BoundRelation) -> frozenset[int]:
    return frozenset(used.slots - {rel.value_slot, rel.meta_slot})


def _fillers(ctx: CompileContext, reads: frozenset[int]) -> tuple[Filler, ...] | None:
    """The fillers (with what they read) that find the rows ``reads`` needs besides the stream
    record's, in join order; None when a slot is read that no filler finds."""
    found: set[Filler] = set()
    for slot in reads - ctx.stream_slots:
        f = ctx.fillers.get(slot)
        if f is None:
            return None
        found.add(f)
        found.update(f.after)
    return tuple(sorted(found, key=lambda f: f.vs))


def register_prefetch(
    ctx: CompileContext, table: Table, key_field: str | None, used: Conjunct, rel: BoundRelation
) -> Probe | None:
    """Remember ``used`` (a pin on ``table``) when the table fetches ahead and the pin's value
    can be known before the batch runs; the probe, or None (then fetched per record)."""
    if not isinstance(table, PrefetchTable) or used.pin is None or not ctx.stream_slots:
        return None
    reads = _reads(used, rel)
    fillers = _fillers(ctx, reads)
    if fillers is None:
        return None
    rnd = 1 + max((f.round for f in fillers), default=0)
    probe = Probe(table, _column(key_field, used.pin[0]), used.pin[1].fn, reads, rnd, fillers)
    ctx.probes.append(probe)
    return probe


def register_as_of_prefetch(
    ctx: CompileContext, table: Table, at: Compiled, by_version: bool
) -> None:
    """An as-of read of a table with snapshots: the snapshots a batch's records read are loaded
    before the batch runs (in a thread, under the table's ``on_error`` policy), not by the first
    record that needs one. Only an optimisation: a time the batch could not evaluate (it reads
    another joined table's row) is loaded by its record."""
    if not isinstance(table, SnapshotLogTable) or not ctx.stream_slots:
        return
    fn = at.fn

    def millis(env: Env) -> int | None:
        v = fn(env)
        return v if v is None or type(v) is int else event_millis(v)

    column = AT_VERSIONS if by_version else AS_OF_TIMES
    ctx.probes.append(Probe(table, column, fn if by_version else millis, frozenset()))


def register_filler(
    ctx: CompileContext,
    rel: BoundRelation,
    source: Fn,
    left: bool,
    used: Conjunct | None,
    probe: Probe | None,
) -> None:
    """A joined table found by ``source`` through its pin ``used``: later probes reading its
    row can be fetched ahead, in the round after its own (``probe``: its prefetch, None for a
    local table). Not for a scanned table (every row per record is no prefetch) or a pin that
    reads what no filler finds."""
    if used is None or not ctx.stream_slots:
        return
    after = _fillers(ctx, _reads(used, rel))
    if after is None:
        return
    if probe is not None:
        rnd = probe.round
    elif isinstance(rel.table, PrefetchTable):
        return  # its rows would be fetched one at a time while prefetching
    else:
        rnd = max((f.round for f in after), default=0)
    filler = Filler(rel.value_slot, rel.meta_slot, source, left, rnd, after)
    ctx.fillers[rel.value_slot] = ctx.fillers[rel.meta_slot] = filler


def source_text(
    table: Table, used: Conjunct | None, key_field: str | None, probe: Probe | None = None
) -> str:
    """EXPLAIN's `` [source: ...]`` suffix: where a table read goes (for an external table, the
    SQL it sends and when: per batch in which round, or per record; never a password); empty
    for in-memory tables (tests, the offline runner's files)."""
    if table.kind == "memory":
        return ""
    text = table.describe()
    if isinstance(table, PrefetchTable) and used is not None and used.pin is not None:
        text += f"; sends: {table.pushed_sql(_column(key_field, used.pin[0]))}"
        if probe is None:
            text += "; fetched per record"
        elif probe.round == 1:
            text += "; fetched per batch"
        else:
            text += f"; fetched per batch, round {probe.round}"
    return f" [source: {text}]"


def prefetcher(ctx: CompileContext, vs: int, ms: int) -> Prefetcher | None:
    """The prefetcher of a compiled query (None: it reads no external table ahead)."""
    return Prefetcher(ctx.slots.count, vs, ms, ctx.probes) if ctx.probes else None
