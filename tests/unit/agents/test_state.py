"""A stateful query's RocksDB store: state and source offsets in one write batch, verified on
restart like table stores."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from agents.state import QueryState, StateMismatch, Verifier
from tables.store import Fingerprint
from tests.support.records import Rec


def test_state_and_offsets_commit_together_and_survive_reopen(tmp_path: Path) -> None:
    state = QueryState(tmp_path / "q", "orders")
    state.open()
    last = {0: Rec(0, 41, b"k", b"v"), 2: Rec(2, 7, None, b"w")}
    batch = state.batch({"g/1": (3, Decimal("1.50")), "g/2": [1]}, last)
    assert state.positions() == {}  # nothing is written before commit (outputs not acked yet)
    state.commit(batch)
    state.commit(state.batch({"g/2": None}, {0: Rec(0, 42, b"k2", b"v2")}))
    del batch  # a write batch holds the column family: RocksDB's lock lives as long as it
    state.close()

    again = QueryState(tmp_path / "q", "orders")
    again.open()
    assert dict(again.items()) == {"g/1": (3, Decimal("1.50"))}
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
