"""Rule (stream query): ``x IN (SELECT k FROM T WHERE p)`` over the key ``k`` of a table the
query already inner-joins on ``k = x`` → ``p`` on the joined row. One probe of ``T`` instead of
two (the join's lookup and the maintained IN-set's), EXPLAIN says which.

Pure: the stream query's SELECT in (with the catalog to read keys and column types), a rewritten
copy and one EXPLAIN line per IN considered out. Both engines (closures and generated code)
compile the rewritten query: neither knows the rule.

Why it is exact (SQL three-valued logic). Let ``S`` = the values ``t.k`` of the rows ``t`` of
``T`` where ``p(t)`` is TRUE, and a record ``r`` that reached the WHERE joined to a row ``u``:

1. ``u`` came through ``INNER JOIN T u ON ... u.k = x ...``: the ON term is TRUE, so ``x`` is
   not NULL and ``u.k = x``. ``k`` is ``T``'s primary key: unique, so ``u`` is the one row of
   ``T`` with key ``x``, and never NULL (a row without its key field is refused at load,
   ``tables.apply``), so ``S`` holds no NULL.
2. ``x IN S`` is TRUE when some member equals ``x``, i.e. when that one row ``u`` is in ``S``:
   when ``p(u)`` is TRUE. Otherwise it is FALSE, never UNKNOWN: ``x`` is not NULL and ``S`` has
   no NULL member.
3. So ``x IN S`` is TRUE exactly when ``p(u)`` is TRUE; when it is not, ``p(u)`` is FALSE or
   UNKNOWN. As an AND-ed term at the top of WHERE, FALSE and UNKNOWN both drop the record, so
   ``p(u)`` in its place keeps exactly the same records (and a record without a row ``u`` is
   dropped by the join either way). Nowhere else: under OR or NOT, FALSE and UNKNOWN differ.

What the argument needs, checked here (else the IN stays a maintained IN-set and EXPLAIN says why):
a top-level AND term of WHERE (or ``NOT`` directly over the IN: below); the subquery is ``SELECT k
FROM T [WHERE p]`` alone — no join, GROUP BY, aggregate, DISTINCT, ORDER BY, LIMIT, nested subquery,
AS OF; ``k`` is ``T``'s key; the query joins the same table with an INNER JOIN whose ON has the AND
term ``k = x`` with the IN's own ``x`` (a column of the stream); both read ``T``'s current state (no
``FOR SYSTEM_TIME AS OF`` / ``AT SNAPSHOT`` on either side: a versioned read is not the present the
IN-set holds) from a local table (its rows and its change feed are the same state); ``x`` and ``k``
are declared with the same type, BIGINT, VARCHAR or DECIMAL (the join finds rows by the key's text
form, ``tables.keys``, which is SQL equality within one of those); ``p`` reads only ``T``'s declared
columns (uncorrelated) through operators that cannot fail — comparisons, AND/OR/NOT, IS [NOT] NULL,
BETWEEN, IN lists — so no per-row error of ``p`` (which the IN-set would raise for every record
while the row exists) can go missing or appear. This holds for rows of the declared types, which a
pipeline's declared table guarantees (it refuses other rows at load,
``agents.codec.make_row_check``); a table that does not check its rows (an in-memory one) can hold a
row whose column cannot be read as its type: that row's error then comes with the records that join
it, not with every record.

A LEFT JOIN whose ON is the key's term alone folds into ``u.k IS NOT NULL AND (p)``: with a
row, steps 1 to 3 hold (``u.k = x`` is not NULL); without one (``x`` is NULL or no key equals it)
``x IN S`` is FALSE or UNKNOWN, and so is the replacement (``u.k`` reads NULL from the missing
row), while ``p`` alone on NULLs could be TRUE. With more ON terms it is not folded: a row they
reject leaves ``u`` NULL while its key is still in ``S``.

``x NOT IN (SELECT k FROM T [WHERE p])``, as an AND-ed term, over an INNER JOIN (the same
checks otherwise) folds into ``p IS NOT TRUE`` on the joined row (written ``NOT (p) IS TRUE``),
``FALSE`` without a WHERE. ``x NOT IN S`` is ``NOT (x IN S)``: by steps 1 and 2, ``x`` is not
NULL and ``S`` has no NULL member (a NOT IN over a set holding a NULL is never TRUE; ``k`` is a
primary key, so there is none), and ``x IN S`` is TRUE when ``p(u)`` is TRUE, else FALSE. So
``x NOT IN S`` is FALSE when ``p(u)`` is TRUE, else TRUE — never UNKNOWN, the value of
``p(u) IS NOT TRUE`` (UNKNOWN ``p(u)``: the row is not in ``S``, so its key is NOT IN). Without
a WHERE, ``S`` is every key: the joined row's is in it, ``x NOT IN S`` is FALSE. A record
without a row is dropped by the join either way. Not over a LEFT JOIN: there a record without
a row reads NULL columns, and ``x NOT IN S`` is TRUE for an ``x`` no key equals (or a NULL ``x``
over an empty ``S``) where ``p`` on NULLs can be anything.

One thing changes, as with any plan of AND-ed terms (SQL leaves their order to the
implementation; this planner already runs the terms that read no joined table before the joins):
``p`` runs after the join where the IN ran before it, so for a record the IN rejected, the other
AND-ed terms may now run too — same rows out; a term that raises (a division by zero) on such a
record makes it a dead letter instead of a dropped record (and the reverse where the replacement
rejects a record earlier than the IN did: a NOT IN's ``FALSE`` runs before the joins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp

from sql.catalog import Catalog, RelationSchema, qualified
from sql.dialect import PSEUDO_COLUMNS, from_of, sql_text
from sql.types import SqlType
from tables import LocalTable

#: Nodes ``p`` may use: none of them can raise on values of the declared types.
_SAFE = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Paren,
    exp.And,
    exp.Or,
    exp.Not,
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.Is,
    exp.Between,
    exp.In,
)

#: Key types whose text form (``tables.keys``) is equal exactly when the values are equal in SQL
#: (a DOUBLE's NaN is not; dates and JSON are no keys).
_KEY_TYPES = frozenset({"BIGINT", "STRING", "DECIMAL"})

_SHAPE_ARGS = ("joins", "group", "having", "distinct", "order", "limit", "offset", "qualify")


def fold_in_into_join(select: exp.Select, catalog: Catalog) -> tuple[exp.Select, list[str]]:
    """``select`` with each foldable IN replaced (a copy; ``select`` itself when none is), and
    the EXPLAIN lines: one per IN over a table the query joins, folded or why not."""
    where = select.args.get("where")
    joins = select.args.get("joins") or []
    from_ = from_of(select)
    if where is None or not joins or from_ is None or not isinstance(from_.this, exp.Table):
        return select, []
    stream_node = from_.this
    stream = catalog.schema(stream_node.name)
    if stream is None:
        return select, []
    terms = list(_conjuncts(where.this))
    top = {id(t) for t in terms}
    lines: list[str] = []
    folded: dict[int, exp.Expr | None] = {}
    for node in where.this.walk():
        if not isinstance(node, exp.In) or not isinstance(node.args.get("query"), exp.Subquery):
            continue
        sub = node.args["query"].this
        target = _joined(sub, joins)
        if target is None:
            continue  # not over a table the query joins: nothing to fold into
        join, tnode = target
        # ``x NOT IN (...)``: the NOT over the IN is the term that is replaced.
        term: exp.Expr = node.parent if isinstance(node.parent, exp.Not) else node
        negated = term is not node
        why: str | Folded
        if id(term) not in top:
            why = "not an AND-ed term of WHERE (under OR/NOT, FALSE and NULL differ)"
        else:
            why = _fold(node, sub, join, tnode, stream_node, stream, catalog, negated)
        on = join_label(join)
        if isinstance(why, str):
            lines.append(f"IN not folded into {on}: {sql_text(term)}: {why}")
            continue
        p_text = "TRUE (no WHERE)" if why.p is None else sql_text(why.p)
        if negated and sub.args.get("where") is None:
            p_text += " (no WHERE)"
        lines.append(
            f"IN folded into {on}: {sql_text(term)} → {p_text} on the joined row"
            f" (one probe of {tnode.name}, not two)"
        )
        folded[id(term)] = why.p
    if not folded:
        return select, lines
    out = select.copy()
    # The copy's terms are in the same order as the original's: map them by position.
    new_terms = list(_conjuncts(out.args["where"].this))
    keep: list[exp.Expr] = []
    for old, new in zip(terms, new_terms, strict=True):
        if id(old) not in folded:
            keep.append(new)
            continue
        p = folded[id(old)]
        if p is not None:
            keep.append(exp.Paren(this=p) if isinstance(p, (exp.Or, exp.And)) else p)
    out.set("where", exp.Where(this=exp.and_(*keep, copy=False)) if keep else None)
    return out, lines


@dataclass(frozen=True, slots=True)
class Folded:
    """What replaces a folded IN: ``p`` on the joined row; None (no WHERE): nothing."""

    p: exp.Expr | None


def join_label(join: exp.Join) -> str:
    t = join.this
    left = (join.args.get("side") or "").upper() == "LEFT"
    alias = f" AS {t.alias}" if t.alias else ""
    return f"{'Left' if left else 'Inner'}LookupJoin {t.name}{alias}"


def _conjuncts(node: exp.Expr) -> Iterator[exp.Expr]:
    """The AND-ed terms at the top of ``node`` (brackets around an AND looked through)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _joined(sub: exp.Expr, joins: list[exp.Join]) -> tuple[exp.Join, exp.Table] | None:
    """The first join of the subquery's (first) table, and that table's node."""
    if not isinstance(sub, exp.Select):
        return None
    f = from_of(sub)
    if f is None or not isinstance(f.this, exp.Table):
        return None
    name = qualified(f.this).lower()
    for j in joins:
        if isinstance(j.this, exp.Table) and qualified(j.this).lower() == name:
            return j, f.this
    return None


