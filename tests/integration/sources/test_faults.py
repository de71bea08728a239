"""PostgreSQL stopped in the middle of a run and started again: under each ``on_error`` policy
exactly the documented outcome, nothing lost, the breaker's state visible, no restart needed.

- ``wait``: the batch is held (its prefetch does not return) until the database answers, then
  every record gets its right output;
- ``stale``: rows cached before the outage are served though expired (counted); a record whose
  row was never cached goes to the dead letters;
- ``dead_letter``: every record that needs the database goes to the dead letters with reason
  ``source unavailable: customers``.
"""

from __future__ import annotations

import asyncio

import pytest

from agents.process import BatchProcessor
from sources.table import ExternalTable
from tests.support.federation import order_batch, outage_processor, outage_table, run_batch
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow


async def outage(pg: PostgresCluster, policy: str) -> tuple[ExternalTable, BatchProcessor]:
    table = outage_table(pg, policy)
    p = outage_processor(table, policy)
    rows, dead = await run_batch(p, order_batch(0, [1, 2]))
    assert rows == [{"order_id": 0, "tier": "gold"}, {"order_id": 1, "tier": "basic"}]
    assert dead == []
    pg.stop()
    await asyncio.sleep(1.1)  # the cached rows expire
    return table, p


async def test_wait_holds_the_batch_until_the_database_answers(
    own_postgres: PostgresCluster,
) -> None:
    table, p = await outage(own_postgres, "wait")
    try:
        held = asyncio.ensure_future(run_batch(p, order_batch(10, [1, 3, 99])))
        await asyncio.sleep(2.5)
        assert not held.done()  # nothing processed, nothing to commit
        stats = table.stats().as_dict()
        assert stats["breaker"]["state"] in ("open", "half-open")
        assert stats["breaker"]["opens"] >= 1
        assert stats["waits"] >= 1
        await asyncio.to_thread(own_postgres.start)
        rows, dead = await asyncio.wait_for(held, 30)
        assert dead == []
        assert rows == [
            {"order_id": 10, "tier": "gold"},
            {"order_id": 11, "tier": None},
            {"order_id": 12, "tier": None},
        ]
        assert table.stats().as_dict()["breaker"]["state"] == "closed"
    finally:
        table.close_sync()


async def test_stale_serves_expired_rows_and_dead_letters_the_unknown(
    own_postgres: PostgresCluster,
) -> None:
    table, p = await outage(own_postgres, "stale")
    try:
        rows, dead = await run_batch(p, order_batch(10, [1, 3, 2]))
        assert rows == [{"order_id": 10, "tier": "gold"}, {"order_id": 12, "tier": "basic"}]
        assert dead == [(11, "source unavailable: customers")]
        stats = table.stats().as_dict()
        assert stats["stale_serves"] == 2
        assert stats["breaker"]["state"] == "open"
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(0.4)  # past breaker_reset: the next call is the half-open probe
        own_postgres.execute("UPDATE customers SET tier = 'platinum' WHERE id = 1")
        rows, dead = await run_batch(p, order_batch(20, [1, 3]))
        assert dead == []
        assert rows == [{"order_id": 20, "tier": "platinum"}, {"order_id": 21, "tier": None}]
        assert table.stats().as_dict()["breaker"]["state"] == "closed"
    finally:
        table.close_sync()


async def test_dead_letter_sends_every_record_that_needs_the_database(
    own_postgres: PostgresCluster,
) -> None:
    table, p = await outage(own_postgres, "dead_letter")
    try:
        rows, dead = await run_batch(p, order_batch(10, [1, 4]))
        assert rows == []
        assert dead == [
            (10, "source unavailable: customers"),
            (11, "source unavailable: customers"),
        ]
        assert table.stats().as_dict()["unavailable"] == 2
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(0.4)
        rows, dead = await run_batch(p, order_batch(20, [1, 4]))
        assert dead == []
        assert rows == [{"order_id": 20, "tier": "gold"}, {"order_id": 21, "tier": "gold"}]
    finally:
        table.close_sync()
