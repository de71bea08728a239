"""The snapshot log (which snapshot was current when) and a snapshot's rows in memory (built on
first read, a repeated key's last row, rows without a key never found)."""

from __future__ import annotations

from sources.iceberg_snapshots import MemoryRows, SnapshotLog


def test_the_snapshot_current_at_a_time() -> None:
    log = SnapshotLog([(3000, 30), (1000, 10), (2000, 20), (4000, 10)])  # 10 rolled back to
    assert log.at(999) is None
    assert [log.at(t) for t in (1000, 1999, 2000, 3500, 4000, 10**13)] == [10, 10, 20, 30, 10, 10]
    assert log.since(10) == 1000
    assert log.since(99) is None
    assert log.first == 1000
    assert len(log) == 4
    assert SnapshotLog([]).at(5) is None


def test_rows_are_built_on_first_read() -> None:
    rows = MemoryRows(
        7,
        ("symbol", "volume", "px"),
        [["A", "B", None, "A"], [1, 2, 3, 4], [None, 0.5, 1.0, 2.0]],
        ["A", "B", None, "A"],
    )
    assert len(rows) == 2
    assert rows.duplicates == 1
    first = rows.get("A")
    assert first == {"symbol": "A", "volume": 4, "px": 2.0}  # the last row of a repeated key
    assert rows.get("A") is first  # built once
    assert rows.get("C") is None
    assert sorted(k for k, _ in rows.items()) == ["A", "B"]
    empty = MemoryRows(0)
    assert (len(empty), empty.get("A"), list(empty.items())) == (0, None, [])
