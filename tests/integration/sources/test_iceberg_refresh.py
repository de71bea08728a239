"""An Iceberg table followed over time (real pyiceberg SQL catalog and local warehouse): new
snapshots are picked up and an incompatible schema change refused while the table keeps serving
its snapshot, and the catalog and warehouse lost and back under each ``on_error`` policy."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from agents.process import BatchProcessor
from core import codec
from sources.iceberg import IcebergTable
from tests.support.federation import batch_processor, run_batch
from tests.support.iceberg import IDENT, STREAM, Lake, append, declaration, iceberg, market_stats
from tests.support.records import Rec

pytestmark = pytest.mark.slow


async def test_new_snapshots_are_followed_and_incompatible_ones_refused(tmp_path: Path) -> None:
    lk = Lake(tmp_path)
    history = market_stats(lk)
    table = iceberg(declaration(lk, "refresh='snapshot', poll_interval='1h'"))
    try:
        old = table.snapshot_id
        assert await table.refresh() is False  # nothing new
        new = await asyncio.to_thread(
            append, lk, IDENT, [{"symbol": "E", "volume_30d": 500, "px": 2.5}]
        )
        assert await table.refresh() is True
        assert table.snapshot_id == new
        assert table.get("E") == {"symbol": "E", "volume_30d": 500, "px": 2.5}
        assert old in table.older  # kept for the records of earlier times
        assert table.get_as_of("E", history.log[-1][0]) is None
        # An incompatible change: px dropped. The table keeps serving its snapshot, and says so.
        ice = lk.catalog().load_table(IDENT)
        with ice.update_schema() as update:
            update.delete_column("px")
        bad = await asyncio.to_thread(append, lk, IDENT, [{"symbol": "F", "volume_30d": 600}])
        assert await table.refresh() is False
        assert table.snapshot_id == new
        assert table.get("E") == {"symbol": "E", "volume_30d": 500, "px": 2.5}
        stats = table.stats().as_dict()
        assert stats["schema_errors"] == 1
        assert stats["last_schema_error"] == (
            f"table 'market_stats': column 'px' (field id 3) was dropped from Iceberg table "
            f"{IDENT!r} in snapshot {bad}: keeping snapshot {new}"
        )
        assert stats["breaker"]["state"] == "closed"  # the catalog answered: no outage
        assert await table.refresh() is False  # the same metadata is not read again
        assert table.stats().as_dict()["schema_errors"] == 1
    finally:
        table.close_sync()


def processor(sql: str, table: IcebergTable) -> BatchProcessor:
    return batch_processor(sql, {"market_stats": table})


async def run(p: BatchProcessor, trades: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """One batch as the agent runs it: prefetch (the snapshots it reads), then the records."""
    recs = [Rec(0, t["id"], None, codec.dumps(t)) for t in trades]
    return await run_batch(p, recs, "id", "trades")


@pytest.mark.parametrize("policy", ["dead_letter", "stale", "wait"])
async def test_catalog_and_warehouse_lost_and_back(tmp_path: Path, policy: str) -> None:
    lk = Lake(tmp_path / "lake")
    history = market_stats(lk)
    options = (
        f"refresh='snapshot', poll_interval='1h', on_error='{policy}', retries='0', "
        "breaker_failures='2', breaker_reset='300ms'"
    )
    table = iceberg(declaration(lk, options))
    sql = (
        declaration(lk, options)
        + STREAM
        + "CREATE STREAM out WITH (topic='out') AS SELECT t.id, m.volume_30d"
        " FROM trades t LEFT JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS m"
        " ON m.symbol = t.symbol EMIT CHANGES;"
    )
    p = processor(sql, table)
    (t1, _), (t_now, _) = history.log[0], history.log[-1]
    try:
        away = tmp_path / "away"
        shutil.move(lk.root, away)
        for _ in range(2):
            assert await table.refresh() is False
        stats = table.stats().as_dict()
        assert stats["refresh_failures"] == 2
        assert stats["breaker"]["state"] == "open"
        # The current snapshot is loaded: it answers. The first one needs the warehouse.
        batch = [{"id": 1, "symbol": "A", "ts": t_now}, {"id": 2, "symbol": "A", "ts": t1}]
        if policy == "wait":  # the batch is held until the warehouse is back
            held = asyncio.ensure_future(run(p, batch))
            await asyncio.sleep(1.0)
            assert not held.done()
            assert table.stats().as_dict()["waits"] >= 1
            shutil.move(away, lk.root)
            rows, dead = await asyncio.wait_for(held, 30)
            assert (rows, dead) == (
                [{"id": 1, "volume_30d": 150}, {"id": 2, "volume_30d": 100}],
                [],
            )
            assert table.stats().as_dict()["unavailable"] == 0
            return
        rows, dead = await run(p, batch)
        if policy == "dead_letter":
            assert rows == [{"id": 1, "volume_30d": 150}]
            assert dead == [(2, "source unavailable: market_stats")]
            assert table.stats().as_dict()["unavailable"] == 1
        else:  # the current snapshot's row, counted
            assert rows == [{"id": 1, "volume_30d": 150}, {"id": 2, "volume_30d": 150}]
            assert dead == []
            assert table.stats().as_dict()["stale_serves"] == 1
        shutil.move(away, lk.root)
        await asyncio.sleep(0.35)  # past breaker_reset: the next call is the half-open probe
        rows, dead = await run(p, [{"id": 3, "symbol": "A", "ts": t1}])
        assert (rows, dead) == ([{"id": 3, "volume_30d": 100}], [])
        assert await table.refresh() is False  # answered: nothing new
        assert table.stats().as_dict()["breaker"]["state"] == "closed"
    finally:
        table.close_sync()
