"""A table declared with columns checks its rows as they are loaded: a row that does not fit its
declared types is malformed (a dead letter), not stored; the key keeps its previous row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.pipeline import load_pipeline
from core import codec
from tables.apply import Applier
from tables.spec import TableSpec
from tables.store import TableStore
from tests.support.records import TableRec

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR, limit_ DECIMAL(10,2))
  WITH (topic='u');
CREATE TABLE loose WITH (topic='l', key='id');
CREATE STREAM orders (id BIGINT, user_id BIGINT) WITH (topic='o');
CREATE STREAM out WITH (topic='x') AS
SELECT o.id FROM orders o
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
  AND o.user_id IN (SELECT id FROM loose)
EMIT CHANGES;
"""


@pytest.fixture
def specs(tmp_path: Path) -> dict[str, TableSpec]:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    return load_pipeline([path]).tables


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TableStore]:
    s = TableStore(tmp_path / "db").open()
    yield s
    s.close()


def load(spec: TableSpec, store: TableStore, values: list[bytes]) -> list[tuple[int, str]]:
    decode = codec.loads_exact if spec.exact_decimals else codec.loads
    applier = Applier(spec.key_field, decode, check=spec.check)
    records = [TableRec(None, v, i, topic="u") for i, v in enumerate(values)]
    batch = store.batch()
    result = applier.apply(records, store, batch, want_changes=False)
    store.commit(batch)
    return [(m.offset, m.reason) for m in result.malformed]


def test_rows_that_do_not_fit_the_declared_types_are_not_stored(
    specs: dict[str, TableSpec], store: TableStore
) -> None:
    malformed = load(
        specs["users"],
        store,
        [
            b'{"id": 1, "name": "ann", "tier": "gold", "limit_": 10.50}',
            b'{"id": "abc", "tier": "gold"}',  # the row that made every stream record fail
            b'{"id": 1, "tier": "gold", "limit_": NaN}',
            b'{"id": 1, "tier": "gold", "limit_": Infinity}',
            b'{"id": 1, "tier": "gold", "limit_": 123456789.00}',  # over DECIMAL(10,2)
            b'{"id": 18446744073709551617, "tier": "gold"}',  # over BIGINT
            b'{"id": 1, "tier": "gold", "limit_": "lots"}',
            b'{"id": 1, "tier": "gold", "limit_": [1]}',
            b"[1, 2]",
            b'{"id": "2", "name": 7, "tier": "basic", "limit_": "3"}',  # lenient casts, as streams
        ],
    )
    assert [o for o, _ in malformed] == [1, 2, 3, 4, 5, 6, 7, 8]
    reasons = dict(malformed)
    assert reasons[1] == "column 'id' does not fit BIGINT: cannot cast 'abc' to BIGINT"
    assert reasons[2].startswith("column 'limit_' does not fit DECIMAL(10,2)")
    assert "DECIMAL(10,2)" in reasons[4]
    assert (
        reasons[5] == "column 'id' does not fit BIGINT: cannot cast 18446744073709551617 to BIGINT"
    )
    assert "not an object" in reasons[8]
    # The key kept its good row: the bad ones for key 1 changed nothing.
    assert codec.loads_exact(store.get(b"1") or b"")["limit_"] == codec.loads_exact(b"10.50")
    assert store.count == 2


def test_tables_without_declared_columns_store_any_json_object(
    specs: dict[str, TableSpec], store: TableStore
) -> None:
    assert specs["loose"].check is None
    row = b'{"id": "abc", "x": [1, {"y": null}], "n": 123456789012345678901234567890}'
    assert load(specs["loose"], store, [row]) == []
    assert codec.loads(store.get(b"abc") or b"")["n"] == 123456789012345678901234567890
