"""An Iceberg snapshot's frozen index files and finds rows exactly as the Kafka tables' hash
index does (the same candidates for every probe), from a column or from rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sources.iceberg_reads import FrozenIndex, build_index
from sources.iceberg_snapshots import MemoryRows
from tables import HashIndex

VALUES: list[Any] = [
    1,
    1.0,
    Decimal("1"),
    True,
    "1.00",
    "x",
    "x",
    None,
    {"nested": 1},
    [1, 2],
    dt.date(2024, 1, 2),
    "2024-01-02",
    "2024-01-02T23:30:00-02:00",
    dt.datetime(2024, 1, 2, 12, 0),
    Decimal("0.1"),
    0.1,
]
PROBES: list[Any] = [
    *VALUES,
    2,
    "1",
    "2024-01-03",
    dt.date(2024, 1, 3),
    Decimal("1.0"),
    float("nan"),
    "",
]


def test_the_same_candidates_as_the_hash_index() -> None:
    keys = [f"k{i}" for i in range(len(VALUES))]
    reference = HashIndex("f")
    for k, v in zip(keys, VALUES, strict=True):
        reference.add(k, {"f": v})
    frozen = FrozenIndex("f", zip(keys, VALUES, strict=True))
    for probe in PROBES:
        assert frozen.lookup(probe) == reference.lookup(probe), probe


def test_built_from_the_column_without_building_rows() -> None:
    names = ("id", "f")
    keys = [f"k{i}" for i in range(len(VALUES))]
    rows = MemoryRows(7, names, [list(keys), list(VALUES)], list[str | None](keys))
    index = build_index(rows, "f")
    assert index.lookup(1) == frozenset({"k0", "k1", "k2", "k3", "k4"})
    assert index.lookup("x") == frozenset({"k5", "k6"})
    assert index.lookup(None) == frozenset({"k7"})  # the join's equality never takes NULL
    assert rows.get("k0") == {"id": "k0", "f": 1}
    assert build_index(rows, "nope").lookup(1) == frozenset()
