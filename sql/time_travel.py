"""The time-travel forms of a table reference, as parsed into ``exp.Version``.

- ``t FOR SYSTEM_TIME AS OF <time>``: the table as of a time — a literal (``TIMESTAMP
  '2024-01-01 00:00:00'``) or, per record, the stream's event time (``o.ts``);
- ``t AT SNAPSHOT <n>``, ``t FOR SYSTEM_VERSION AS OF <n>`` (also ``FOR VERSION AS OF``): the
  table at version ``n`` (an Iceberg snapshot id, a versioned table's version).

The dialect (:mod:`sql.dialect`) parses all of them into one node; this module names its parts
for the compiler and EXPLAIN, and rejects the malformed ones with the position of the phrase.
"""

from __future__ import annotations

import re

from sqlglot import exp

from sql.errors import ParseError
from sql.temporal import timestamp_to_millis, to_timestamp

E_VERSION_VALUE = "expected {what} after {phrase}"
_PHRASE = re.compile(
    r"\b(?:FOR\s+SYSTEM_TIME(?:\s+AS\s+OF)?|FOR\s+SYSTEM\s+TIME(?:\s+AS\s+OF)?|"
    r"FOR\s+SYSTEM_VERSION(?:\s+AS\s+OF)?|FOR\s+VERSION(?:\s+AS\s+OF)?|"
    r"FOR\s+TIMESTAMP(?:\s+AS\s+OF)?|AT\s+SNAPSHOT)",
    re.IGNORECASE,
)


def by_version(version: exp.Version) -> bool:
    """Whether the form names a version (snapshot id) rather than a time."""
    return str(version.this).upper() in ("VERSION", "SNAPSHOT")


def phrase(version: exp.Version) -> str:
    """The form as the user wrote it (near enough), for EXPLAIN and errors."""
    this = str(version.this).upper()
    if this == "SNAPSHOT":
        return "AT SNAPSHOT"
    if this == "VERSION":
        return "FOR SYSTEM_VERSION AS OF"
    return "FOR SYSTEM_TIME AS OF"


def label(version: exp.Version) -> str:
    """``FOR SYSTEM_TIME AS OF o.ts``, ``AT SNAPSHOT 12``: the form and its value."""
    value = version.expression
    text = value.sql(dialect="duckdb") if value is not None else ""
    return f"{phrase(version)} {text}".strip()


def phrase_span(sql: str, node: exp.Table) -> tuple[int, int] | None:
    """Where the time-travel phrase of ``node`` is in ``sql`` ([start, end)), when found."""
    start = _table_offset(node)
    if start is None:
        return None
    m = _PHRASE.search(sql, start)
    return (m.start(), m.end()) if m is not None else None


def constant(version: exp.Version) -> int | None:
    """The form's value when it is a literal: epoch milliseconds for a time, the id for a
    version; None when it is read per record (or is no literal of the right kind)."""
    value = version.expression
    if by_version(version):
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            return int(value.this)
        return None
    if isinstance(value, exp.Cast) and isinstance(value.this, exp.Literal):
        value = value.this
    if isinstance(value, exp.Literal):
        try:
            t = to_timestamp(int(value.this) if not value.is_string else value.this)
        except Exception:
            return None
        return None if t is None else timestamp_to_millis(t)
    return None


def check_versions(sql: str, tree: exp.Expr) -> None:
    """Reject a time-travel phrase without its value (``AT SNAPSHOT AS s``), pointing at what
    follows the phrase."""
    for node in tree.find_all(exp.Table):
        version = node.args.get("version")
        if not isinstance(version, exp.Version) or version.expression is not None:
            continue
        if str(version.args.get("kind")) != "AS OF":
            continue  # FOR SYSTEM_TIME ALL: rejected as unsupported by the compiler
        span = phrase_span(sql, node)
        at = _table_offset(node)
        if span is not None:  # the token after the phrase, where the value was expected
            at = span[1] + len(sql[span[1] :]) - len(sql[span[1] :].lstrip())
        what = "a snapshot id" if by_version(version) else "a time (a TIMESTAMP or a column)"
        raise ParseError(
            E_VERSION_VALUE.format(what=what, phrase=phrase(version)), sql=sql, offset=at
        )


def _table_offset(node: exp.Table) -> int | None:
    ident = node.this
    start = ident.meta.get("start") if ident is not None and ident.meta else None
    return int(start) if start is not None else None
