"""What the planner sees of a subquery, and what a rule returns: a description, never a live
structure (compilation builds those from the plan, see ``sql.compile.strategies``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlglot import exp

from sql.bind.scope import BoundRelation
from sql.runtime import Compiled, Fn
from sql.runtime.parts import SelectParts
from tables import ChangeFeedTable, LocalTable, Table


@dataclass(slots=True)
class Conjunct:
    """One AND-ed condition; ``pin`` = (column of the relation, the value it must equal)."""

    node: exp.Expr
    fn: Fn
    slots: set[int]
    pin: tuple[str, Compiled] | None = None


class AccessShape(Protocol):
    """What the access rules (key lookup, index probe, remote probe, scan) read of a relation:
    a subquery's first table (:class:`SubqueryShape`) or a joined table (:class:`JoinShape`)."""

    @property
    def relation(self) -> BoundRelation: ...

    @property
    def table(self) -> Table: ...

    @property
    def conjuncts(self) -> list[Conjunct]: ...

    @property
    def key_field(self) -> str | None: ...

    @property
    def sql(self) -> str: ...

    @property
    def node(self) -> exp.Expr:
        """Where an error about the access points (the subquery, or the JOIN)."""
        ...


@dataclass(slots=True)
class JoinShape:
    """A ``[LEFT] JOIN table ON ...`` of the stream query (or of a subquery): ``conjuncts`` are
    its ON terms. Only access rules apply: a join needs rows, never a maintained result."""

    relation: BoundRelation
    table: Table
    conjuncts: list[Conjunct]
    node: exp.Expr
    sql: str = ""

    @property
    def key_field(self) -> str | None:
        return self.relation.schema.key_field or self.table.key_field


@dataclass(slots=True)
class SubqueryShape:
    id: int
    kind: str  # "scalar" | "in" | "exists"
    select: exp.Select
    relation: BoundRelation
    table: Table
    conjuncts: list[Conjunct]
    parts: SelectParts
    correlated: bool
    nested: bool  # contains subqueries of its own
    tables: list[Table]  # every table it reads, nested subqueries included
    env_size: int
    sql: str = ""  # the query text, for errors with a position

    @property
    def key_field(self) -> str | None:
        return self.relation.schema.key_field or self.table.key_field

    @property
    def node(self) -> exp.Expr:
        return self.select

    @property
    def simple(self) -> bool:
        """No GROUP BY / aggregates / HAVING / ORDER / LIMIT: one output value per matching row."""
        p = self.parts
        return p.agg is None and not p.order and p.limit is None

    @property
    def maintainable(self) -> bool:
        """The answer depends on this table's rows alone, one row at a time, and the table can
        be listed and publishes its changes (a maintained result needs both)."""
        return not self.correlated and not self.nested and isinstance(self.table, LocalTable)

    @property
    def local_table(self) -> LocalTable:
        """The table, for rules that checked :attr:`maintainable`."""
        assert isinstance(self.table, LocalTable)
        return self.table

    @property
    def local_tables(self) -> list[ChangeFeedTable] | None:
        """Every table read, when each publishes its changes; else None."""
        out = [t for t in self.tables if isinstance(t, ChangeFeedTable)]
        return out if len(out) == len(self.tables) else None


@dataclass(frozen=True, slots=True)
class Access:
    """How the per-record pipeline finds candidate rows.

    ``kind``: ``key_lookup`` (``value`` is the key), ``index_probe`` (``column`` = ``value``),
    ``as_of`` (the key ``value`` in the table's history), ``remote_probe`` (``column`` = ``value``
    asked of an external table's database) or ``scan``.
    """

    kind: str
    value: Compiled | None = None
    column: str | None = None
    #: ``as_of`` by a version (``AT SNAPSHOT n``) instead of a time.
    by_version: bool = False


@dataclass(slots=True)
class Plan:
    """A rule's choice: an access path for the per-record pipeline (filtered by ``residual``),
    or a ``maintained`` structure kept current from the table's changes (``residual`` is then
    its WHERE): ``in_set``, ``row_count``, ``aggregate`` or ``cached_rows``."""

    strategy: str
    detail: str
    access: Access | None = None
    residual: list[Conjunct] = field(default_factory=list)
    maintained: str | None = None
    flagged: bool = False
    #: The conjunct whose value the access reads (key lookups, probes, as-of lookups; None for
    #: a scan), for prefetching and EXPLAIN.
    pin: Conjunct | None = None


@dataclass(slots=True)
class JoinStep:
    """One stream-table join as compiled: rows of ``rel`` from ``source`` (a
    :class:`sql.operators.sources.KeyLookup` for a key lookup), ``residual`` the ON terms left."""

    relation: BoundRelation
    source: Fn
    residual: Fn | None
    left: bool


@dataclass(slots=True)
class StreamShape:
    """What a stateless stream query does per record, in order, as the closure compiler built
    it: WHERE terms before the joins (``pushed``), the joins, WHERE terms after them (``late``),
    then the outputs. The code generator (:mod:`sql.codegen`) fuses these into one function."""

    stream: BoundRelation
    joins: list[JoinStep]
    pushed: list[Conjunct]
    late: list[Conjunct]
    outputs: list[Compiled]
    names: list[str]
    distinct: bool = False
    limit: int | None = None


def probe_plan(shape: AccessShape, strategy: str, kind: str) -> Plan | None:
    """An ``index_probe`` or ``remote_probe`` access on the first conjunct pinning a non-key
    column the relation can have (any column when its schema is open); None when there is none.

    The pin stays in the residual: the index or the database narrows (by Python equality, or by
    the database's own), SQL here decides."""
    schema = shape.relation.schema
    for c in shape.conjuncts:
        if c.pin is None or c.pin[0] == "_key":
            continue
        column, value = c.pin
        if schema.closed and column not in schema.columns:
            continue
        access = Access(kind, value, column)
        return Plan(strategy, c.node.sql(dialect="duckdb"), access, list(shape.conjuncts), pin=c)
    return None
