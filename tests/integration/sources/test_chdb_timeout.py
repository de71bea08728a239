"""A chdb query that would run for minutes (a view aggregating 10^12 numbers, read by a lookup)
does not hang the worker: the engine cancels it at the table's ``timeout`` (or the caller
abandons it), the failure is counted and the breaker and ``on_error`` take it like an outage,
and the session answers the next query at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.clickhouse import chdb_run, chdb_table
from tests.support.federation import (
    CUSTOMERS,
    ORDERS_QUERY,
    batch_processor,
    declaration,
    external,
    order_batch,
    run_batch,
    unique_table,
)

pytestmark = pytest.mark.slow

#: Every customer id once per 1000 of 10^12 numbers: no index helps, the whole range is read.
SLOW_VIEW = (
    "CREATE VIEW {name} AS SELECT toInt64(number % 1000) AS id,"
    " CAST(any(toString(number)), 'Nullable(String)') AS tier,"
    " CAST(NULL, 'Nullable(Decimal(12, 2))') AS credit, CAST(NULL, 'Nullable(String)') AS country"
    " FROM numbers(1000000000000) GROUP BY id"
)


async def test_a_hung_chdb_query_times_out_and_takes_the_policy(chdb_path: Path) -> None:
    slow, fast = f"crm.{unique_table('slow')}", f"crm.{unique_table()}"
    chdb_table(chdb_path, fast, CUSTOMERS)  # creates the database too
    chdb_run(chdb_path, SLOW_VIEW.format(name=slow))
    options = (
        f"connector='clickhouse', path='{chdb_path}', table='{slow}', cache='partial',"
        " timeout='1s', retries='0', breaker_failures='2', breaker_reset='1h',"
        " on_error='dead_letter'"
    )
    sql = declaration("customers", options)
    table = external(sql, "customers")
    other = external(
        declaration("c2", f"connector='clickhouse', path='{chdb_path}', table='{fast}'"), "c2"
    )
    p = batch_processor(sql + ORDERS_QUERY, {"customers": table})
    try:
        started = time.monotonic()
        rows, dead = await run_batch(p, order_batch(0, [1, 2]))
        elapsed = time.monotonic() - started
        assert rows == []
        assert dead == [(0, "source unavailable: customers"), (1, "source unavailable: customers")]
        assert elapsed < 1 + 0.5 + 3  # the deadline and its grace, plus a loaded machine's slack
        stats = table.stats().as_dict()
        assert stats["query_timeouts"] >= 1
        assert "chdb query did not answer within timeout=1s" in stats["last_error"]
        # The session is free again (the engine cancelled the query): another table answers.
        started = time.monotonic()
        assert other.get(1) == {"id": 1, "tier": "gold", "credit": CUSTOMERS[1][1], "country": "FR"}
        assert time.monotonic() - started < 1.0
        # A second timed-out batch opens the breaker: later batches fail at once.
        await run_batch(p, order_batch(10, [3]))
        assert table.stats().as_dict()["breaker"]["state"] == "open"
        started = time.monotonic()
        rows, dead = await run_batch(p, order_batch(20, [4]))
        assert dead == [(20, "source unavailable: customers")]
        assert time.monotonic() - started < 0.5
        assert table.stats().as_dict()["rejected_by_breaker"] >= 1
    finally:
        other.close_sync()
        table.close_sync()
