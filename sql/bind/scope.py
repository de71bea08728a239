"""Name resolution: which relation (and env slot) a column reference reads, with positioned errors.

A query's relations each own two *slots* in the evaluation env (a Python list shared by every
compiled closure of one query): the row value and its metadata (the stream record's metadata
tuple, or a table row's key). Scopes nest like the subqueries; resolving a name in an enclosing
scope marks the reference as correlated, which is what the planner needs to know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from sql.catalog import RelationSchema
from sql.dialect import PSEUDO_COLUMNS
from sql.errors import (
    E_AMBIGUOUS_COLUMN,
    E_UNKNOWN_COLUMN,
    E_UNKNOWN_QUALIFIER,
    BindError,
    suggest,
)
from sql.types import ANY, BIGINT, TIMESTAMP, SqlType
from tables import Table

#: Metadata tuple layout of a stream record (the meta slot of a stream relation).
META_INDEX = {"_key": 0, "_timestamp": 1, "_event_time": 2, "_partition": 3, "_offset": 4}
#: Pseudo-columns typed TIMESTAMP(3) (UTC); the metadata tuple holds what the record carried
#: (epoch milliseconds, or the event-time field's value), converted when read.
TIME_COLUMNS = frozenset({"_timestamp", "_event_time"})


class Slots:
    """Allocates env positions for one compiled query."""

    def __init__(self) -> None:
        self.count = 0

    def allocate(self) -> int:
        self.count += 1
        return self.count - 1


@dataclass(eq=False, slots=True)
class BoundRelation:
    alias: str
    schema: RelationSchema
    value_slot: int
    meta_slot: int
    table: Table | None  # None for the stream

    @property
    def is_stream(self) -> bool:
        return self.table is None


@dataclass(slots=True)
class Ref:
    """A resolved column reference."""

    relation: BoundRelation | None
    name: str
    type: SqlType
    path: tuple[str, ...] = ()
    pseudo: bool = False
    alias_fn: Callable[[list[Any]], Any] | None = None


def offset_of(node: exp.Expr | None) -> int | None:
    """Smallest source offset known inside ``node`` (identifiers and literals carry positions).

    A node with none inside (``ROUND()``, ``COUNT(*)``) takes its nearest enclosing node's, so a
    compile error always has a line and column.
    """
    while node is not None:
        best: int | None = None
        for n in node.walk():
            start = n.meta.get("start") if n.meta else None
            if start is not None and (best is None or start < best):
                best = int(start)
        if best is not None:
            return best
        node = node.parent
    return None


@dataclass(eq=False)
class Scope:
    sql: str
    slots: Slots
    parent: Scope | None = None
    relations: list[BoundRelation] = field(default_factory=list)
    aliases: dict[str, tuple[Callable[[list[Any]], Any], SqlType]] = field(default_factory=dict)
    trackers: list[set[int]] = field(default_factory=list)
    used_outer: bool = False

    def child(self) -> Scope:
        return Scope(self.sql, self.slots, parent=self)

    def add(self, alias: str, schema: RelationSchema, table: Table | None) -> BoundRelation:
        rel = BoundRelation(alias, schema, self.slots.allocate(), self.slots.allocate(), table)
        self.relations.append(rel)
        return rel

    def own_slots(self) -> set[int]:
        return {s for r in self.relations for s in (r.value_slot, r.meta_slot)}

    def outer_slots(self) -> set[int]:
        out: set[int] = set()
        s = self.parent
        while s is not None:
            out |= s.own_slots()
            s = s.parent
        return out

    @contextmanager
    def track(self) -> Iterator[set[int]]:
        """Collect the slots every reference compiled meanwhile reads (nested scopes included)."""
        seen: set[int] = set()
        self.trackers.append(seen)
        try:
            yield seen
        finally:
            self.trackers.remove(seen)

    # -- resolution -----------------------------------------------------------------------------
    def resolve(self, col: exp.Column) -> Ref:
        parts = [p.name for p in col.parts]
        ref = self._resolve_parts(parts, col)
        if ref.relation is not None:
            self._mark(ref.relation)
        return ref

    def _mark(self, rel: BoundRelation) -> None:
        scope: Scope | None = self
        while scope is not None:
            for t in scope.trackers:
                t.add(rel.value_slot)
                t.add(rel.meta_slot)
            if rel in scope.relations:
                break
            scope.used_outer = True  # the reference crosses this scope's boundary
            scope = scope.parent

    def _resolve_parts(self, parts: list[str], col: exp.Column) -> Ref:
        offset = offset_of(col)
        first = parts[0]
        # t.c[.path]: a relation qualifier wins over a column with the same name.
        if len(parts) > 1:
            rel = self._find_relation(first)
            if rel is not None:
                ref = self._column_of(rel, parts[1], col)
                if ref is None:
                    cands = list(rel.schema.columns) + list(PSEUDO_COLUMNS)
                    raise BindError(
                        E_UNKNOWN_COLUMN.format(name=f"{first}.{parts[1]}"),
                        sql=self.sql,
                        offset=offset,
                        suggestion=suggest(parts[1], cands),
                    )
                ref.path = tuple(parts[2:])
                return ref
        ref = self._unqualified(first, col)
        if ref is not None:
            ref.path = tuple(parts[1:])
            return ref
        if len(parts) > 1:
            raise BindError(
                E_UNKNOWN_QUALIFIER.format(name=first, ref=".".join(parts)),
                sql=self.sql,
                offset=offset,
                suggestion=suggest(first, self._visible_aliases()),
            )
        raise BindError(
            E_UNKNOWN_COLUMN.format(name=first),
            sql=self.sql,
            offset=offset,
            suggestion=suggest(first, self._visible_columns()),
        )

    def _find_relation(self, alias: str) -> BoundRelation | None:
        scope: Scope | None = self
        while scope is not None:
            for r in scope.relations:
                if r.alias.lower() == alias.lower():
                    return r
            scope = scope.parent
        return None

    def _column_of(self, rel: BoundRelation, name: str, col: exp.Column) -> Ref | None:
        if name in META_INDEX:
            if rel.is_stream:
                pt = ANY if name == "_key" else TIMESTAMP if name in TIME_COLUMNS else BIGINT
                return Ref(rel, name, pt, pseudo=True)
            if name == "_key":
                return Ref(
                    rel, name, rel.schema.columns.get(rel.schema.key_field or "", ANY), pseudo=True
                )
        t = rel.schema.column_type(name)
        if t is None:
            return None
        return Ref(rel, name, t)

    def _unqualified(self, name: str, col: exp.Column) -> Ref | None:
        scope: Scope | None = self
        while scope is not None:
            closed = [
                r
                for r in scope.relations
                if (name in r.schema.columns) or (name in META_INDEX and scope._pseudo_ok(r, name))
            ]
            if len(closed) > 1 and name not in META_INDEX:
                raise BindError(
                    E_AMBIGUOUS_COLUMN.format(name=name, relations=[r.alias for r in closed]),
                    sql=self.sql,
                    offset=offset_of(col),
                )
            if closed:
                return self._column_of(closed[0], name, col)
            if name in scope.aliases:
                fn, t = scope.aliases[name]
                return Ref(None, name, t, alias_fn=fn)
            open_ = [r for r in scope.relations if not r.schema.closed]
            if open_:
                return self._column_of(open_[0], name, col)
            scope = scope.parent
        return None

    @staticmethod
    def _pseudo_ok(rel: BoundRelation, name: str) -> bool:
        return rel.is_stream or name == "_key"

    def _visible_aliases(self) -> list[str]:
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            out += [r.alias for r in scope.relations]
            scope = scope.parent
        return out

    def _visible_columns(self) -> list[str]:
        out: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            for r in scope.relations:
                out += list(r.schema.columns)
            out += list(scope.aliases)
            scope = scope.parent
        return out
