"""State shared while compiling one query: the text, catalog, env slots and the subquery hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sql.bind.scope import Scope, Slots
from sql.catalog import Catalog
from sql.plan.planner import RULES, Rule
from sql.runtime import Compiled
from sql.types import SqlType


@dataclass(slots=True)
class AggBinding:
    """How aggregate calls and GROUP BY keys read their values while computing output rows.

    ``env[agg_slot]`` holds the tuple of aggregate results, ``env[key_slot]`` the group key tuple.
    """

    agg_slot: int
    key_slot: int
    calls: list[exp.AggFunc] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)  # normalized GROUP BY sql -> position
    scope: Scope | None = None

    def index_of(self, node: exp.AggFunc) -> int | None:
        for i, c in enumerate(self.calls):
            if c is node:
                return i
        return None


@dataclass(slots=True)
class FusedSubquery:
    """What a fused subquery closure does, for the code generator to write it inline: a key
    lookup (``exists`` / ``scalar``: ``lookup`` a :class:`sql.operators.sources.KeyLookup`, the
    row into env slots ``vs``/``ms``, ``where`` the remaining terms, ``outputs`` the select list)
    or a maintained IN-set probe (``in_set``: ``contains(lhs)``)."""

    kind: str
    lookup: Any = None
    vs: int = -1
    ms: int = -1
    where: Callable[[list[Any]], Any] | None = None
    outputs: list[Compiled] = field(default_factory=list)
    lhs: Compiled | None = None
    contains: Callable[[Any], Any] | None = None


#: Compiles a subquery: (kind, select, enclosing scope, left operand for IN) -> compiled value.
SubqueryHook = Callable[[str, exp.Select, Scope, "Compiled | None", exp.Expr], "Compiled"]


@dataclass(slots=True)
class CompileContext:
    sql: str
    catalog: Catalog
    slots: Slots = field(default_factory=Slots)
    subquery: SubqueryHook | None = None
    #: Lines for EXPLAIN, in compile order: (depth, text).
    explain: list[tuple[int, str]] = field(default_factory=list)
    #: Unsubscribe callbacks of maintained structures, called by ``CompiledQuery.close``.
    closers: list[Callable[[], None]] = field(default_factory=list)
    depth: int = 0
    types: dict[int, SqlType] = field(default_factory=dict)
    counter: int = 0
    #: Stream records arrive with their declared columns already of their SQL types (the
    #: agents' decoder does it): column reads skip the conversion.
    typed_streams: bool = False
    #: The planner's rules, cheapest first (``compile_query(rules=...)`` narrows them).
    rules: tuple[Rule, ...] = RULES
    #: Probes of external tables that can be fetched ahead per batch
    #: (:class:`sql.operators.prefetch.Probe`).
    probes: list[Any] = field(default_factory=list)
    #: The stream record's env slots (value, metadata); empty outside a stream query.
    stream_slots: frozenset[int] = frozenset()
    #: Joined tables whose rows later probes can read while prefetching, by env slot
    #: (:class:`sql.operators.prefetch.Filler`).
    fillers: dict[int, Any] = field(default_factory=dict)
    #: Every expression compiled, for the code generator (:mod:`sql.codegen`): node id → (node,
    #: its compiled form), and the id of each closure → (closure, node, compiled form). The
    #: objects are kept with their ids, so an id is never read back for another object.
    compiled: dict[int, tuple[exp.Expr, Compiled]] = field(default_factory=dict)
    closures: dict[int, tuple[Any, exp.Expr, Compiled]] = field(default_factory=dict)

    #: Fused subquery closures by id: (closure, what it does), see :class:`FusedSubquery`.
    fused: dict[int, tuple[Any, FusedSubquery]] = field(default_factory=dict)

    def note(self, node: exp.Expr, c: Compiled) -> None:
        """Remember that ``node`` compiled to ``c`` (the code generator inlines it by node)."""
        self.compiled[id(node)] = (node, c)
        self.closures[id(c.fn)] = (c.fn, node, c)

    def next_id(self) -> int:
        self.counter += 1
        return self.counter
