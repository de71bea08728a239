"""Bounded skew between a loader's partitions (tables/skew.py), without a broker."""

from __future__ import annotations

from dataclasses import dataclass

from tables.skew import UNKNOWN_HOLD_S, PartitionSkew


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int


def recs(first: int, stamps: list[int]) -> list[Rec]:
    return [Rec(first + i, t) for i, t in enumerate(stamps)]


def test_a_partition_ahead_is_cut_at_the_bound_sought_back_and_paused_until_the_slowest_comes() -> (
    None
):
    skew = PartitionSkew(max_skew_ms=10)
    parts = ["a", "b"]
    behind = {"a", "b"}.__contains__
    cut = skew.cut({"a": recs(0, [0, 5, 10, 15, 30]), "b": recs(0, [0, 2])}, behind, parts, 0)
    assert cut.keep["a"] == recs(0, [0, 5, 10])  # bound: b's 2 + 10
    assert cut.seek == {"a": 3}
    assert (cut.pause, cut.resume) == (["a"], [])
    assert cut.keep["b"] == recs(0, [0, 2])
    cut = skew.cut({"b": recs(2, [3, 4])}, behind, parts, 0)
    assert (cut.pause, cut.resume) == ([], [])  # a's next record (15) still beyond 4 + 10
    cut = skew.cut({"b": recs(4, [8])}, behind, parts, 0)
    assert cut.resume == ["a"]
    # b at its end holds nobody back: everything of a goes through.
    cut = skew.cut({"a": recs(3, [15, 30, 100])}, {"a"}.__contains__, parts, 0)
    assert cut.keep["a"] == recs(3, [15, 30, 100])
    assert skew.times == {"a": 100, "b": 8}


def test_a_partition_not_heard_of_holds_the_others_for_a_while_only() -> None:
    skew = PartitionSkew(max_skew_ms=10)
    parts = ["a", "b"]
    behind = {"a", "b"}.__contains__
    # The broker answered a's backlog first: b has records but no known time yet.
    cut = skew.cut({"a": recs(0, [0, 50, 100])}, behind, parts, 0)
    assert (cut.keep["a"], cut.seek, cut.pause) == ([], {"a": 0}, ["a"])
    cut = skew.cut({"b": recs(0, [40])}, behind, parts, 1)
    assert cut.resume == ["a"]
    cut = skew.cut({"a": recs(0, [0, 50, 100])}, behind, parts, 1)
    assert cut.keep["a"] == recs(0, [0, 50])  # bound 40 + 10
    # A partition that never answers stops holding after UNKNOWN_HOLD_S.
    other = PartitionSkew(max_skew_ms=10)
    assert other.cut({"a": recs(0, [0])}, behind, parts, 0).keep["a"] == []
    late = other.cut({}, behind, parts, UNKNOWN_HOLD_S + 1)
    assert late.resume == ["a"]
    assert other.cut({"a": recs(0, [0, 99])}, behind, parts, UNKNOWN_HOLD_S + 2).keep["a"] == recs(
        0, [0, 99]
    )


def test_off_or_one_partition_applies_everything() -> None:
    batch = {"a": recs(0, [0, 10_000])}
    assert PartitionSkew(None).cut(batch, lambda tp: True, ["a", "b"], 0).keep == batch
    assert PartitionSkew(1).cut(batch, lambda tp: True, ["a"], 0).keep == batch
