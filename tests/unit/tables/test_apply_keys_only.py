"""The bulk path (key field parsed alone) against the full path: same rows, counts, versions,
progress and dead letters, over ordinary and hostile records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import codec
from tables.apply import Applier, BatchResult
from tables.store import TableStore
from tests.support.records import Rec

HOSTILE: list[bytes | None] = [
    b'{"id":1,"v":"a"}',
    b'{"id":"k2","v":1}',
    b'{"id":1,"v":"again"}',  # the same key twice in a batch
    None,  # a tombstone (message key)
    b'{"id":3.0}',  # a float key: key text "3"
    b'{"id":true}',
    b'{"id":null}',
    b'{"v":1}',
    b"[1,2]",
    b'"text"',
    b"not json",
    b'{"id":1} trailing',
    b'{"id":4,"x":"\xff"}',  # invalid UTF-8 in a field the key-only parse skips
    b'{"id":5,"x":"\\ud800"}',
    b'{"id":6,"x":NaN}',
    b'{"x":' + b"[" * 300 + b"]" * 300 + b',"id":7}',  # deeper than the limit
    b'{"id":123456789012345678901234567890}',
    b'{"id":{"a":1}}',
    b'{"id":"\xc3\xa9t\xc3\xa9","v":2}',  # non-ASCII: the full path
    b'{"id":1e400}',
    b'{"id":"k2","v":2}',
    b'{"id":11,"x":1e400}',  # refused by orjson in a field the key-only parse skips
    b'{"id":12,"x":[-2.5E+999],"y":1e5}',
    b'{"@tablestream.valid":"k9","id":9}',  # the field the message-key check reserves
    b'{"@tablestream.valid":null,"id":10}',
]
#: Message keys, cycled: tables keyed by message key take them (or dead-letter them).
KEYS: list[bytes | None] = [b"m1", b"m2", None, b"\xff", "\u00e9".encode(), b"m1", b""]


def apply(
    path: Path,
    decode: Any,
    want_changes: bool,
    rounds: int,
    key_field: str | None = "id",
    restore: bool = False,
    per_batch: int = len(HOSTILE),
) -> tuple[Any, ...]:
    store = TableStore(path).open()
    if restore:  # a cold restore: new keys told by the store's set of restored keys
        store.begin_restore()
        assert store.restored_keys is not None
    results: list[BatchResult] = []
    try:
        applier = Applier(key_field, decode)
        for r in range(rounds):
            recs = [
                Rec(
                    partition=i % 2,
                    offset=r * 100 + i,
                    key=KEYS[(i + r) % len(KEYS)]
                    if key_field is None
                    else f"m{i % 5}".encode()
                    if r % 2
                    else b"1",
                    value=v,
                    topic="t",
                )
                for i, v in enumerate(HOSTILE)
            ]
            for start in range(0, len(recs), per_batch):
                batch = store.batch()
                results.append(
                    applier.apply(recs[start : start + per_batch], store, batch, want_changes)
                )
                store.commit(batch)
                assert (store.restored_keys is not None) == (restore and not want_changes)
        rows = dict(store.items())
        return (
            rows,
            store.count,
            store.version,
            store.positions(),
            store.fingerprints(),
            [(m.offset, m.partition, m.reason) for res in results for m in res.malformed],
            [(res.records, res.inserts, res.updates, res.deletes) for res in results],
        )
    finally:
        store.close()


@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
def test_bulk_path_equals_full_path(tmp_path: Path, decode: Any) -> None:
    fast = apply(tmp_path / "fast", decode, want_changes=False, rounds=4)
    full = apply(tmp_path / "full", decode, want_changes=True, rounds=4)
    assert fast == full
    malformed = fast[5]
    assert len(malformed) >= 4 * 9  # the hostile ones did become dead letters
    assert fast[0][b"3"] == b'{"id":3.0}'


@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
@pytest.mark.parametrize("per_batch", [1, 3])
def test_bulk_path_equals_full_path_batch_by_batch(
    tmp_path: Path, decode: Any, per_batch: int
) -> None:
    """The bulk path checks a batch's values at once (all ASCII, no digit before an "e") and
    each value only when its batch fails: batches of one hostile record among ordinary ones."""
    fast = apply(tmp_path / "fast", decode, False, rounds=2, per_batch=per_batch)
    full = apply(tmp_path / "full", decode, True, rounds=2, per_batch=per_batch)
    assert fast == full
    assert len(fast[5]) >= 2 * 9


@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
def test_bulk_path_equals_full_path_keyed_by_message_key(tmp_path: Path, decode: Any) -> None:
    """An aggregate's sink table (no key field): values only validated, message keys taken."""
    fast = apply(tmp_path / "fast", decode, want_changes=False, rounds=5, key_field=None)
    full = apply(tmp_path / "full", decode, want_changes=True, rounds=5, key_field=None)
    assert fast == full
    rows, malformed = fast[0], fast[5]
    assert b"m1" in rows  # an ASCII key
    assert b"\xc3\xa9" in rows  # a non-ASCII one (the full path)
    reasons = {reason for _, _, reason in malformed}
    assert any("JSON" in r for r in reasons)
    assert any("no message key" in r for r in reasons)
    assert any("UTF-8" in r for r in reasons)


@pytest.mark.parametrize("key_field", ["id", None])
def test_restore_path_equals_full_path(tmp_path: Path, key_field: str | None) -> None:
    """A restore tells new keys by its set of written keys instead of reading RocksDB: the same
    rows, counts (tombstones and keys written twice in a batch included) and dead letters."""
    fast = apply(tmp_path / "fast", codec.loads, False, rounds=5, key_field=key_field, restore=True)
    full = apply(tmp_path / "full", codec.loads, True, rounds=5, key_field=key_field)
    assert fast == full
    assert fast[1] > 0
