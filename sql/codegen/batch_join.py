"""The key-lookup joins of the generated stateless batch function (:mod:`sql.codegen.batch`):
each join as :func:`sql.operators.join.lookup_join_stage` does it, its row looked up per record
or taken from the batch's one ``get_many`` (``found``)."""

from __future__ import annotations

from sql.codegen.expr import ExprGen
from sql.codegen.writer import Writer
from sql.operators.sources import KeyLookup
from sql.plan.shape import JoinStep
from sql.query import CompiledQuery
from sql.runtime import Compiled

#: Table kinds whose ``get_many`` answers from local state (no source to fail per record).
_BATCHED_KINDS = frozenset({"kafka", "memory"})


def batchable(join: JoinStep) -> bool:
    """Whether the join's keys can be read with one ``get_many`` per batch."""
    source = join.source
    if not isinstance(source, KeyLookup):
        return False
    table = getattr(source.get, "__self__", None)
    return (
        table is not None
        and getattr(table, "kind", None) in _BATCHED_KINDS
        and callable(getattr(table, "get_many", None))
        and not getattr(table, "versioned", False)
    )


def key_compiled(query: CompiledQuery, join: JoinStep) -> Compiled | None:
    """The compiled probe key of a key-lookup join, None when the compiler kept no entry."""
    assert isinstance(join.source, KeyLookup)
    entry = query.context.closures.get(id(join.source.key))
    return entry[2] if entry is not None and entry[0] is join.source.key else None


class JoinWriter:
    """Writes joins into ``w``; ``rows``: the variable holding each relation's row (updated)."""

    def __init__(self, w: Writer, gen: ExprGen, query: CompiledQuery, rows: dict[int, str]) -> None:
        self.w, self.gen, self.query, self.rows = w, gen, query, rows

    def key(self, join: JoinStep) -> str:
        """The expression of the join's probe key (its compiled code, else a closure call)."""
        assert isinstance(join.source, KeyLookup)
        c = key_compiled(self.query, join)
        return self.gen.compiled(c) if c is not None else self.gen.call(join.source.key)

    def join(self, join: JoinStep, i: int, found: str | None) -> None:
        """The ``i``-th join: its row in ``r{i}``, or the record skipped (inner, no match)."""
        w = self.w
        assert isinstance(join.source, KeyLookup)
        rel = join.relation
        r = f"r{i}"
        if found is None:
            # The row as looked up (maybe shared with a subquery's lookup of the same key: never
            # assigned again), r the joined row.
            k = self.key(join)
            s = self.gen.lookup(join.source.get, k, rel.value_slot)
        else:
            k, s = f"k{i}", f"s{i}"
            get = w.bind(join.source.get, "get")
            with w.block(f"if {k} is None:"):
                w.line(f"{s} = None")
            with w.block(f"elif {found} is not None and (type({k}) is int or type({k}) is str):"):
                w.line(f"{s} = {found}.get({k})")
            with w.block("else:"):
                with w.block("try:"):
                    w.line(f"{s} = {get}({k})")
                with w.block("except TypeError:"):  # an unhashable probe value: no key equals it
                    w.line(f"{s} = None")
            not_dict = f"type({s}) is not dict and not isinstance({s}, dict)"
            with w.block(f"if {s} is not None and {not_dict}:"):
                w.line(f"{s} = EMPTY")
        if join.residual is None:
            with w.block(f"if {s} is None:"):
                self._no_match(join, r, s)
            with w.block("else:"):
                self._match(join, r, s, k)
            self.rows[rel.value_slot] = r
            return
        m = f"m{i}"
        self.rows[rel.value_slot] = s
        with w.block(f"if {s} is not None:"):
            self._env(join, s, k)
            v = self.gen.residual(join.residual)
            w.line(f"{m} = {v} is True")
        with w.block("else:"):
            w.line(f"{m} = False")
        self.rows[rel.value_slot] = r
        with w.block(f"if {m}:"):
            w.line(f"{r} = {s}")
            self.gen.alias(s, r)
        with w.block("else:"):
            self._no_match(join, r, s)

    def _env(self, join: JoinStep, s: str, k: str) -> None:
        """The looked-up row and its key into the env, for the closures the code calls."""
        rel = join.relation
        self.w.env_line(f"env[{rel.value_slot}] = {s}")
        self.w.env_line(f"env[{rel.meta_slot}] = {k}")

    def _match(self, join: JoinStep, r: str, s: str, k: str) -> None:
        self.w.line(f"{r} = {s}")
        self.gen.alias(s, r)
        self._env(join, s, k)

    def _no_match(self, join: JoinStep, r: str, s: str) -> None:
        """LEFT JOIN: the row of NULLs (EMPTY); inner: the record has no output."""
        w, rel = self.w, join.relation
        if join.left:
            w.line(f"{r} = EMPTY")
            self.gen.emptied(s)
            w.env_line(f"env[{rel.value_slot}] = EMPTY")
            w.env_line(f"env[{rel.meta_slot}] = None")
        else:
            w.line("continue")
