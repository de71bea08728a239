"""Versioned tables: as-of reads, out-of-order records, deletes, retention, compaction.

Every scenario runs on the MemoryTable and on the RocksDB table through the loader's apply path
(the broker-backed paths are in tests/integration/tables/test_versions_broker.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tables import MemoryTable
from tables.protocol import Op, VersionRecord
from tables.spec import TableSpec
from tables.versions import HistoryExpiredError, NotVersionedError
from tests.support.versioned import AppliedTable

Factory = Callable[..., Any]


@pytest.fixture(params=["memory", "rocksdb"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[AppliedTable] = []

    def factory(**options: Any) -> Any:
        if request.param == "memory":
            return MemoryTable("prices", **options)
        t = AppliedTable(tmp_path / f"t{len(opened)}", TableSpec("prices", "prices", **options))
        opened.append(t)
        return t

    yield factory
    for t in opened:
        t.close()


def reader(t: Any) -> Any:
    return t.table if isinstance(t, AppliedTable) else t


def test_timeline_with_updates_deletes_and_out_of_order(make: Factory) -> None:
    t = make(versions=10)
    t.put("a", {"p": 1}, 100)
    t.put("a", {"p": 2}, 200)
    t.put("a", None, 300)  # deleted at 300
    t.put("a", {"p": 4}, 400)
    late = t.put("a", {"p": 1.5}, 150)  # arrives last, belongs between 100 and 200
    assert late is None  # the present did not change
    r = reader(t)
    assert r.get("a") == {"p": 4}
    expected = {
        99: None,
        100: {"p": 1},
        149: {"p": 1},
        150: {"p": 1.5},
        199: {"p": 1.5},
        200: {"p": 2},
        299: {"p": 2},
        300: None,
        399: None,
        400: {"p": 4},
        10**12: {"p": 4},
    }
    assert {ts: r.get_as_of("a", ts) for ts in expected} == expected
    assert r.get_as_of("nope", 500) is None
    assert [v.timestamp for v in r.history("a")] == [100, 150, 200, 300, 400]
    assert r.history("a")[3] == VersionRecord(300, 3, None)
    # versions follow arrival: version 3 was the delete, version 5 the late record
    assert r.get_at_version("a", 2) == {"p": 2}
    assert r.get_at_version("a", 3) is None
    assert r.get_at_version("a", 5) == {"p": 4}
    assert r.version == 5


def test_late_record_newer_than_latest_changes_the_present(make: Factory) -> None:
    t = make(versions=5)
    t.put("k", {"v": 1}, 500)
    change = t.put("k", {"v": 2}, 500)  # same timestamp: the later arrival replaces it
    assert change is not None
    assert change.op is Op.UPDATE
    assert change.version == 2
    r = reader(t)
    assert r.get_as_of("k", 500) == {"v": 2}
    assert len(r.history("k")) == 1
    assert t.put("k", None, 100) is None  # a delete in the past, before the first version
    assert r.history("k") == [VersionRecord(100, 3, None), VersionRecord(500, 2, {"v": 2})]
    assert r.get("k") == {"v": 2}


def test_changes_since_a_version(make: Factory) -> None:
    t = make(versions=10)
    t.put("a", {"v": 1}, 10)
    t.put("b", {"v": 1}, 11)
    t.put("a", {"v": 2}, 12)
    t.put("b", None, 13)
    changes = reader(t).get_changes_since(2)
    assert [(c.key, c.op, c.value, c.old_value, c.version) for c in changes] == [
        ("a", Op.UPDATE, {"v": 2}, {"v": 1}, 3),
        ("b", Op.DELETE, None, {"v": 1}, 4),
    ]


def test_retention_by_count_keeps_the_newest(make: Factory) -> None:
    t = make(versions=3)
    for i in range(6):
        t.put("a", {"v": i}, 100 * (i + 1))
    r = reader(t)
    assert [v.value for v in r.history("a")] == [{"v": 3}, {"v": 4}, {"v": 5}]
    assert r.get_as_of("a", 450) == {"v": 3}
    assert r.get_as_of("a", 150) is None  # dropped history: unknown, answered NULL


def test_retention_by_age_and_expired_reads(make: Factory) -> None:
    t = make(history_retention_ms=1000, as_of_expired="error")
    t.put("a", {"v": 1}, 1000)
    t.put("a", {"v": 2}, 1500)
    t.put("b", {"v": 1}, 1200)
    t.put("a", {"v": 3}, 3000)  # stream time 3000: horizon 2000
    r = reader(t)
    assert r.get_as_of("a", 2000) == {"v": 2}  # still needed for reads at the horizon
    assert r.get_as_of("b", 2999) == {"v": 1}  # a key's only version always stays
    with pytest.raises(HistoryExpiredError) as info:
        r.get_as_of("a", 1999)
    assert info.value.fields == {"table": "prices", "key": "a", "timestamp": 1999}
    assert [v.timestamp for v in r.history("a")] == [1500, 3000]  # 1000 went on write
    t.put("c", {"v": 1}, 4600)  # horizon 3600: the version at 1500 is no longer needed
    if isinstance(t, AppliedTable):
        assert t.state.versions is not None
        t.state.versions.sweep()
    else:
        t._history.sweep()
    assert [v.timestamp for v in r.history("a")] == [3000]
    assert [v.timestamp for v in r.history("b")] == [1200]


def test_compact_keeps_exactly_n(make: Factory) -> None:
    t = make(versions=100)
    for k in ("a", "b"):
        for i in range(7):
            t.put(k, {"v": i}, 10 * i)
    t.put("c", {"v": 0}, 5)
    r = reader(t)
    assert r.compact(2) == 10
    assert [len(r.history(k)) for k in ("a", "b", "c")] == [2, 2, 1]
    assert r.get_as_of("a", 55) == {"v": 5}
    assert r.get("a") == {"v": 6}
    with pytest.raises(ValueError, match="retain_versions"):
        r.compact(0)


def test_history_reads_on_a_plain_table_are_refused(make: Factory) -> None:
    r = reader(make())
    assert not r.versioned
    with pytest.raises(NotVersionedError, match="keeps no history"):
        r.get_as_of("a", 1)


def test_rocksdb_history_survives_reopen(tmp_path: Path) -> None:
    t = AppliedTable(tmp_path / "db", TableSpec("p", "p", versions=5))
    t.put("a", {"v": 1}, 100)
    t.put("a", {"v": 2}, 200)
    t.reopen()
    assert t.table.get_as_of("a", 150) == {"v": 1}
    assert t.table.version == 2
    assert t.table.stream_time == 200
    assert t.put("a", {"v": 3}, 300).version == 3  # type: ignore[union-attr]
    t.close()


def test_reads_at_or_after_stream_time_answer_from_the_row_as_the_history_does(
    tmp_path: Path,
) -> None:
    """The current-row shortcut of as-of reads agrees with the history seek it skips."""
    t = AppliedTable(tmp_path / "db", TableSpec("p", "p", versions=3, history_retention_ms=50))
    versions = t.state.versions
    assert versions is not None
    rng = random.Random(5)
    for _ in range(300):  # updates, deletes, late and tied timestamps
        value = None if rng.random() < 0.25 else {"v": rng.randrange(100)}
        t.put(rng.choice("abcde"), value, rng.randrange(200))
        now = t.table.stream_time
        for key in (b"a", b"b", b"c", b"d", b"e", b"f"):
            for ts in (now, now + 1, 10**12):
                assert versions.as_of(key, ts) == versions.seek(key, ts), (key, ts)
            assert versions.as_of(key, now - 1) == versions.seek(key, now - 1)
    t.close()


def test_as_of_reads_between_writes_see_every_commit(make: Factory) -> None:
    """As-of reads share one RocksDB iterator until the next write: each write is seen at once."""
    t = make(versions=10)
    t.put("k", {"p": 1}, 100)
    t.put("other", {"p": 0}, 900)  # stream time past 100: reads of 150 seek the history
    r = reader(t)
    assert r.get_as_of("k", 150) == {"p": 1}
    assert r.get_as_of("k", 150) == {"p": 1}  # the same (shared) iterator, sought again
    t.put("k", {"p": 2}, 120)  # out of order: it changes only the past
    assert r.get_as_of("k", 150) == {"p": 2}
    assert r.get_as_of("k", 110) == {"p": 1}
    t.put("k", None, 130)
    assert r.get_as_of("k", 150) is None
    assert r.get_as_of("k", 125) == {"p": 2}
