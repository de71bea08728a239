"""ClickHouse tables against a real ClickHouse: the embedded engine (chdb, in this process) and a
server over HTTP (Debian's 18.16, or whatever ``tests/support/clickhouse.py`` finds).

Exact types both ways; start errors that name the table and never the password; a server that
goes down mid-run → breaker open, the ``on_error`` policy's outcome, recovery without restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agents.pipeline import catalog_for
from core.errors import ConfigError
from sources.lookup import LookupTable
from sources.snapshot import SnapshotTable
from sources.table import ExternalTable
from sql import compile_query
from tables.protocol import Change, Op
from tests.support.clickhouse import (
    CH_DDL,
    READER_PASSWORD,
    ClickHouseServer,
    chdb_run,
    chdb_table,
    clickhouse_server,
    ensure_installed,
    insert_sql,
    server_table,
)
from tests.support.federation import (
    CUSTOMERS,
    batch_processor,
    catalog_customers,
    declaration,
    external,
    order_batch,
    run_batch,
    unique_table,
)
from tests.support.federation import ORDERS_QUERY as QUERY
from tests.support.federation import OUTAGE_OPTIONS as OPTIONS

UTC = dt.UTC
#: Types a server of any version has (LowCardinality needs a setting on 18.16).
TYPED_DDL = (
    "id Int64, big UInt64, amount Decimal(18, 4), note Nullable(String),"
    " label LowCardinality(String), at DateTime, tokyo DateTime('Asia/Tokyo'), day Date,"
    " ratio Float64, maybe Nullable(Int64)"
)
TYPED_COLUMNS = (
    "id BIGINT, big BIGINT, amount DECIMAL(18,4), note VARCHAR, label VARCHAR, at TIMESTAMP,"
    " tokyo TIMESTAMP, day DATE, ratio DOUBLE, maybe BIGINT, PRIMARY KEY (id)"
)
TYPED_ROWS = (
    "(9007199254740993, 18446744073709551615, 12345678901234.5678, NULL, 'a',"
    " '2024-01-01 00:00:00', '2024-07-01 09:00:00', '2024-02-29', 0.1, NULL),"
    " (-9223372036854775808, 0, -0.0001, 'x''y', 'b', '2024-06-01 12:30:45',"
    " '2024-01-01 00:00:00', '1970-01-02', -1.5e300, 9007199254740993),"
    " (7, 7, 7, '', '', '2024-01-01 00:00:00', '2024-01-01 00:00:00', '2024-01-01', inf, 7)"
)
TYPED_EXPECTED = {
    9007199254740993: {
        "id": 9007199254740993,
        "big": 18446744073709551615,
        "amount": Decimal("12345678901234.5678"),
        "note": None,
        "label": "a",
        "at": dt.datetime(2024, 1, 1, tzinfo=UTC),
        "tokyo": dt.datetime(2024, 7, 1, 0, 0, tzinfo=UTC),
        "day": dt.date(2024, 2, 29),
        "ratio": 0.1,
        "maybe": None,
    },
    -9223372036854775808: {
        "id": -9223372036854775808,
        "big": 0,
        "amount": Decimal("-0.0001"),
        "note": "x'y",
        "label": "b",
        "at": dt.datetime(2024, 6, 1, 12, 30, 45, tzinfo=UTC),
        "tokyo": dt.datetime(2023, 12, 31, 15, 0, tzinfo=UTC),
        "day": dt.date(1970, 1, 2),
        "ratio": -1.5e300,
        "maybe": 9007199254740993,
    },
    7: {
        "id": 7,
        "big": 7,
        "amount": Decimal("7.0000"),
        "note": "",
        "label": "",
        "at": dt.datetime(2024, 1, 1, tzinfo=UTC),
        "tokyo": dt.datetime(2023, 12, 31, 15, 0, tzinfo=UTC),
        "day": dt.date(2024, 1, 1),
        "ratio": float("inf"),  # JSON has no inf: asked for quoted ("inf"), read as a float
        "maybe": 7,
    },
}


def typed_table(where: str, cache: str) -> ExternalTable:
    # dead_letter: a query the server refuses fails the test instead of waiting for ever.
    options = f"{where}, cache='{cache}', on_error='dead_letter'"
    sql = f"CREATE TABLE t ({TYPED_COLUMNS}) WITH ({options});\n"
    return external(sql, "t")


@pytest.fixture
def typed_server(clickhouse: ClickHouseServer) -> str:
    name = unique_table("typed")
    clickhouse.execute(
        f"CREATE TABLE {name} ({TYPED_DDL}) ENGINE = MergeTree ORDER BY id",
        "allow_experimental_low_cardinality_type=1",
    )
    clickhouse.execute(f"INSERT INTO {name} VALUES {TYPED_ROWS}")
    return (
        f"connector='clickhouse', url='{clickhouse.url('reader', READER_PASSWORD)}', table='{name}'"
    )


@pytest.fixture
def typed_chdb(chdb_path: Path) -> str:
    name = f"db.{unique_table('typed')}"
    chdb_table(chdb_path, name, {}, TYPED_DDL)
    chdb_run(chdb_path, f"INSERT INTO {name} VALUES {TYPED_ROWS}")
    return f"connector='clickhouse', path='{chdb_path}', table='{name}'"


def test_a_readonly_user_reads_inf_as_null(typed_server: str) -> None:
    """A ``readonly=1`` user may set nothing (not even how inf is written): the table still
    works, inf reads as NULL."""
    where = typed_server.replace("url='http://reader:", "url='http://ro:")
    assert "http://ro:" in where
    table = typed_table(where, "full")
    try:
        row = table.get(7)
        assert row is not None
        assert row["ratio"] is None
        assert table.get(-(2**63)) == TYPED_EXPECTED[-(2**63)]
    finally:
        table.close_sync()


@pytest.mark.parametrize("cache", ["partial", "full"])
@pytest.mark.parametrize("mode", ["typed_server", "typed_chdb"])
async def test_types_read_exactly(request: pytest.FixtureRequest, mode: str, cache: str) -> None:
    where: str = request.getfixturevalue(mode)
    table = typed_table(where, cache)
    try:
        if isinstance(table, LookupTable):
            await table.prefetch(None, [*TYPED_EXPECTED, 2**63, "nope"])
            assert table.stats().as_dict()["round_trips"] == 1
            # A pushed-down probe by a DECIMAL and by a TIMESTAMP column.
            await table.prefetch("amount", [Decimal("-0.0001"), Decimal("1.00001")])
            assert [k for k, _ in table.probe("amount", Decimal("-0.0001"))] == [str(-(2**63))]
            at = dt.datetime(2024, 6, 1, 12, 30, 45, tzinfo=UTC)
            assert len(table.probe("at", at)) == 1
        for key, row in TYPED_EXPECTED.items():
            got = table.get(key)
            assert got == row
            assert got is not None
            assert str(got["amount"]) == str(row["amount"])  # the scale too
        assert table.get(12345) is None
    finally:
        table.close_sync()


GOLD = {"id": 1, "tier": "gold", "credit": Decimal("100.50"), "country": "FR"}


# -- start ------------------------------------------------------------------------------------
def open_error(where: str, columns: str = "") -> str:
    sql = declaration("c", where)
    if columns:
        sql = sql.replace(sql[sql.index("(") + 1 : sql.index(") WITH")], columns)
    with pytest.raises(ConfigError) as err:
        external(sql, "c")
    return str(err.value)


def test_start_errors_name_the_table_never_the_password(
    clickhouse: ClickHouseServer, chdb_path: Path
) -> None:
    name = unique_table()
    server_table(clickhouse, name, CUSTOMERS)
    bad = clickhouse.url("reader", "wrong-" + READER_PASSWORD)
    text = open_error(f"connector='clickhouse', url='{bad}', table='{name}'")
    assert text.startswith("table 'c': cannot connect to clickhouse (url=http://reader:***@")
    assert READER_PASSWORD not in text
    url = clickhouse.url("reader", READER_PASSWORD)
    text = open_error(f"connector='clickhouse', url='{url}', table='nope'")
    assert text.startswith("table 'c': option table='nope': no such table in http://127.0.0.1:")
    wrong = "id BIGINT, tier VARCHAR, credit DECIMAL(12,3), country VARCHAR, PRIMARY KEY (id)"
    text = open_error(f"connector='clickhouse', url='{url}', table='{name}'", wrong)
    assert "column 'credit' is declared DECIMAL(12,3) but is numeric(12,2)" in text
    unset = "TABLESTREAM_TEST_CH_PASSWORD_UNSET"
    text = open_error(
        f"connector='clickhouse', url='{clickhouse.url('reader')}', table='{name}',"
        f" password_env='{unset}'"
    )
    assert f"environment variable {unset} (password_env) is not set" in text
    # chdb holds one path per process: a second one while the first is open is refused.
    chdb_table(chdb_path, f"crm.{name}", CUSTOMERS)
    first = external(
        declaration("c", f"connector='clickhouse', path='{chdb_path}', table='crm.{name}'"), "c"
    )
    try:
        text = open_error(f"connector='clickhouse', path='{chdb_path}-other', table='crm.x'")
        assert "chdb holds one session path per process" in text
    finally:
        first.close_sync()


def test_password_from_an_environment_variable(clickhouse: ClickHouseServer) -> None:
    """The variable is looked up among the secrets the edge passes (``Settings.from_env`` gives
    the process environment's: tests/unit/app/test_settings.py), never read by the source."""
    name = unique_table()
    server_table(clickhouse, name, CUSTOMERS)
    where = (
        f"connector='clickhouse', url='{clickhouse.url('reader')}', table='{name}',"
        " password_env='TABLESTREAM_TEST_CH_PASSWORD', cache='full'"
    )
    secrets = {"TABLESTREAM_TEST_CH_PASSWORD": READER_PASSWORD}
    table = external(declaration("c", where), "c", secrets=secrets)
    try:
        assert table.get(1) == {
            "id": 1,
            "tier": "gold",
            "credit": Decimal("100.50"),
            "country": "FR",
        }
        assert READER_PASSWORD not in table.describe()
    finally:
        table.close_sync()


def test_a_parquet_file_through_the_embedded_engine(chdb_path: Path, tmp_path: Path) -> None:
    """``file=``: chdb reads the file itself (here written by chdb from the customer rows)."""
    name = f"crm.{unique_table()}"
    chdb_table(chdb_path, name, CUSTOMERS)
    path = tmp_path / "customers.parquet"
    chdb_run(chdb_path, f"INSERT INTO FUNCTION file('{path}', 'Parquet') SELECT * FROM {name}")
    table = external(declaration("c", f"connector='clickhouse', file='{path}'"), "c")
    try:
        assert isinstance(table, LookupTable)
        assert table.describe().startswith(f"clickhouse chdb (embedded) table={path}")

        async def fetch() -> None:
            await table.prefetch(None, [1, 4, 99])

        asyncio.run(fetch())
        assert table.get(1) == {
            "id": 1,
            "tier": "gold",
            "credit": Decimal("100.50"),
            "country": "FR",
        }
        assert table.get(4) == {"id": 4, "tier": "gold", "credit": None, "country": None}
        assert table.get(99) is None
    finally:
        table.close_sync()


# -- a server going down mid-run --------------------------------------------------------------
@pytest.fixture
def own_server() -> Iterator[ClickHouseServer]:
    """A server of this test's own: it is stopped and started again."""
    ensure_installed()
    with clickhouse_server() as server:
        server.execute(f"CREATE TABLE customers ({CH_DDL}) ENGINE = MergeTree ORDER BY id")
        server.execute(insert_sql("customers", CUSTOMERS))
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["dead_letter", "stale"])
async def test_a_server_down_opens_the_breaker_and_takes_the_policy(
    own_server: ClickHouseServer, policy: str
) -> None:
    where = (
        f"connector='clickhouse', url='{own_server.url('reader', READER_PASSWORD)}',"
        f" table='customers', {OPTIONS}, on_error='{policy}'"
    )
    sql = declaration("customers", where)
    table = external(sql, "customers")
    p = batch_processor(sql + QUERY, {"customers": table})
    try:
        rows, dead = await run_batch(p, order_batch(0, [1, 2]))
        assert rows == [{"order_id": 0, "tier": "gold"}, {"order_id": 1, "tier": "basic"}]
        await asyncio.to_thread(own_server.stop, True)
        await asyncio.sleep(1.1)  # the cached rows expire
        rows, dead = await run_batch(p, order_batch(10, [1, 3]))
        reason = "source unavailable: customers"
        if policy == "stale":
            assert rows == [{"order_id": 10, "tier": "gold"}]
            assert dead == [(11, reason)]
            assert table.stats().as_dict()["stale_serves"] == 1
        else:
            assert rows == []
            assert dead == [(10, reason), (11, reason)]
        stats = table.stats().as_dict()
        assert stats["breaker"]["state"] == "open"
        assert stats["unavailable"] >= 1
        assert READER_PASSWORD not in str(stats)
        own_server.start()  # from the main thread: the server dies with it (PDEATHSIG)
        await asyncio.sleep(0.4)  # past breaker_reset: the next call is the half-open probe
        rows, dead = await run_batch(p, order_batch(20, [1, 3]))
        assert dead == []
        assert rows == [{"order_id": 20, "tier": "gold"}, {"order_id": 21, "tier": None}]
        assert table.stats().as_dict()["breaker"]["state"] == "closed"
    finally:
        table.close_sync()


