"""Apache Iceberg tables read through a real pyiceberg SQL catalog (sqlite) and a local
warehouse: per-record time travel checked against a model of every snapshot, the literal forms
(``AT SNAPSHOT``, ``FOR SYSTEM_VERSION AS OF``, ``AS OF TIMESTAMP``), schema evolution by field
id, new snapshots followed, and the catalog lost and back under the ``on_error`` policies."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from core import codec
from core.errors import ConfigError
from sql import compile_query
from sql.catalog import Catalog
from sql.errors import ParseError
from sql.operators.as_of import AsOfExpiredError
from tests.support.iceberg import (
    IDENT,
    STREAM,
    History,
    Lake,
    declaration,
    events,
    iceberg,
    market_stats,
)
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, History]:
    """The three-snapshot table (five log entries: the overwrite is a delete and an append),
    written once for the read-only tests of this module."""
    lk = Lake(tmp_path_factory.mktemp("lake"))
    return lk, market_stats(lk)


def test_every_record_joins_the_snapshot_current_at_its_time(lake: tuple[Lake, History]) -> None:
    lk, history = lake
    table = iceberg(declaration(lk, "snapshot_caches='2'"))
    sql = (
        declaration(lk) + STREAM + "SELECT t.id, m.volume_30d, m.px,"
        " (SELECT s.volume_30d FROM market_stats FOR SYSTEM_TIME AS OF t.ts s"
        "  WHERE s.symbol = t.symbol) AS sub"
        " FROM trades t LEFT JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS m"
        " ON m.symbol = t.symbol"
    )
    query = compile_query(sql, Catalog.of({"market_stats": table}))
    plan = query.explain()
    assert "FOR SYSTEM_TIME AS OF t.ts (per record: the snapshot current at each" in plan
    got, want = [], []
    for e in events(history):
        got.extend(query.process(e))
        row = history.row(e["ts"], e["symbol"])
        v, px = (row["volume_30d"], row["px"]) if row else (None, None)
        want.append({"id": e["id"], "volume_30d": v, "px": px, "sub": v})
    assert got == want
    stats = table.stats().as_dict()
    assert stats["snapshots_in_log"] == 5
    assert stats["snapshot_loads"] == 5  # each snapshot scanned once, in time order
    assert stats["snapshot_evictions"] == 2  # two older snapshots kept (LRU) besides the current
    assert len(stats["snapshot_caches"]) == 3
    assert stats["breaker"]["state"] == "closed"
    # Old snapshots read by field id: the int column renamed and promoted since, px added later.
    # (The first snapshot was evicted: read again.)
    first = history.log[0][1]
    assert table.get_at_version("A", first) == {"symbol": "A", "volume_30d": 100, "px": None}
    assert table.stats().as_dict()["snapshot_loads"] == 6


def test_literal_snapshots_and_times(lake: tuple[Lake, History]) -> None:
    lk, history = lake
    table = iceberg(declaration(lk))
    catalog = Catalog.of({"market_stats": table})
    (t1, s1), (t2, s2) = history.log[0], history.log[1]

    def run(form: str, symbol: str = "C") -> tuple[list[dict[str, Any]], str]:
        sql = (
            declaration(lk)
            + STREAM
            + f"SELECT t.id, m.volume_30d FROM trades t LEFT JOIN market_stats {form} AS m"
            " ON m.symbol = t.symbol"
        )
        query = compile_query(sql, catalog)
        return query.process({"id": 1, "symbol": symbol, "ts": 0}), query.explain()

    rows, plan = run(f"AT SNAPSHOT {s1}")
    assert rows == [{"id": 1, "volume_30d": None}]  # C came with the second snapshot
    assert f"AT SNAPSHOT {s1} (committed " in plan
    assert run(f"FOR SYSTEM_VERSION AS OF {s2}")[0] == [{"id": 1, "volume_30d": 300}]
    sub = compile_query(
        declaration(lk) + STREAM + "SELECT t.id, (SELECT m.volume_30d FROM market_stats"
        f" AT SNAPSHOT {s1} m WHERE m.symbol = t.symbol) AS v FROM trades t",
        catalog,
    )
    assert sub.process({"id": 1, "symbol": "A", "ts": 0}) == [{"id": 1, "v": 100}]
    assert f"as-of key lookup [m.symbol = t.symbol AT SNAPSHOT {s1} (committed" in sub.explain()
    assert run(f"AT SNAPSHOT {s1}", "A")[0] == [{"id": 1, "volume_30d": 100}]
    # A literal time names the snapshot current then, in EXPLAIN too.
    from sql.temporal import millis_to_timestamp

    between = millis_to_timestamp((t1 + t2) // 2).isoformat(sep=" ")
    rows, plan = run(f"FOR SYSTEM_TIME AS OF TIMESTAMP '{between}'")
    assert rows == [{"id": 1, "volume_30d": None}]
    assert f"(snapshot {s1}, current from " in plan
    rows, plan = run("FOR SYSTEM_TIME AS OF TIMESTAMP '2001-01-01 00:00:00'", "A")
    assert rows == [{"id": 1, "volume_30d": None}]  # before the first snapshot: no row
    assert "before the first snapshot" in plan
    # ... or an error, by option; an unknown snapshot is one too.
    strict = iceberg(declaration(lk, "as_of_expired='error'"))
    sql = (
        declaration(lk, "as_of_expired='error'")
        + STREAM
        + "SELECT t.id, m.px FROM trades t JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS m"
        " ON m.symbol = t.symbol"
    )
    query = compile_query(sql, Catalog.of({"market_stats": strict}))
    with pytest.raises(AsOfExpiredError, match="is before the first snapshot of Iceberg table"):
        query.process({"id": 1, "symbol": "A", "ts": t1 - 1})
    sql = (
        declaration(lk)
        + STREAM
        + "SELECT t.id, m.px FROM trades t JOIN market_stats AT SNAPSHOT 12345 AS m"
        " ON m.symbol = t.symbol"
    )
    query = compile_query(sql, catalog)
    assert "AT SNAPSHOT 12345 (snapshot 12345 is not in the table now)" in query.explain()
    with pytest.raises(AsOfExpiredError, match="has no snapshot 12345"):
        query.process({"id": 1, "symbol": "A", "ts": 0})


def test_time_travel_syntax_errors(lake: tuple[Lake, History]) -> None:
    lk, _ = lake
    table = iceberg(declaration(lk))
    catalog = Catalog.of({"market_stats": table})
    with pytest.raises(ParseError) as info:
        compile_query(
            declaration(lk) + STREAM + "SELECT t.id FROM trades t\n"
            "JOIN market_stats AT SNAPSHOT AS m ON m.symbol = t.symbol",
            catalog,
        )
    assert (info.value.line, info.value.column) == (4, 31)
    assert "expected a snapshot id after AT SNAPSHOT" in str(info.value)
    with pytest.raises(Exception, match="needs a snapshot id \\(a whole number literal\\)"):
        compile_query(
            declaration(lk) + STREAM + "SELECT t.id FROM trades t\n"
            "JOIN market_stats FOR SYSTEM_VERSION AS OF t.ts AS m ON m.symbol = t.symbol",
            catalog,
        )


def test_start_checks_the_declared_columns_and_options(lake: tuple[Lake, History]) -> None:
    lk, history = lake
    current = history.log[-1][1]
    with pytest.raises(ConfigError) as info:
        iceberg(declaration(lk, columns="symbol VARCHAR, avg_volume BIGINT, PRIMARY KEY (symbol)"))
    assert str(info.value).startswith(
        f"table 'market_stats': column 'avg_volume' is not in Iceberg table {IDENT!r} at "
        f"snapshot {current} (columns: symbol, volume_30d, px)"
    )
    with pytest.raises(ConfigError, match="column 'px' is declared BIGINT but is double"):
        iceberg(declaration(lk, columns="symbol VARCHAR, px BIGINT, PRIMARY KEY (symbol)"))
    with pytest.raises(ConfigError, match="option filter='symbol ===' is not a pyiceberg row"):
        iceberg(declaration(lk, "filter='symbol ==='"), open_now=False)
    with pytest.raises(ConfigError, match="option refresh='always' is not one of"):
        iceberg(declaration(lk, "refresh='always'"), open_now=False)
    missing = declaration(lk).replace(IDENT, "analytics.nothing")
    with pytest.raises(ConfigError, match=r"option table='analytics\.nothing': no such Iceberg"):
        iceberg(missing)
    # A row filter is pushed to the scan: only the matching rows are loaded.
    filtered = iceberg(declaration(lk, "filter='volume_30d >= 300'"))
    assert sorted(filtered.keys()) == ["C", "D"]
    assert filtered.get_at_version("C", history.log[1][1]) == {
        "symbol": "C",
        "volume_30d": 300,
        "px": None,
    }
    assert filtered.get_at_version("A", history.log[0][1]) is None


def test_large_snapshots_spill_to_rocksdb(lake: tuple[Lake, History], tmp_path: Path) -> None:
    lk, history = lake
    table = iceberg(declaration(lk, "spill_rows='2'"), data_dir=tmp_path)
    store = tmp_path / "iceberg" / "market_stats" / str(table.snapshot_id)
    assert store.is_dir()  # four rows > 2: the current snapshot went to RocksDB
    assert type(table.current).__name__ == "RocksRows"
    assert table.get("D") == {"symbol": "D", "volume_30d": 400, "px": 1.5}
    assert table.get("Z") is None
    assert len(table) == 4
    assert sorted(table.keys()) == ["A", "B", "C", "D"]
    # The first snapshot has two rows: in memory.
    assert table.get_at_version("B", history.log[0][1]) == {
        "symbol": "B",
        "volume_30d": 200,
        "px": None,
    }
    table.close_sync()
    assert not store.exists()


def test_offline_runner_reads_an_iceberg_table(lake: tuple[Lake, History], tmp_path: Path) -> None:
    import io

    from sql.runner import main

    lk, history = lake
    stream = tmp_path / "trades.jsonl"
    trades = [{"id": i, "symbol": s, "ts": history.log[0][0]} for i, s in enumerate("ABC")]
    stream.write_text("".join(codec.dumps(t).decode() + "\n" for t in trades))
    pipeline = tmp_path / "q.sql"
    pipeline.write_text(
        declaration(lk) + STREAM + "SELECT t.id, m.volume_30d, c.volume_30d AS now FROM trades t"
        " LEFT JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS m ON m.symbol = t.symbol"
        " LEFT JOIN market_stats c ON c.symbol = t.symbol"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", str(pipeline), "--stream", f"trades={stream}"], out, err) == 0, err
    assert [codec.loads(line) for line in out.getvalue().splitlines()] == [
        {"id": 0, "volume_30d": 100, "now": 150},
        {"id": 1, "volume_30d": 200, "now": 200},
        {"id": 2, "volume_30d": None, "now": 300},
    ]


def test_a_sql_catalog_in_postgresql(postgres: PostgresCluster, tmp_path: Path) -> None:
    """The catalog in PostgreSQL (SQLAlchemy over psycopg 3), named: the same table and time
    travel as with sqlite."""
    name = f"cat_{uuid.uuid4().hex[:8]}"
    database = postgres.dsn().replace("postgresql://", "postgresql+psycopg://")
    lk = Lake(tmp_path, name=name, database=database)
    history = market_stats(lk)
    table = iceberg(declaration(lk))
    try:
        assert table.snapshot_id == history.log[-1][1]
        assert table.get("D") == {"symbol": "D", "volume_30d": 400, "px": 1.5}
        assert table.get_as_of("A", history.log[0][0]) == {
            "symbol": "A",
            "volume_30d": 100,
            "px": None,
        }
        assert f"iceberg sql catalog '{name}' (postgresql+psycopg://postgres@127.0.0.1:" in (
            table.describe()
        )
    finally:
        table.close_sync()


def test_create_catalog_is_not_for_iceberg(tmp_path: Path) -> None:
    from agents.pipeline import load_pipeline

    path = tmp_path / "p.sql"
    path.write_text(
        "CREATE CATALOG lake WITH (connector='iceberg', catalog_uri='sqlite:///c.db');\n"
        "CREATE STREAM trades (id BIGINT, symbol VARCHAR) WITH (topic='trades');\n"
        "CREATE STREAM out WITH (topic='out') AS SELECT t.id, m.px FROM trades t\n"
        "JOIN lake.analytics.market_stats m ON m.symbol = t.symbol EMIT CHANGES;\n"
    )
    with pytest.raises(ConfigError) as info:
        load_pipeline([path])
    assert "catalog 'lake': connector='iceberg' has no CREATE CATALOG: declare the table" in str(
        info.value
    )
    assert ":3:" in str(info.value)  # the query naming the catalog's table


def test_promoted_float_and_decimal_read_as_declared(tmp_path: Path) -> None:
    """float → double and decimal(10,2) → decimal(12,2): the snapshot written before the
    promotion reads under the declared (wider) types."""
    from decimal import Decimal

    import pyarrow as pa
    from pyiceberg.types import DecimalType, DoubleType

    lk = Lake(tmp_path)
    cat = lk.catalog()
    cat.create_namespace("n")
    old = pa.schema([("k", pa.int64()), ("f", pa.float32()), ("d", pa.decimal128(10, 2))])
    ice = cat.create_table("n.p", schema=old)
    ice.append(pa.table({"k": [1], "f": [0.5], "d": [Decimal("12345678.91")]}, schema=old))
    first = ice.current_snapshot().snapshot_id
    with ice.update_schema() as update:
        update.update_column("f", DoubleType())
        update.update_column("d", DecimalType(12, 2))
    new = ice.schema().as_arrow()
    ice.append(pa.table({"k": [2], "f": [0.1], "d": [Decimal("9999999999.99")]}, schema=new))
    sql = (
        "CREATE TABLE market_stats (k BIGINT, f DOUBLE, d DECIMAL(12,2), PRIMARY KEY (k))"
        f" WITH ({lk.options('n.p')});\n"
    )
    table = iceberg(sql)
    assert table.get(2) == {"k": 2, "f": 0.1, "d": Decimal("9999999999.99")}
    assert table.get_at_version(1, first) == {"k": 1, "f": 0.5, "d": Decimal("12345678.91")}
    assert table.get_at_version(2, first) is None
