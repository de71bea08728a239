"""The generated code of projected lookups (:mod:`sql.codegen.projection`): a probe of a
lookup's map with its values unpacked (:func:`lookup`), and each value read from the entry or,
for a row the map could not hold, from the row itself (:func:`intercept`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from sql.codegen.projection import (
    NULLV,
    SLOW,
    UNSET,
    ProjectionMismatch,
    eligible,
    value_site,
)

if TYPE_CHECKING:
    from sql.codegen.expr import ExprGen
    from sql.runtime import Compiled


def intercept(g: ExprGen, c: Compiled | None, node: exp.Expr | None) -> str | None:
    """The local holding a value of a projected row (first pass: recorded, the row path
    written), or None: not such a value, the caller writes it."""
    plan = g.plan
    assert plan is not None
    if node is None and c is not None and c.read is None and c.scaled is None:
        entry = g.ctx.closures.get(id(c.fn))
        if entry is None or entry[0] is not c.fn:
            return None
        node = entry[1]
        c = None
    found = value_site(g, c, node)
    if found is None:
        return None
    site, key = found
    if plan.collecting:
        site.items.setdefault(key, (None if node is not None else c, node))
        return _row_path(g, c, node)
    if site.projection is None:
        return None  # this lookup reads its row
    cse = ("projected", id(site), key)
    known = g.w.known(cse)
    if known is not None:
        return known
    name = site.names.get(key)
    if name is None:
        raise ProjectionMismatch(f"a value of {site.label} the first pass did not see")
    # The entry's value, unpacked at the probe; a SLOW row (or an empty one) reads it here.
    with g.w.block(f"if {site.var} is {g.w.bind(SLOW, 'SLOW')}:"):
        v = _row_path(g, c, node)
        g.w.line(f"{name} = {v}")
    if key == site.fold:
        with g.w.block("else:"):  # the map holds only rows on which the term is TRUE
            g.w.line(f"{name} = True")
    exact, finite, never_null = site.flags[key]
    if exact is not None and g.exact.get(v) is exact:
        g.exact[name] = exact
    if finite and v in g.finite:
        g.finite.add(name)
    if never_null and v in g.never_null:
        g.never_null.add(name)
    g.w.remember(cse, name)
    return name


def _row_path(g: ExprGen, c: Compiled | None, node: exp.Expr | None) -> str:
    g.general = True
    try:
        if node is not None:
            return g.node(node)
        assert c is not None
        return g.compiled(c)
    finally:
        g.general = False


def lookup(g: ExprGen, get: Callable[[Any], Any], k: str, slot: int) -> str:
    """A lookup of ``k`` through ``get``: the row path where no map can follow the table (or
    in the first pass), else the map's probe — ``s`` the entry (None: no row), the values
    unpacked into their locals, the row path for a SLOW entry."""
    plan = g.plan
    assert plan is not None
    table = eligible(get)
    w = g.w
    if table is None:
        v = w.temp("s")
        g.lookup_into(get, k, v)
        return v
    site = plan.site(table, get, str(getattr(table, "name", "?")))
    site.slots.add(slot)
    if plan.collecting or site.projection is None:
        v = w.temp("s")
        g.lookup_into(get, k, v)
        g.site_by_row[v] = site
        return v
    m = site.projection
    p, s = w.temp("p"), w.temp("s")
    site.var = p
    site.names = {key: w.temp("v") for key in site.items}
    values, fill = w.bind(m.values, "proj"), w.bind(m.fill, "fill")
    slow = w.bind(SLOW, "SLOW")
    with w.block(f"if {k} is None:"):
        w.line(f"{p} = None")
    with w.block("else:"):
        if g.exact.get(k) is int:
            # Non-negative ints first in the map's dense list (Projection.dense_list).
            m.dense = True
            dense, unset = w.bind(m.dense_list, "dense"), w.bind(UNSET, "UNSET")
            with w.block(f"if {k} >= 0:"):
                with w.block("try:"):
                    w.line(f"{p} = {dense}[{k}]")
                with w.block("except IndexError:"):
                    w.line(f"{p} = {unset}")
            with w.block("else:"):
                w.line(f"{p} = {unset}")
            with w.block(f"if {p} is {unset}:"):
                with w.block("try:"):
                    w.line(f"{p} = {values}[{k}]")
                with w.block("except KeyError:"):
                    w.line(f"{p} = {fill}({k})")
        elif g.exact.get(k) is str:
            with w.block("try:"):
                w.line(f"{p} = {values}[{k}]")
            with w.block("except KeyError:"):
                w.line(f"{p} = {fill}({k})")
        else:
            miss = w.bind(_MISS, "MISS")
            w.line(
                f"{p} = {values}.get({k}, {miss}) if type({k}) is str or type({k}) is int"
                f" else {miss}"
            )
            with w.block(f"if {p} is {miss}:"):
                w.line(f"{p} = {fill}({k})")
    with w.block(f"if {p} is {slow}:"):
        g.lookup_into(get, k, s)
    with w.block("else:"):
        w.line(f"{s} = {p}")
        names = [n for key, n in site.names.items() if key != site.fold]
        if names:
            with w.block(f"if {p} is not None:"):
                if site.bare:
                    w.line(f"{names[0]} = None if {p} is {w.bind(NULLV, 'NULLV')} else {p}")
                else:
                    w.line(f"{''.join(n + ', ' for n in names)}= {p}")
    g.site_by_row[s] = site
    return s


_MISS = object()
