"""Projected lookups: per query and looked-up table, a map from the probed key to the values the
query computes from that table's row, kept current from the table's change feed.

Where the generated function looks a row up by key (a key-lookup join, an EXISTS or scalar
subquery by key) and then reads only a column or two of it, or tests it against constants
(``u.tier <> 'blocked'`` after the IN folded into the join), it probes this map instead: one
dict probe gives a tuple of the finished values (the comparison's TRUE/FALSE/NULL, the column
converted to its type, the DECIMAL quantized to its scale), where the row path probes the row
cache, then the row's own dict per column, converts, compares. On this machine that is ~25% of
the pipeline's CPU per record: the row path's dereferences are cache misses over 10k users
(docs/BENCHMARKS.md, "Projected lookups").

Exact by construction: the values are written by the same :class:`~sql.codegen.expr.ExprGen`
code as the inline path, run once per key by a generated ``project(row)``; only expressions
of column reads, constants and the inline operators qualify (deterministic functions of the
row). A row on which any of them raises is kept as :data:`SLOW`, and records probing it take
the row path at each value's own place in the function, so errors (dead letters) come where
and in the order they do without the map. A change of the table drops the key (its int form
too, :func:`tables.drop_key`, as :class:`agents.cache.CachedTable` does); the map holds only
what the table's ``get`` answered from local state, and starts over when full.

Generation is two passes over the query: the first writes the row path and records, per
lookup, what is read from the row (:class:`Site`); the second writes the probes
(:mod:`sql.codegen.projection_probe`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sql.codegen.unsupported import Unsupported
from sql.codegen.writer import Writer
from tables import Change, drop_key, int_alias

if TYPE_CHECKING:
    from sql.codegen.expr import ExprGen
    from sql.runtime import Compiled

#: Entries per map; it starts over when full (hot keys come back at once), as the row cache.
MAX_ENTRIES = 200_000
#: Int keys below this may be held in a list indexed by the key instead of the dict (8 bytes a
#: slot), while the list stays within :data:`DENSE_SPREAD` slots per entry held: a probe is then
#: one index instead of the dict's hash slot, entry and key object (a cache miss over 10k rows).
DENSE_MAX = 1 << 20
DENSE_SPREAD = 4


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: A slot of the dense list that holds no entry (the dict is asked).
UNSET: Any = _Unset()
_EMPTY: dict[str, Any] = {}


class _Slow:
    def __repr__(self) -> str:
        return "SLOW"


#: A key whose row raised computing a value: its records take the row path.
SLOW: Any = _Slow()


class _Null:
    def __repr__(self) -> str:
        return "NULLV"


#: The entry of a row whose one value is NULL, in a map of bare values (None: no row).
NULLV: Any = _Null()


class Projection:
    """The map of one lookup site: key → tuple of values, None (no row), or :data:`SLOW`.

    Subscribes to the table's change feed at its first entry (a function generated only for
    EXPLAIN never subscribes); :meth:`close` (registered with the query's closers) ends it."""

    def __init__(
        self,
        table: Any,
        get: Callable[[Any], Any],
        project: Callable[[dict[str, Any]], tuple[Any, ...]],
        label: str,
    ) -> None:
        self.table = table
        self.get = get
        self.project = project
        self.label = label
        self.values: dict[Any, Any] = {}  # the same dict for the map's life (bound by the code)
        #: Entries of small non-negative int keys by index (UNSET: ask ``values``), the same
        #: list for the map's life; used only when the generated probe reads it (``dense``).
        self.dense_list: list[Any] = []
        self.dense = False
        self._in_dense = 0
        row_cache = getattr(table, "row_cache", None)
        self._rows: dict[Any, Any] | None = row_cache()[0] if row_cache is not None else None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    def fill(self, k: Any) -> Any:
        """The entry of ``k``, computed from the table's row and kept when ``k`` is an int or
        str probe the table answered from local state."""
        try:
            row = self.get(k)
        except TypeError:  # an unhashable probe: no key equals it
            row = None
        if row is None:
            value = None
        else:
            if type(row) is not dict and not isinstance(row, dict):
                row = _EMPTY  # as the row path reads a value that is not an object
            try:
                value = self.project(row)
            except Exception:
                value = SLOW
        tk = type(k)
        # A row cache that did not keep the answer (a stopped table's store) is not followed.
        if (
            (tk is int or tk is str)
            and not self._closed
            and (self._rows is None or k in self._rows)
        ):
            if self._unsubscribe is None:
                self._unsubscribe = self.table.subscribe(self._changed)
            values, dense = self.values, self.dense_list
            if len(values) + self._in_dense >= MAX_ENTRIES:
                values.clear()
                dense.clear()
                self._in_dense = 0
            if self.dense and tk is int and 0 <= k < DENSE_MAX:
                if k >= len(dense) and k < DENSE_SPREAD * (len(values) + self._in_dense + 1024):
                    dense.extend([UNSET] * (max(k + 1, len(dense) * 3 // 2) - len(dense)))
                if k < len(dense):
                    if dense[k] is UNSET:
                        self._in_dense += 1
                    dense[k] = value
                    return value
            values[k] = value
        return value

    def _changed(self, change: Change) -> None:
        key = change.key
        drop_key(self.values, key)
        # The same row's entry in the dense list: under the int key, or its text's int alias.
        self._undense(key if type(key) is int else int_alias(key))

    def _undense(self, k: int | None) -> None:
        dense = self.dense_list
        if k is not None and 0 <= k < len(dense) and dense[k] is not UNSET:
            dense[k] = UNSET
            self._in_dense -= 1

    def close(self) -> None:
        self._closed = True
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self.values.clear()
        self.dense_list.clear()
        self._in_dense = 0


@dataclass
class Site:
    """One lookup of the generated function (a table and a probe): what is read from its row."""

    table: Any
    get: Callable[[Any], Any]
    label: str
    #: The env slots of the row (a join's relation, each subquery's alias on this lookup).
    slots: set[int] = field(default_factory=set)
    #: Value key → (compiled, node) as first asked for, in order.
    items: dict[Any, tuple[Compiled | None, exp.Expr | None]] = field(default_factory=dict)
    projection: Projection | None = None
    #: Per value key: the local name, and its (exact type, finite, never NULL) in ``project``.
    names: dict[Any, str] = field(default_factory=dict)
    flags: dict[Any, tuple[type | None, bool, bool]] = field(default_factory=dict)
    #: The local holding the probe's entry (second pass).
    var: str = ""
    #: A WHERE term on this row alone that is the record's only test after its join (an inner
    #: join, the last): (value key, the join's slot), recorded by the first pass.
    fold_candidate: tuple[Any, int] | None = None
    #: The value key of that term when folded: a row on which it is not TRUE is no row in the
    #: map (the record is dropped at the probe, as the term would drop it).
    fold: Any = None
    #: The map's entries are the one value left itself (:data:`NULLV` for NULL), not a tuple.
    bare: bool = False


@dataclass
class ProjectionPlan:
    """The sites of one generated function: recorded by the first pass, written by the second."""

    collecting: bool = True
    sites: list[Site] = field(default_factory=list)
    _next: int = 0

    def site(self, table: Any, get: Callable[[Any], Any], label: str) -> Site:
        if self.collecting:
            s = Site(table, get, label)
            self.sites.append(s)
            return s
        s = self.sites[self._next]
        self._next += 1
        if s.get is not get:
            raise ProjectionMismatch("lookups out of step between the two passes")
        return s

    def finish(self, ctx: Any) -> None:
        """After the first pass: each site's ``project`` function and map (or none: it reads
        nothing a map can hold); then the second pass writes."""
        for s in self.sites:
            s.projection = _build(s, ctx)
        self.collecting = False
        self._next = 0

    def explain(self) -> list[str]:
        out = []
        for s in self.sites:
            if s.projection is not None:
                what = ", ".join(_describe(c, n) for c, n in s.items.values()) or "presence only"
                line = f"{s.label} by key → ({what}), a map kept from its change feed"
                if s.fold is not None:
                    c, n = s.items[s.fold]
                    line += f"; a row failing {_describe(c, n)} (the only WHERE term) is none"
                out.append(line)
        return out

    def close(self) -> None:
        for s in self.sites:
            if s.projection is not None:
                s.projection.close()


class ProjectionMismatch(Exception):
    """The second pass did not meet the first's lookups (a bug): generate without maps."""


def eligible(get: Callable[[Any], Any]) -> Any:
    """The table behind ``get`` when a map can follow it (its own ``get``, a change feed, not
    versioned), else None."""
    owner = getattr(get, "__self__", None)
    if owner is None or getattr(get, "__name__", None) != "get":
        return None
    if not callable(getattr(owner, "subscribe", None)) or getattr(owner, "versioned", False):
        return None
    if getattr(owner, "kind", None) not in ("kafka", "memory"):
        return None
    return owner


def pure_slots(g: ExprGen, node: exp.Expr) -> set[int] | None:
    """The env slots ``node`` reads when it is made only of column reads, constants and the
    inline operators (a deterministic function of those rows), else None."""
    from sql.codegen.operators import HANDLERS

    c = g.compiled_of(node)
    if c is not None:
        if c.const:
            return set()
        if c.read is not None:
            return {c.read[0]}
        if c.scaled is not None:
            return {c.scaled[0]}
    if isinstance(node, (exp.Paren, exp.Alias)):
        return pure_slots(g, node.this)
    if type(node) not in HANDLERS:
        return None
    if isinstance(node, exp.Is):
        parts = [node.this]  # IS NULL / IS TRUE: the target is the operator's own
    elif isinstance(node, exp.Connector):
        parts = list(node.flatten())
    else:
        parts = list(node.iter_expressions())
    slots: set[int] = set()
    for part in parts:
        s = pure_slots(g, part)
        if s is None:
            return None
        slots |= s
    return slots


def value_site(g: ExprGen, c: Compiled | None, node: exp.Expr | None) -> tuple[Site, Any] | None:
    """The site whose row alone gives this value, and the value's key; None when it reads
    another relation, the stream, nothing at all, or calls anything."""
    if c is not None and c.const:
        return None
    if c is not None and c.read is not None:
        slots: set[int] | None = {c.read[0]}
        key: Any = ("read", c.read[1])
    elif c is not None and c.scaled is not None:
        slots, key = {c.scaled[0]}, ("read", c.scaled[1])
    elif node is not None:
        slots, key = pure_slots(g, node), ("node", node.sql(dialect="duckdb"))
    else:
        return None
    if not slots:
        return None
    sites = {id(s): s for s in (g.site_by_row.get(g.rows.get(slot, "")) for slot in slots)}
    if len(sites) != 1 or None in sites.values():
        return None
    (site,) = sites.values()
    assert site is not None
    return site, key


def _build(site: Site, ctx: Any) -> Projection | None:
    from sql.codegen.expr import ExprGen

    w = Writer()
    gen = ExprGen(w, ctx, {slot: "r" for slot in site.slots})
    fold = None
    if site.fold_candidate is not None:
        key, slot = site.fold_candidate
        # Only the join reads this row (no subquery shares the lookup): no row and a row the
        # term drops are then alike to everything after the probe.
        if site.slots == {slot} and key in site.items:
            fold = key
    try:
        with w.block("def project(r):"):
            values = []
            for key, (c, node) in site.items.items():
                v = gen.compiled(c) if c is not None else gen.node(node)  # type: ignore[arg-type]
                exact = gen.exact.get(v)
                site.flags[key] = (exact, v in gen.finite, v in gen.never_null)
                if key == fold:
                    with w.block(f"if {v} is not True:"):
                        w.line("return None")
                else:
                    values.append(v)
            if len(values) == 1:
                nullv = w.bind(NULLV, "NULLV")
                w.line(f"return {nullv} if {values[0]} is None else {values[0]}")
            else:
                w.line(f"return ({''.join(v + ', ' for v in values)})")
    except Unsupported:
        return None
    if w.uses_env:  # a closure: not a function of the row alone
        return None
    exec(compile(w.source(), f"<projection {site.label}>", "exec"), w.namespace)
    site.fold, site.bare = fold, len(values) == 1
    return Projection(site.table, site.get, w.namespace["project"], site.label)


def _describe(c: Compiled | None, node: exp.Expr | None) -> str:
    if node is not None:
        return node.sql(dialect="duckdb")
    assert c is not None
    read = c.read if c.read is not None else c.scaled
    return str(read[1]) if read is not None else "?"
