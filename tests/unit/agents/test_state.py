"""A stateful query's RocksDB store: state and source offsets in one write batch, verified on
restart like table stores."""

from __future__ import annotations

import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from agents.state import QueryState, StateMismatch, Verifier, decode_value, encode_value
from sql import compile_query
from tables.store import Fingerprint
from tests.support.records import Rec


def test_state_and_offsets_commit_together_and_survive_reopen(tmp_path: Path) -> None:
    state = QueryState(tmp_path / "q", "orders")
    state.open()
    last = {0: Rec(0, 41, b"k", b"v"), 2: Rec(2, 7, None, b"w")}
    batch = state.batch({"g/1": [3, "1.50", {"max": None}], "g/2": [1]}, last)
    assert state.positions() == {}  # nothing is written before commit (outputs not acked yet)
    state.commit(batch)
    state.commit(state.batch({"g/2": None}, {0: Rec(0, 42, b"k2", b"v2")}))
    del batch  # a write batch holds the column family: RocksDB's lock lives as long as it
    state.close()

    again = QueryState(tmp_path / "q", "orders")
    again.open()
    assert dict(again.items()) == {"g/1": [3, "1.50", {"max": None}]}
    assert again.positions() == {0: 43, 2: 8}
    assert again.fingerprints()[0] == Fingerprint.of(42, b"k2", b"v2")
    again.close()

    # A store written for another topic is not trusted.
    other = QueryState(tmp_path / "q", "orders-v2")
    other.open()
    assert other.positions() == {}
    assert list(other.items()) == []
    other.close()


def test_verifier_accepts_the_same_record_and_rejects_a_different_one() -> None:
    tp = TopicPartition("orders", 0)
    fp = Fingerprint.of(10, b"k", b"v")
    v = Verifier()
    v.expect(tp, fp)
    assert v.check(tp, []) == []  # nothing fetched yet: still pending
    assert v.pending
    rest = [Rec(0, 10, b"k", b"v"), Rec(0, 11, b"k", b"x")]
    assert v.check(tp, rest) == rest[1:]
    assert not v.pending

    v.expect(tp, fp)
    with pytest.raises(StateMismatch, match="differs"):
        v.check(tp, [Rec(0, 10, b"k", b"other")])
    v.expect(tp, fp)
    with pytest.raises(StateMismatch, match="restarted numbering"):
        v.check(tp, [Rec(0, 3, b"k", b"v")])
    with pytest.raises(StateMismatch, match="ends at 5"):
        Verifier.check_highwater(tp, 5, 11)
    Verifier.check_highwater(tp, 11, 11)


def test_stores_written_with_pickles_are_still_read(tmp_path: Path) -> None:
    """Values were pickled before MessagePack: a store written then loads as it was."""
    old = [[7], 1_000, 11_000, [2, [1, 0, "3.50", 0, 1]], 0, False, True]
    state = QueryState(tmp_path / "q", "orders")
    state.open()
    batch = state.store.batch()
    batch.put(b"w:1000:[7]", pickle.dumps(old, pickle.HIGHEST_PROTOCOL))
    batch.put(b"time", pickle.dumps({"max": 5, "wm": 5}, 2))
    state.store.commit(batch)
    del batch
    assert dict(state.items()) == {"w:1000:[7]": old, "time": {"max": 5, "wm": 5}}
    state.close()
    assert decode_value(encode_value({})) == {}  # the one MessagePack value beginning 0x80
    assert decode_value(encode_value("\ud800")) == "\ud800"  # not MessagePack: pickled


WINDOWED = """
CREATE STREAM s (k BIGINT, name VARCHAR, x DECIMAL(10,2), d DOUBLE, ts BIGINT)
  WITH (topic='s', timestamp='ts');
SELECT k, name, COUNT(*) AS n, SUM(x) AS sx, SUM(d) AS sd, MIN(name) AS lo, AVG(x) AS ax,
       COUNT(DISTINCT d) AS nd
FROM s WINDOW {window} GROUP BY k, name EMIT CHANGES
"""


@pytest.mark.parametrize("window", ["TUMBLING(10s)", "HOPPING(10s, 5s)", "SESSION(5s)", None])
def test_operator_state_round_trips_exactly(tmp_path: Path, window: str | None) -> None:
    """Every entry the aggregate operators write is JSON-safe (no tuple, no Decimal: MessagePack
    would change their type) and loads back to the same values."""
    sql = WINDOWED.format(window=window)
    if window is None:
        sql = sql.replace("WINDOW None ", "")
    q = compile_query(sql, {}, typed_streams=True)
    rows: list[dict[str, Any]] = [
        {"k": 1, "name": "a\u00e9", "x": Decimal("1.50"), "d": 0.1, "ts": 1_000},
        {"k": 2**62, "name": None, "x": None, "d": float("inf"), "ts": 2_000},
        {"k": 1, "name": "a\u00e9", "x": Decimal("-99999999.99"), "d": 1e300, "ts": 9_000},
    ]
    for i, r in enumerate(rows):
        q.process(r, timestamp=r["ts"], offset=i)
    dirty = q.dirty_state()
    assert dirty
    state = QueryState(tmp_path / "q", "s")
    state.open()
    state.commit(state.batch(dirty, {}))
    stored = dict(state.items())
    state.close()
    assert stored == {k: v for k, v in dirty.items() if v is not None}
    again = compile_query(sql, {}, typed_streams=True)
    again.restore_state(stored.items())
    more = {"k": 1, "name": "a\u00e9", "x": Decimal("0.01"), "d": 2.0, "ts": 9_500}
    assert again.process(more, timestamp=9_500, offset=9) == q.process(
        more, timestamp=9_500, offset=9
    )
