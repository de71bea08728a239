"""Shared helpers for the SQL error tests: a small catalog and where a culprit sits in the text.

Several test modules check error positions the same way; they share these helpers from here
rather than importing each other (a test module is no library).
"""

from __future__ import annotations

import pytest

from sql import Catalog, SqlCompileError, compile_query
from tables import MemoryTable

DECLS = """CREATE TABLE users (id BIGINT, name VARCHAR, score INT, PRIMARY KEY (id))
WITH (topic='u');
CREATE STREAM orders (user_id BIGINT, amount DECIMAL(10,2), note VARCHAR) WITH (topic='o');
"""


def users_catalog() -> Catalog:
    users = MemoryTable("users", key_field="id")
    users.put_row({"id": 1, "name": "ann", "score": 3})
    users.put_row({"id": 2, "name": "bob", "score": 3})
    return Catalog.of({"users": users})


def where(sql: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """Line and column of the ``nth`` occurrence of ``needle`` in ``sql`` (independent of ours)."""
    pos = -1
    for _ in range(nth + 1):
        pos = sql.index(needle, pos + 1)
    line = sql[:pos].count("\n") + 1
    return line, pos - (sql.rfind("\n", 0, pos) + 1) + 1


def compile_err(query: str, cls: type[SqlCompileError]) -> tuple[SqlCompileError, str]:
    sql = DECLS + query
    with pytest.raises(cls) as info:
        compile_query(sql, users_catalog())
    return info.value, sql
