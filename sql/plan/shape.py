"""What the planner sees of a subquery, and what a rule returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from sql.bind.scope import BoundRelation
from sql.compile.select import Conjunct, SelectParts
from sql.runtime import Fn
from tables.protocol import Table


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

    @property
    def key_field(self) -> str | None:
        return self.relation.schema.key_field or self.table.key_field

    @property
    def simple(self) -> bool:
        """No GROUP BY / aggregates / HAVING / ORDER / LIMIT: one output value per matching row."""
        p = self.parts
        return p.agg is None and not p.order and p.limit is None

    @property
    def maintainable(self) -> bool:
        """The answer depends on this table's rows alone, one row at a time."""
        return not self.correlated and not self.nested


@dataclass(slots=True)
class Plan:
    """A rule's choice: a row source for the per-record pipeline, or a maintained structure."""

    strategy: str
    detail: str
    source: Fn | None = None
    residual: list[Conjunct] = field(default_factory=list)
    maintained: object | None = None
    flagged: bool = False
