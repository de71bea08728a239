"""What the offline runner (:mod:`sql.runner`) reads: the SQL file's queries, the ``NAME=FILE``
options, and JSON Lines input — table rows, timed table changes, stream records.

Every problem with an input is an :class:`InputError` naming the file and line (exit status 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from sqlglot import exp

from core.codec import JSONDecodeError, loads_exact
from core.errors import ConfigError
from sql.dialect import Declaration, from_of, split_statement
from sql.errors import SqlError
from sql.parse import Script, parse_script, query_scripts, statements
from sql.types import cast
from tables import MemoryTable
from tables.spec import TableSpec

E_BAD_SPEC = "expected NAME=FILE.jsonl[:KEYFIELD], got {spec!r}"
E_BAD_LINE = "{path}:{line}: {reason}"
E_NOT_OBJECT = "expected a JSON object"
E_CHANGE_KEY = 'a change needs "key" (or a value holding the key field)'
#: Record metadata in a JSON object, not columns.
RESERVED = ("_timestamp", "_key")
#: A table file line with exactly these members (and "value") is a change: null value = delete.
CHANGE_MEMBERS = frozenset({"key", "_key", "value", "_timestamp"})
HISTORY_OPTIONS = ("versions", "history_retention", "as_of_expired")


class InputError(SqlError):
    """An input file or option the runner cannot use."""


def jsonl(path: str) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, loads_exact(line)
            except JSONDecodeError as exc:
                raise InputError(E_BAD_LINE.format(path=path, line=n, reason=exc)) from exc


def split_spec(spec: str) -> tuple[str, str | None, str | None]:
    name, eq, rest = spec.partition("=")
    if not name or (eq and not rest):
        raise InputError(E_BAD_SPEC.format(spec=spec))
    if not eq:
        return name, None, None
    key = None
    head, colon, tail = rest.rpartition(":")
    if colon and head and tail.isidentifier() and not os.path.exists(rest):
        rest, key = head, tail
    return name, rest, key


def typed(value: dict[str, Any], decl: Declaration | None) -> dict[str, Any]:
    """Drop reserved keys; read declared columns into their types (DECIMAL exact from text)."""
    row = {k: v for k, v in value.items() if k not in RESERVED}
    if decl is not None and decl.columns:
        for name, t in decl.columns.items():
            if row.get(name) is not None:
                row[name] = cast(row[name], t)
    return row


def split_queries(sql: str) -> list[tuple[str, Script]]:
    """Every query of a file as (name, script): the script holds all the declarations and that
    query alone, the other queries blanked out (newlines kept: positions stay those of the file).
    A file of declarations and one query gives one script. The name is the sink's (``CREATE
    STREAM name AS ...``), ``query`` for a bare SELECT (``query2`` ... when there are several)."""
    spans = []
    for tokens in statements(sql):
        if split_statement(sql, tokens).select_span is not None:
            spans.append((tokens[0].start, tokens[-1].end + 1))
    scripts = [parse_script(sql)] if len(spans) <= 1 else query_scripts(sql, spans)
    named: list[tuple[str, Script]] = []
    for i, script in enumerate(scripts, 1):
        name = script.sink.name if script.sink is not None else ("query" if i == 1 else f"query{i}")
        named.append((name, script))
    return named


def source_of(script: Script) -> str | None:
    """The name in the query's FROM (the stream it reads), None for a FROM of something else."""
    from_ = from_of(script.require_query())
    this = from_.this if from_ is not None else None
    return this.name if isinstance(this, exp.Table) else None


def is_change(line: dict[str, Any]) -> bool:
    return "value" in line and line.keys() <= CHANGE_MEMBERS


def memory_table(name: str, key: str | None, decl: Declaration | None) -> MemoryTable:
    """A table for the runner; ``WITH (versions=..., history_retention=...)`` keep history."""
    options = {
        k: v for k, v in (decl.options if decl else {}).items() if k.lower() in HISTORY_OPTIONS
    }
    if not options:
        return MemoryTable(name, key_field=key)
    try:
        return MemoryTable.from_spec(TableSpec.from_options(name, name, key, options))
    except ConfigError as exc:
        raise InputError(str(exc), **exc.fields) from exc


def load_line(table: MemoryTable, value: Any, n: int, path: str, decl: Declaration | None) -> None:
    """Line ``n`` of a table file into ``table``: a row (keyed by its ``_key``, else its key
    field, else ``n``), or a timed change ``{"key": K, "value": {...} | null, "_timestamp": MS}``
    (null deletes)."""
    if not isinstance(value, dict):
        raise InputError(E_BAD_LINE.format(path=path, line=n, reason=E_NOT_OBJECT))
    if is_change(value):
        _put_change(table, value, n, path, decl)
        return
    key = value.get("_key", value.get(table.key_field) if table.key_field else n)
    table.put(key, typed(value, decl), int(value.get("_timestamp") or 0))


def _put_change(
    table: MemoryTable, change: dict[str, Any], n: int, path: str, decl: Declaration | None
) -> None:
    value = change["value"]
    if value is not None and not isinstance(value, dict):
        raise InputError(E_BAD_LINE.format(path=path, line=n, reason=E_NOT_OBJECT))
    key = change.get("key", change.get("_key"))
    if key is None and value is not None and table.key_field:
        key = value.get(table.key_field)
    if key is None:
        raise InputError(E_BAD_LINE.format(path=path, line=n, reason=E_CHANGE_KEY))
    value = None if value is None else typed(value, decl)
    table.put(key, value, int(change.get("_timestamp") or 0))
