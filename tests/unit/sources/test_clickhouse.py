"""ClickHouse tables without a server: type mapping, exact value reading, probe literals, the
query text a batch sends (EXPLAIN), and bad declarations (one error naming table and option,
no password)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from agents.pipeline import load_pipeline
from core.errors import ConfigError
from sources.clickhouse import MAX_KEYS_TEXT, ClickHouse, _parts
from sources.clickhouse_types import column_zone, family_type, literal, quote_string, reader
from sources.types import fits
from tests.support.federation import declaration, external

URL = "http://reader:s3cret@127.0.0.1:1/analytics"


@pytest.mark.parametrize(
    ("ch_type", "family", "declared"),
    [
        ("Int64", "bigint", "BIGINT"),
        ("Nullable(UInt64)", "ubigint", "BIGINT"),
        ("UInt8", "utinyint", "BIGINT"),
        ("Decimal(12, 2)", "numeric(12,2)", "DECIMAL(12,2)"),
        ("Nullable(Decimal64(4))", "numeric(18,4)", "DECIMAL(18,4)"),
        ("Decimal32(2)", "numeric(9,2)", "DECIMAL(12,2)"),
        ("LowCardinality(String)", "text", "STRING"),
        ("LowCardinality(Nullable(String))", "text", "STRING"),
        ("FixedString(3)", "varchar", "STRING"),
        ("Enum8('a' = 1, 'b' = 2)", "varchar", "STRING"),
        ("UUID", "uuid", "STRING"),
        ("Float64", "double", "DOUBLE"),
        ("Bool", "boolean", "BOOLEAN"),
        ("Date", "date", "DATE"),
        ("DateTime", "timestamp with time zone", "TIMESTAMP"),
        ("DateTime('Europe/Paris')", "timestamp with time zone", "TIMESTAMP"),
        ("Nullable(DateTime64(3, 'UTC'))", "timestamp with time zone", "TIMESTAMP"),
    ],
)
def test_clickhouse_types_fit_their_declared_types(
    ch_type: str, family: str, declared: str
) -> None:
    assert family_type(ch_type) == family
    assert fits(declared, family_type(ch_type))


@pytest.mark.parametrize(
    ("declared", "ch_type"),
    [
        ("DECIMAL(12,2)", "Decimal(12, 3)"),  # another scale: not exact
        ("DECIMAL(10,2)", "Decimal(12, 2)"),  # more digits than declared
        ("BIGINT", "Float64"),
        ("BIGINT", "String"),
        ("STRING", "Int64"),
        ("BIGINT", "Int128"),  # not read
        ("TIMESTAMP", "Date"),
    ],
)
def test_types_that_do_not_read_exactly_do_not_fit(declared: str, ch_type: str) -> None:
    assert not fits(declared, family_type(ch_type))


def test_values_read_exactly() -> None:
    # Old servers quote 64-bit integers, new ones do not: both exact past 2^53 and 2^63.
    assert reader("BIGINT", "Int64", "UTC")("9007199254740993") == 9007199254740993
    assert reader("BIGINT", "UInt64", "UTC")(18446744073709551615) == 2**64 - 1
    assert reader("BIGINT", "Nullable(Int64)", "UTC")(None) is None
    # New versions print Decimal(12,2) 1.50 as 1.5: brought back to the declared scale.
    dec = reader("DECIMAL(12,2)", "Decimal(12, 2)", "UTC")
    assert str(dec(Decimal("1.5"))) == "1.50"
    assert str(dec(Decimal("-99999999.99"))) == "-99999999.99"
    assert dec(None) is None
    assert reader("DOUBLE", "Float64", "UTC")(Decimal("0.1")) == 0.1
    assert reader("STRING", "LowCardinality(String)", "UTC")("a") == "a"
    assert reader("BOOLEAN", "UInt8", "UTC")("1") is True
    assert reader("DATE", "Date", "UTC")("2024-02-29") == dt.date(2024, 2, 29)


def test_datetimes_read_in_their_zone_as_utc() -> None:
    utc = dt.UTC
    server_zone = reader("TIMESTAMP", "DateTime", "Europe/Paris")
    assert server_zone("2024-07-01 12:00:00") == dt.datetime(2024, 7, 1, 10, 0, tzinfo=utc)
    column_zone_wins = reader("TIMESTAMP", "DateTime('Asia/Tokyo')", "Europe/Paris")
    assert column_zone_wins("2024-07-01 09:00:00") == dt.datetime(2024, 7, 1, 0, 0, tzinfo=utc)
    millis = reader("TIMESTAMP", "Nullable(DateTime64(3, 'UTC'))", "Europe/Paris")
    assert millis("2024-01-01 00:00:00.123") == dt.datetime(2024, 1, 1, 0, 0, 0, 123000, utc)
    assert column_zone("DateTime64(3, 'America/New_York')") == "America/New_York"
    assert column_zone("DateTime") is None


def test_probe_literals_only_for_values_the_column_can_hold() -> None:
    key = literal("BIGINT", "Int64")
    assert key(42) == "'42'"
    assert key(-(2**63)) == f"'{-(2**63)}'"
    assert key(2**63) is None  # past Int64: no row can have it (no query error either)
    assert literal("BIGINT", "UInt64")(-1) is None
    assert literal("BIGINT", "UInt64")(2**64 - 1) == f"'{2**64 - 1}'"
    dec = literal("DECIMAL(12,2)", "Decimal(12, 2)")
    assert dec(Decimal("1.50")) == "'1.50'"
    assert dec(Decimal("1.5")) == "'1.5'"
    # chdb rounds '1.501' to 1.50 and matches it: such a probe is left out instead.
    assert dec(Decimal("1.501")) is None
    assert dec(Decimal("1.5000")) == "'1.5000'"  # trailing zeros: still 1.50
    assert dec(Decimal("10000000000")) is None  # 11 integer digits in Decimal(12,2)
    enum = literal("STRING", "Enum8('a' = 1, 'it\\'s' = 2)")
    assert enum("a") == "'a'"
    assert enum("it's") == "'it\\'s'"
    assert enum("zzz") is None  # the cast to the Enum would fail the query
    assert literal("STRING", "FixedString(2)")("abc") is None
    assert literal("STRING", "FixedString(2)")("ab") == "'ab'"
    uid = "0b9d6a3e-1f2a-4c5b-8d7e-9f0a1b2c3d4e"
    assert literal("STRING", "UUID")(uid) == f"'{uid}'"
    assert literal("STRING", "UUID")("not-a-uuid") is None
    text = literal("STRING", "String")
    assert text("it's \\ here") == "'it\\'s \\\\ here'"
    assert text(5) is None
    assert literal("DOUBLE", "Float64")(float("nan")) is None
    assert literal("DATE", "Date")(dt.date(2024, 1, 2)) == "toDate('2024-01-02')"
    at = dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert literal("TIMESTAMP", "DateTime")(at) == "toDateTime('2024-01-01 00:00:00', 'UTC')"
    assert quote_string("a'b") == "'a\\'b'"


def test_long_key_lists_are_split_by_size() -> None:
    keys = [quote_string("k" * 1000 + str(i)) for i in range(450)]
    parts = _parts(keys)
    assert len(parts) == 3
    assert [k for p in parts for k in p] == keys
    assert all(sum(len(k) + 2 for k in p) <= MAX_KEYS_TEXT + 2000 for p in parts)
    assert _parts([]) == []
    assert _parts(["1", "2"]) == [["1", "2"]]


def test_the_query_text_of_a_batch_and_explain() -> None:
    sql = declaration("c", f"connector='clickhouse', url='{URL}', table='crm.c'")
    table = external(sql, "c", open_now=False)
    assert table.pushed_sql(None) == (
        'SELECT "id", "tier", "credit", "country" FROM "crm"."c" WHERE "id" IN ({keys})'
    )
    assert table.pushed_sql("country").endswith('WHERE "country" IN ({keys})')
    described = table.describe()
    assert described.startswith("clickhouse http://127.0.0.1:1/analytics table=crm.c cache=partial")
    assert "s3cret" not in described
    assert "reader" not in described


def test_a_file_is_read_by_the_embedded_engine() -> None:
    sql = declaration("c", "connector='clickhouse', file='data/c.parquet', format='Parquet'")
    table = external(sql, "c", open_now=False)
    assert table.describe().startswith("clickhouse chdb (embedded) table=data/c.parquet")
    db = table.db
    assert isinstance(db, ClickHouse)
    path = str(Path("data/c.parquet").resolve())
    assert table.pushed_sql(None).endswith(
        f"FROM file('{path}', 'Parquet') WHERE \"id\" IN ({{keys}})"
    )


STREAM = "CREATE STREAM o (id BIGINT, cid BIGINT) WITH (topic='o');\n"
QUERY = (
    "CREATE STREAM out WITH (topic='out') AS SELECT o.id, c.tier FROM o"
    " JOIN c ON c.id = o.cid EMIT CHANGES;\n"
)


@pytest.mark.parametrize(
    ("with_", "expected"),
    [
        ("connector='clickhouse', table='t'", "needs exactly one of url= (a server), path="),
        (
            f"connector='clickhouse', url='{URL}', path='data/ch', table='t'",
            "got url, path",
        ),
        (
            "connector='clickhouse', file='x.parquet', table='t'",
            "option table= does not go with file=",
        ),
        ("connector='clickhouse', path='data/ch'", "option 'table' is required"),
        (
            f"connector='clickhouse', url='{URL}', table='t', format='CSV'",
            "unknown option 'format'",
        ),
        (f"connector='clickhouse', url='{URL}', table='t', password='x'", "option 'password'"),
        (f"connector='clickhouse', url='{URL}', table='t', cache='lru'", "option cache='lru'"),
    ],
)
def test_bad_declarations(tmp_path: Path, with_: str, expected: str) -> None:
    path = tmp_path / "p.sql"
    path.write_text(declaration("c", with_) + STREAM + QUERY)
    with pytest.raises(ConfigError) as err:
        load_pipeline([path])
    assert expected in str(err.value)
    assert "s3cret" not in str(err.value)
    assert "table 'c'" in str(err.value)
