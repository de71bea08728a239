"""Applying batches to a store, without a broker: keys, diffs, counts, progress, malformed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core import codec
from tables.apply import Applier
from tables.protocol import Op
from tables.store import Fingerprint, TableStore
from tests.support.records import TableRec as Rec


def rec(key: str | None, value: object, offset: int, partition: int = 0) -> Rec:
    raw = None if value is None else (value if isinstance(value, bytes) else codec.dumps(value))
    return Rec(None if key is None else key.encode(), raw, offset, partition)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TableStore]:
    s = TableStore(tmp_path / "db").open()
    yield s
    s.close()


def apply(store: TableStore, records: list[Rec], key_field: str | None = None):  # type: ignore[no-untyped-def]
    batch = store.batch()
    result = Applier(key_field, codec.loads).apply(records, store, batch, want_changes=True)
    store.commit(batch)
    return result


def test_insert_update_delete_in_one_batch_gives_ordered_changes(store: TableStore) -> None:
    result = apply(
        store,
        [
            rec("a", {"v": 1}, 0),
            rec("a", {"v": 2}, 1),
            rec("b", {"v": 3}, 2),
            rec("a", None, 3),
            rec("zz", None, 4),
        ],
    )
    assert [(c.key, c.op, c.value, c.old_value) for c in result.changes] == [
        ("a", Op.INSERT, {"v": 1}, None),
        ("a", Op.UPDATE, {"v": 2}, {"v": 1}),
        ("b", Op.INSERT, {"v": 3}, None),
        ("a", Op.DELETE, None, {"v": 2}),
    ]
    assert (result.inserts, result.updates, result.deletes) == (2, 1, 1)
    assert store.count == 1
    assert store.get(b"a") is None
    assert store.positions() == {0: 5}


def test_progress_and_rows_survive_reopen_together(store: TableStore, tmp_path: Path) -> None:
    apply(store, [rec("a", {"v": 1}, 10, partition=2), rec("b", {"v": 1}, 4, partition=0)])
    store.close()
    store.open()
    assert store.positions() == {0: 5, 2: 11}
    assert store.fingerprints()[2] == Fingerprint.of(10, b"a", codec.dumps({"v": 1}))
    assert store.count == 2


def test_key_field_keys_by_text_form_and_tombstones_by_message_key(store: TableStore) -> None:
    apply(store, [rec("7", {"id": 7, "n": "x"}, 0), rec(None, {"id": "k", "n": "y"}, 1)], "id")
    assert codec.loads(store.get(b"7") or b"") == {"id": 7, "n": "x"}
    assert store.get(b"k") is not None
    result = apply(store, [rec("7", None, 2)], "id")
    assert [c.op for c in result.changes] == [Op.DELETE]
    assert store.get(b"7") is None


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("a", b"{nope", "not valid JSON"),
        ("a", b"[1]", "not an object"),
        ("a", {"name": "x"}, "no key field 'id'"),
        ("a", {"id": None}, "no key field 'id'"),
        ("a", {"id": [1]}, "key field 'id' is"),
        (None, None, "no message key"),
    ],
)
def test_malformed_records_are_reported_not_applied(
    store: TableStore, key: str | None, value: object, reason: str
) -> None:
    result = apply(store, [rec(key, value, 0), rec("ok", {"id": 1}, 1)], "id")
    assert len(result.malformed) == 1
    assert reason in result.malformed[0].reason
    assert result.malformed[0].offset == 0
    assert store.count == 1
    assert store.positions() == {0: 2}  # the bad record is consumed (it went to dead letters)


def test_message_key_must_be_utf8(store: TableStore) -> None:
    result = apply(store, [Rec(b"\xff\xfe", b"{}", 0)])
    assert "UTF-8" in result.malformed[0].reason


def test_exact_decoder_keeps_decimal_digits(store: TableStore) -> None:
    batch = store.batch()
    applier = Applier(None, codec.loads_exact)
    result = applier.apply([rec("p", b'{"px": 22.50}', 0)], store, batch, want_changes=True)
    assert result.changes[0].value == {"px": Decimal("22.50")}
    assert str(result.changes[0].value["px"]) == "22.50"


DEEP = b'{"id": 1, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
def test_a_value_nested_10000_deep_is_malformed_not_fatal(
    store: TableStore, decode: Callable[[bytes], Any]
) -> None:
    """The record that crash-looped a worker (the exact decoder's RecursionError)."""
    batch = store.batch()
    records = [Rec(b"1", DEEP, 0), rec("2", {"id": 2}, 1)]
    result = Applier("id", decode).apply(records, store, batch, want_changes=True)
    store.commit(batch)
    reason = (
        "value is not valid JSON: JSON nested deeper than 256 levels (TABLESTREAM_JSON_MAX_DEPTH)"
    )
    assert [(m.offset, m.reason) for m in result.malformed] == [(0, reason)]
    assert store.count == 1
    assert store.positions() == {0: 2}


def test_any_failure_of_the_decoder_is_the_records_not_the_loaders(store: TableStore) -> None:
    def decode(raw: bytes) -> Any:
        if raw == b'{"boom": 1}':
            raise OverflowError("a decoder bug")
        return codec.loads(raw)

    batch = store.batch()
    records = [Rec(b"b", b'{"boom": 1}', 0), rec("ok", {"id": 1}, 1)]
    result = Applier("id", decode).apply(records, store, batch, want_changes=True)
    assert [m.reason for m in result.malformed] == ["value is not valid JSON: a decoder bug"]
    assert len(result.changes) == 1
