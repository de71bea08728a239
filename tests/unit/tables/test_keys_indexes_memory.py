"""Key identity, the change feed, secondary indexes and the in-memory table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables import ChangeFeed, MemoryTable, Op, Table, drop_key
from tables.indexes import twins
from tables.keys import int_alias, key_text


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("a", "a"),
        (5, "5"),
        (5.0, "5"),
        (Decimal("5.00"), "5"),
        (2.5, "2.5"),
        (Decimal("2.50"), "2.5"),
        (True, "true"),
        (b"k", "k"),
    ],
)
def test_key_text(key: object, text: str) -> None:
    assert key_text(key) == text


@pytest.mark.parametrize("key", [None, {"a": 1}, [1], Decimal("NaN")])
def test_unusable_keys_raise(key: object) -> None:
    with pytest.raises(TypeError):
        key_text(key)


@pytest.mark.parametrize(
    ("key", "alias"),
    [
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("042", None),  # int() reads it, but no int probe is written so
        ("4_2", None),
        (" 42", None),
        ("+42", None),
        ("-0", None),
        ("\u0664\u0662", None),  # Arabic-Indic digits: int() reads 42
        ("\u00b2", None),  # isdigit() but not int()
        ("4.0", None),
        ("a1", None),
        ("", None),
        (42, None),  # only text keys have an alias: an int is its own probe
        (b"42", None),
    ],
)
def test_int_alias(key: object, alias: int | None) -> None:
    assert int_alias(key) == alias
    if alias is not None:
        assert type(int_alias(key)) is int


@given(st.integers())
def test_int_alias_of_an_ints_text_is_the_int(n: int) -> None:
    assert int_alias(str(n)) == n


@given(st.text(max_size=8))
def test_int_alias_is_only_an_ints_own_text(text: str) -> None:
    alias = int_alias(text)
    assert alias is None or str(alias) == text


def test_drop_key_drops_the_key_and_its_int_alias_only() -> None:
    cache: dict[object, str] = {"42": "text", 42: "int", "042": "other", 7: "kept"}
    drop_key(cache, "42")
    assert cache == {"042": "other", 7: "kept"}
    drop_key(cache, "042")  # no alias: 42's entry would not be its row
    drop_key(cache, "missing")
    assert cache == {7: "kept"}


def test_memory_table_is_a_table_with_text_keys() -> None:
    t = MemoryTable("u", key_field="id")
    assert isinstance(t, Table)
    t.put_row({"id": 1, "c": "x"})
    assert t.get(1) == t.get("1") == {"id": 1, "c": "x"}
    assert t.get({"bad": 1}) is None
    assert t.keys() == ["1"]


def test_feed_drops_a_failing_listener_and_keeps_the_others() -> None:
    feed = ChangeFeed()
    seen: list[str] = []

    def bad(_c: object) -> None:
        raise RuntimeError("boom")

    feed.subscribe(bad)
    unsubscribe = feed.subscribe(lambda c: seen.append(c.key))
    t = MemoryTable("u")
    t.subscribe(feed.publish)
    t.put("a", {"v": 1})
    t.put("b", {"v": 1})
    assert seen == ["a", "b"]
    unsubscribe()
    t.put("c", {"v": 1})
    assert seen == ["a", "b"]


DAY = dt.date(2026, 12, 31)
MIDNIGHT = dt.datetime(2026, 12, 31)
LATER = dt.datetime(2026, 12, 31, 10)

ops = st.lists(
    st.tuples(
        st.sampled_from("abcdef"),
        st.one_of(
            st.none(),
            st.sampled_from(
                ["x", "y", None, 1, "1", " 1.00", 2.5, "2.5", "2026-12-31", DAY, MIDNIGHT, LATER]
            ),
        ),
    ),
    max_size=60,
)


@given(ops)
def test_index_equals_recomputation_under_random_changes(changes: list[tuple[str, object]]) -> None:
    t = MemoryTable("u")
    index = t.index("c")
    log: list[Op] = []
    t.subscribe(lambda c: log.append(c.op))
    for key, c in changes:
        t.put(key, None if c is None and key in "ab" else {"c": c})
    probes = ["x", "y", 1, None, "1", Decimal("2.50"), 2.5, "2.5", DAY, MIDNIGHT, LATER]
    for value in [*probes, "2026-12-31T10:00:00+00:00"]:
        # Found: rows whose value or twins (a number's text, a timestamp's day) meet the probe's.
        want = {value, *twins(value)}
        expected = {k for k, v in t.snapshot().items() if {v["c"], *twins(v["c"])} & want}
        assert set(index.lookup(value)) == expected
    assert log.count(Op.INSERT) - log.count(Op.DELETE) == len(t)