CATALOG = """
CREATE CATALOG ch WITH (connector='clickhouse', url='{url}', cache='partial');
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT) WITH (topic='orders');
CREATE STREAM out WITH (topic='out') AS
SELECT o.order_id, c.tier, c.credit FROM orders o LEFT JOIN ch.default.{table} c
  ON c.id = o.customer_id EMIT CHANGES;
"""


async def test_a_catalog_over_a_server_and_explain(
    clickhouse: ClickHouseServer, tmp_path: Path
) -> None:
    """Columns and key read from the server (its single-column sorting key); EXPLAIN names the
    source and the query it sends, without the password."""
    name = unique_table()
    server_table(clickhouse, name, CUSTOMERS)
    path = tmp_path / "p.sql"
    path.write_text(CATALOG.format(url=clickhouse.url("reader", READER_PASSWORD), table=name))
    qualified = f"ch.default.{name}"
    pipeline, table = catalog_customers(path, qualified, "clickhouse")
    try:
        q = compile_query(pipeline.queries[0].sql, catalog_for({qualified: table}, pipeline))
        explain = q.explain()
        assert f"[source: clickhouse http://127.0.0.1:{clickhouse.http_port}/default" in explain
        assert f'sends: SELECT "id", "tier", "credit", "country" FROM "default"."{name}"' in explain
        assert READER_PASSWORD not in explain
        assert q.prefetcher is not None
        recs = [{"order_id": 1, "customer_id": 1}, {"order_id": 2, "customer_id": 42}]
        await q.prefetcher.fetch([(r, None, 0) for r in recs])
        rows = [q.process(r)[0] for r in recs]
        assert rows[0] == {"order_id": 1, "tier": "gold", "credit": Decimal("100.50")}
        assert rows[1] == {"order_id": 2, "tier": None, "credit": None}
    finally:
        q.close()
        table.close_sync()


async def test_a_full_cache_follows_the_server_on_refresh(clickhouse: ClickHouseServer) -> None:
    """``cache='full', refresh=...``: the table loaded at start, changes applied as a diff (and
    published to subscribers) on the next reload."""
    name = unique_table()
    server_table(clickhouse, name, CUSTOMERS)
    url = clickhouse.url("reader", READER_PASSWORD)
    where = f"connector='clickhouse', url='{url}', table='{name}', cache='full', refresh='200ms'"
    table = external(declaration("c", where), "c")
    assert isinstance(table, SnapshotTable)
    changes: list[Change] = []
    table.subscribe(changes.append)
    await table.start()
    try:
        assert len(table) == len(CUSTOMERS)
        clickhouse.execute(f"INSERT INTO {name} VALUES (7, 'new', 1.5, 'NL')")
        for _ in range(100):
            if table.get(7) is not None:
                break
            await asyncio.sleep(0.05)
        assert table.get(7) == {"id": 7, "tier": "new", "credit": Decimal("1.50"), "country": "NL"}
        assert [(c.key, c.op) for c in changes] == [("7", Op.INSERT)]
        assert table.stats().as_dict()["refreshes"] >= 2
    finally:
        await table.stop()