def _fold(
    node: exp.In,
    sub: exp.Select,
    join: exp.Join,
    tnode: exp.Table,
    stream_node: exp.Table,
    stream: RelationSchema,
    catalog: Catalog,
    negated: bool = False,
) -> str | Folded:
    """``p`` on the joined row (TRUE when the subquery has no WHERE), or why not. ``negated``
    (``x NOT IN``): ``p IS NOT TRUE`` (FALSE without a WHERE), over an INNER JOIN only."""
    side = (join.args.get("side") or "").upper()
    kind = (join.args.get("kind") or "").upper()
    left = side == "LEFT" and kind in ("", "OUTER")
    if not left and (side or kind not in ("", "INNER")):
        return f"a {side or kind} JOIN is not folded into"
    if negated and left:
        return "NOT IN is not folded into a LEFT JOIN (a record without a row may be NOT IN)"
    jnode = join.this
    if jnode.args.get("version") is not None or tnode.args.get("version") is not None:
        return "an AS OF read is not the table's current state, which the IN-set holds"
    table = catalog.table(qualified(tnode))
    schema = catalog.schema(qualified(tnode))
    if table is None or schema is None or not isinstance(table, LocalTable):
        return f"{tnode.name} is not a local table (its rows and changes are not one state)"
    key = schema.key_field or table.key_field
    if key is None or not schema.closed or key not in schema.columns:
        return f"{tnode.name} has no declared PRIMARY KEY column"
    if any(sub.args.get(a) for a in _SHAPE_ARGS) or tnode.args.get("version") is not None:
        return "the subquery is not a plain SELECT key FROM table [WHERE ...]"
    if any(isinstance(n, (exp.AggFunc, exp.Subquery, exp.Exists, exp.Window)) for n in sub.walk()):
        return "the subquery aggregates or nests subqueries"
    sub_names = {tnode.name.lower(), tnode.alias_or_name.lower()}
    items = sub.expressions
    item = items[0].unalias() if len(items) == 1 else None
    if not (
        isinstance(item, exp.Column)
        and item.name.lower() == key.lower()
        and (not item.table or item.table.lower() in sub_names)
        and len(item.parts) <= 2
    ):
        return f"the subquery does not select the key of {tnode.name} ({key})"
    lhs = node.this
    x_type = _stream_column_type(lhs, stream_node, stream, joins_schema=schema)
    if x_type is None:
        return "the IN's value is not a declared column of the stream"
    k_type = schema.columns[key]
    if x_type.name != k_type.name or k_type.name not in _KEY_TYPES:
        return (
            f"the IN's value is {x_type}, the key {k_type} (the join matches by the key's"
            f" text: SQL equality only within one of {', '.join(sorted(_KEY_TYPES))})"
        )
    u = jnode.alias_or_name
    on = join.args.get("on")
    if not _on_pins_key(on, u, key, lhs):
        return f"the join's ON has no term {u}.{key} = {sql_text(lhs)}"
    if left and on is not None and len(list(_conjuncts(on))) != 1:
        return "a LEFT JOIN's ON has more than the key's term (a row it rejects may still be IN)"
    # A LEFT JOIN's record without a row has NULL columns: `u.key IS NOT NULL` rejects it, as
    # the IN does (its x is NULL or no key equals it); with a row, u.key = x is not NULL.
    matched = exp.Not(this=exp.Is(this=exp.column(key, table=u), expression=exp.Null()))
    where = sub.args.get("where")
    if where is None:
        if negated:
            return Folded(exp.false())  # the joined row's key is always in the set
        return Folded(matched if left else None)
    p = where.this.copy()
    for n in p.walk():
        if not isinstance(n, _SAFE):
            return f"its WHERE uses {type(n).__name__.upper()}, which may fail per row"
        if isinstance(n, exp.In) and n.args.get("query") is not None:
            return "its WHERE nests a subquery"
    for col in list(p.find_all(exp.Column)):
        if len(col.parts) > 2 or (col.table and col.table.lower() not in sub_names):
            return f"its WHERE reads {sql_text(col)} (correlated)"
        name = col.name
        if name in PSEUDO_COLUMNS or name not in schema.columns:
            return f"its WHERE reads {name}, not a declared column of {tnode.name} (correlated?)"
        col.set("table", exp.to_identifier(u))
    if left:
        return Folded(exp.and_(matched, exp.Paren(this=p), copy=False))
    if negated:
        return Folded(exp.Not(this=exp.Is(this=exp.Paren(this=p), expression=exp.true())))
    return Folded(p)


def _stream_column_type(
    lhs: exp.Expr, stream_node: exp.Table, stream: RelationSchema, joins_schema: RelationSchema
) -> SqlType | None:
    """The declared type of ``lhs`` when it is a plain column of the stream, else None."""
    if not isinstance(lhs, exp.Column) or len(lhs.parts) > 2 or not stream.closed:
        return None
    if lhs.table:
        if lhs.table.lower() != stream_node.alias_or_name.lower():
            return None
    elif lhs.name in joins_schema.columns:
        return None  # unqualified and also a column of the table: leave it to the binder
    return stream.columns.get(lhs.name)


def _on_pins_key(on: exp.Expr | None, u: str, key: str, lhs: exp.Expr) -> bool:
    """Whether ``on`` has the AND-ed term ``u.key = lhs`` (either way round)."""
    if on is None:
        return False
    want = sql_text(lhs)
    for t in _conjuncts(on):
        if not isinstance(t, exp.EQ):
            continue
        for a, b in ((t.this, t.expression), (t.expression, t.this)):
            if (
                isinstance(a, exp.Column)
                and len(a.parts) == 2
                and a.table.lower() == u.lower()
                and a.name.lower() == key.lower()
                and sql_text(b) == want
            ):
                return True
    return False
