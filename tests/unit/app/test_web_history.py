"""The body of ``GET /tables/{name}/{key}/history`` for versioned and plain tables."""

from __future__ import annotations

from pathlib import Path

from app.web import key_history
from tables.spec import TableSpec
from tests.support.versioned import AppliedTable


def test_history_view_lists_versions_and_answers_as_of(tmp_path: Path) -> None:
    t = AppliedTable(
        tmp_path / "v",
        TableSpec("prices", "prices", versions=5, history_retention_ms=1000, as_of_expired="error"),
    )
    t.put("a", {"p": 1}, 1000)
    t.put("a", None, 2000)
    t.put("a", {"p": 3}, 2500)
    status, body = key_history(t.table, "a", None)
    assert status == 200
    assert body == {
        "key": "a",
        "stream_time": 2500,
        "versions": [
            {"timestamp": 1000, "version": 1, "value": {"p": 1}},
            {"timestamp": 2000, "version": 2, "value": None},
            {"timestamp": 2500, "version": 3, "value": {"p": 3}},
        ],
    }
    assert key_history(t.table, "a", "1999") == (
        200,
        {"key": "a", "as_of": 1999, "value": {"p": 1}},
    )
    assert key_history(t.table, "a", "2000")[1]["value"] is None
    assert key_history(t.table, "a", "1400")[0] == 410  # older than the 1 s retention
    assert key_history(t.table, "a", "soon")[0] == 400
    assert key_history(t.table, "zz", None)[1]["versions"] == []
    t.close()


def test_history_view_on_a_plain_table_is_a_400(tmp_path: Path) -> None:
    t = AppliedTable(tmp_path / "p", TableSpec("users", "users"))
    status, body = key_history(t.table, "a", None)
    assert status == 400
    assert "'users' keeps no history" in body["error"]
    t.close()
