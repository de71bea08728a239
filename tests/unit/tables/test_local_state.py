"""tables.local_state.verify_resumed: a resumed partition's first fetch must start with its last
applied record, unchanged; when not, the reason names the record's topic, partition and
offsets (it is logged as the reason of the table's rebuild)."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from tables.local_state import LocalStateMismatch, verify_resumed
from tables.store import Fingerprint
from tests.support.records import Rec

TP = TopicPartition("orders", 1)


def test_the_re_read_record_is_dropped_when_unchanged() -> None:
    fetched = {TP: [Rec(1, 7, b"k", b"v"), Rec(1, 8, b"k2", b"w")]}
    verify = {TP: Fingerprint.of(7, b"k", b"v")}
    assert verify_resumed(verify, fetched) == {TP: [fetched[TP][1]]}
    assert verify == {}  # checked once


def test_a_changed_record_names_where_it_is() -> None:
    verify = {TP: Fingerprint.of(7, b"k", b"v")}
    with pytest.raises(LocalStateMismatch, match=r"^record orders\[1\]@7 differs$"):
        verify_resumed(verify, {TP: [Rec(1, 7, b"k", b"other")]})


def test_a_renumbered_partition_names_both_offsets() -> None:
    verify = {TP: Fingerprint.of(7, b"k", b"v")}
    with pytest.raises(LocalStateMismatch) as caught:
        verify_resumed(verify, {TP: [Rec(1, 2, b"k", b"v")]})
    assert str(caught.value) == (
        "orders[1] restarted numbering: read from the last applied record's offset 7, "
        "it answered offset 2"
    )
