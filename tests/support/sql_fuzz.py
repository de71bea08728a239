"""Mutated queries for the compiler: what the suite's fuzz test and bench/sql_fuzz.py share.

Seeds are the golden fixtures' queries (subqueries, windows, joins, temporal joins) plus a few
written for the purpose; mutations are the ones issue 11 found crashes with: deleted, duplicated
and swapped tokens, stray keywords, unbalanced parentheses, deep nesting, long IN lists and
expressions, unicode, control characters and NUL bytes. :func:`outcome` classifies one input:
``ok`` (it compiled), ``typed`` (the project's error with a line and column) or ``bad``.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import TablestreamError
from sql import Catalog, SqlCompileError, compile_query, parse_script
from tables.memory import MemoryTable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sql"
SCHEMA = (FIXTURES / "_schema.sql").read_text()

EXTRA_SEEDS = [
    "SELECT UPPER(symbol) AS s, LENGTH(symbol) AS n, ABS(price) AS a FROM orders "
    "WHERE symbol LIKE 'A%' AND price BETWEEN 1 AND 10",
    "SELECT user_id, COUNT(DISTINCT symbol) AS n FROM orders GROUP BY user_id HAVING COUNT(*) > 1",
    "SELECT order_id FROM orders o WHERE o.user_id IN (SELECT id FROM users u "
    "WHERE u.score > (SELECT AVG(score) FROM users WHERE country = o.country))",
    "SELECT o.order_id, CASE WHEN o.qty > 10 THEN 'big' ELSE 'small' END AS size, "
    "COALESCE(u.name, 'none') AS name FROM orders o LEFT JOIN users u ON u.id = o.user_id",
    "SELECT order_id, INTERVAL '1' HOUR AS t, CAST(price AS DOUBLE) AS p "
    "FROM orders WHERE _timestamp > TIMESTAMP '2026-01-01 00:00:00' - INTERVAL '1' DAY"
    " AND NOT EXISTS (SELECT 1 FROM config WHERE enabled)",
    # a join inside a subquery, event time against a date
    "SELECT o.order_id FROM orders o WHERE EXISTS (SELECT 1 FROM users u JOIN limits l"
    " ON l.symbol = u.tier WHERE u.id = o.user_id AND l.max_price > o.price)"
    " AND o._event_time >= DATE '2026-01-01'",
]

KEYWORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "IN",
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "AS",
    "WINDOW",
    "EMIT",
    "EMIT FINAL",
    "TUMBLING",
    "NULL",
    "IS",
    "LIKE",
    "BETWEEN",
    "DISTINCT",
    "LIMIT",
    "ORDER BY",
    "UNION",
    "INTERVAL",
    "CAST",
    "FOR SYSTEM_TIME AS OF",
    "(",
    ")",
    ",",
    ";",
    "*",
    "=",
    "'",
    '"',
    "--",
    "/*",
    "1e999",
    "-0",
    "COUNT(DISTINCT)",
    "WHRE",
    "FORM",
    "SELEC",
]
WEIRD = [
    "\x00",
    "\x01",
    "\x1b",
    "\x7f",
    "\u2019",
    "\u00e9",
    "\u202e",
    "\u0301",
    "\ufeff",
    "\U0001f600",
    "\u3000",
    "\u2028",
    "\ud7ff",
    "\\",
    "`",
    "$",
    "?",
    "@",
    "{",
    "}",
    "[",
    "]",
]
_TOKEN = re.compile(r"'[^']*'|\w+|\s+|.", re.S)


def seeds() -> list[str]:
    """Valid queries (each compiles over :func:`catalog`)."""
    out = list(EXTRA_SEEDS)
    for path in sorted(FIXTURES.glob("*.sql")):
        if path.name.startswith("_"):
            continue
        sql: list[str] = []
        for line in [*path.read_text().splitlines(), "-- case:"]:
            if line.startswith("-- case:") or line.startswith("-- plan:"):
                if sql:
                    out.append("\n".join(sql).strip())
                sql = []
            elif not line.startswith("--"):
                sql.append(line)
    return [s for s in out if s]


def catalog() -> Catalog:
    decls = parse_script(SCHEMA).declarations
    tables = {
        d.name: MemoryTable(
            d.name,
            key_field=d.primary_key,
            versions=int(d.options["versions"]) if "versions" in d.options else None,
        )
        for d in decls.values()
        if d.kind == "table"
    }
    return Catalog.of(tables)


def mutate(sql: str, rng: random.Random, *, heavy: bool = True) -> str:
    """One to three random mutations of ``sql``. ``heavy=False`` caps the size ones (IN lists
    of 2,000 items, nesting of 300) so that the suite's fuzz test stays fast."""
    for _ in range(rng.randint(1, 3)):
        sql = rng.choice(_MUTATIONS)(sql, rng, heavy)
    return sql


def _tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def _delete(sql: str, rng: random.Random, heavy: bool) -> str:
    t = _tokens(sql)
    if t:
        del t[rng.randrange(len(t))]
    return "".join(t)


def _duplicate(sql: str, rng: random.Random, heavy: bool) -> str:
    t = _tokens(sql)
    if t:
        i = rng.randrange(len(t))
        t.insert(i, t[i])
    return "".join(t)


def _swap(sql: str, rng: random.Random, heavy: bool) -> str:
    t = _tokens(sql)
    if len(t) > 1:
        i, j = rng.randrange(len(t)), rng.randrange(len(t))
        t[i], t[j] = t[j], t[i]
    return "".join(t)


def _keyword(sql: str, rng: random.Random, heavy: bool) -> str:
    t = _tokens(sql)
    t.insert(rng.randrange(len(t) + 1), f" {rng.choice(KEYWORDS)} ")
    return "".join(t)


def _weird(sql: str, rng: random.Random, heavy: bool) -> str:
    i = rng.randrange(len(sql) + 1)
    return sql[:i] + rng.choice(WEIRD) * rng.choice((1, 1, 2, 50)) + sql[i:]


def _unbalanced(sql: str, rng: random.Random, heavy: bool) -> str:
    i = rng.randrange(len(sql) + 1)
    return sql[:i] + rng.choice("()") * rng.randint(1, 4) + sql[i:]


def _deep(sql: str, rng: random.Random, heavy: bool) -> str:
    n = rng.choice((30, 60, 120, 250, 1000, 5000) if heavy else (30, 60, 120, 300))
    kind = rng.randrange(4)
    if kind == 0:
        expr = "(" * n + "1" + ")" * n
    elif kind == 1:
        expr = "1" + " + 1" * (n * 2)
    elif kind == 2:
        expr = "NOT " * n + "TRUE"
    else:
        expr = "1 IN " + "(SELECT " * min(n, 300) + "1" + ")" * min(n, 300)
    where = " WHERE " if " WHERE " not in sql.upper() else " AND "
    if rng.random() < 0.5 and " FROM orders" in sql:
        return sql.replace(" FROM orders", f", {expr} AS deep FROM orders", 1)
    return _append_condition(sql, where, f"({expr}) IS NOT NULL")


def _long_in(sql: str, rng: random.Random, heavy: bool) -> str:
    n = rng.choice((1000, 5000, 20000) if heavy else (100, 2000))
    items = ", ".join(str(i) for i in range(n))
    if rng.random() < 0.3:
        items = ", ".join(f"'{i}'" for i in range(n))
    return _append_condition(
        sql, " WHERE " if " WHERE " not in sql.upper() else " AND ", f"order_id IN ({items})"
    )


def _append_condition(sql: str, glue: str, cond: str) -> str:
    m = re.search(r"\b(GROUP BY|WINDOW|EMIT|LIMIT)\b", sql, re.I)
    if m is None or glue == " AND ":
        m2 = re.search(r"\bWHERE\b", sql, re.I)
        if m2 is not None:
            return sql[: m2.end()] + f" {cond} AND" + sql[m2.end() :]
        return sql + glue + cond
    return sql[: m.start()] + glue + cond + " " + sql[m.start() :]


_MUTATIONS = (
    _delete,
    _delete,
    _duplicate,
    _swap,
    _keyword,
    _keyword,
    _weird,
    _unbalanced,
    _deep,
    _long_in,
)


@dataclass
class Outcome:
    kind: str  # "ok" | "typed" | "bad"
    seconds: float
    error: BaseException | None = None


def outcome(sql: str, cat: Catalog | None = None) -> Outcome:
    """Compile ``SCHEMA + sql``: did it compile, fail with a positioned project error, or not?"""
    start = time.perf_counter()
    try:
        q = compile_query(SCHEMA + sql, cat if cat is not None else catalog())
    except SqlCompileError as exc:
        took = time.perf_counter() - start
        if exc.line >= 1 and exc.column >= 1:
            return Outcome("typed", took, exc)
        return Outcome("bad", took, exc)
    except TablestreamError as exc:  # the root, but without a position
        return Outcome("bad", time.perf_counter() - start, exc)
    except Exception as exc:  # exactly what the fuzzer looks for
        return Outcome("bad", time.perf_counter() - start, exc)
    took = time.perf_counter() - start
    q.close()
    return Outcome("ok", took)
