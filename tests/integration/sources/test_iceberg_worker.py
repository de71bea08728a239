"""A real worker joins a Kafka stream with an Iceberg table that follows new snapshots: a
snapshot committed while the worker runs is served to the records after it (by the current
join and by the per-record AS OF join), the outputs written before it stay as they were, and
the table's snapshot and switches show in ``/queries/``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import processed, queries, until
from tests.support.federation import produce_json, read_json, start_worker
from tests.support.iceberg import COLUMNS, Lake, append, market_stats
from tests.support.kafka import produce, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PIPELINE = """
CREATE TABLE market_stats ({columns})
  WITH ({options}, refresh='snapshot', poll_interval='200ms');
CREATE STREAM trades (id BIGINT, symbol VARCHAR, ts BIGINT) WITH (topic='{trades}');

CREATE STREAM enriched WITH (topic='{enriched}') AS
SELECT t.id, c.volume_30d AS now, h.volume_30d AS then
FROM trades t
LEFT JOIN market_stats c ON c.symbol = t.symbol
LEFT JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS h ON h.symbol = t.symbol
EMIT CHANGES;
"""


async def outputs(broker: Broker, topic: str, count: int) -> list[dict[str, Any]]:
    return await read_json(broker.url, topic, count, "id")


async def test_worker_serves_a_snapshot_committed_while_it_runs(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    lake = Lake(tmp_path / "lake")
    history = await asyncio.to_thread(market_stats, lake)
    first = history.log[0][0]
    names = {n: unique(n) for n in ("trades", "enriched", "dlq")}
    pipeline = tmp_path / "iceberg.sql"
    pipeline.write_text(
        PIPELINE.format(columns=COLUMNS, options=lake.options("analytics.market_stats"), **names)
    )
    now = int(time.time() * 1000)
    before = [
        {"id": 0, "symbol": "A", "ts": now},
        {"id": 1, "symbol": "A", "ts": first},
        {"id": 2, "symbol": "D", "ts": now},
        {"id": 3, "symbol": "E", "ts": now},
    ]
    await produce_json(broker.url, names["trades"], 1, before, None)
    worker = start_worker(broker.url, tmp_path, pipeline, names["dlq"], workers)
    await until(processed(worker, "enriched", len(before)), "the first trades", worker)
    old_outputs = await outputs(broker, names["enriched"], len(before))
    assert old_outputs == [
        {"id": 0, "now": 150, "then": 150},
        {"id": 1, "now": 150, "then": 100},
        {"id": 2, "now": 400, "then": 400},
        {"id": 3, "now": None, "then": None},
    ]
    source = queries(worker)["enriched"]["sources"]["market_stats"]
    old_snapshot = source["snapshot"]
    assert old_snapshot == history.log[-1][1]

    new = await asyncio.to_thread(
        append, lake, "analytics.market_stats", [{"symbol": "E", "volume_30d": 700, "px": None}]
    )

    def switched() -> bool:
        q = queries(worker).get("enriched")
        return q is not None and q["sources"]["market_stats"]["snapshot"] == new

    await until(switched, "the worker to serve the new snapshot", worker)
    later = int(time.time() * 1000)
    after = [
        {"id": 10, "symbol": "E", "ts": later},
        {"id": 11, "symbol": "E", "ts": now},  # a record of a time before the commit
        {"id": 12, "symbol": "A", "ts": first},
    ]
    await produce(broker.url, names["trades"], [(None, codec.dumps(t)) for t in after])
    await until(processed(worker, "enriched", len(before) + len(after)), "the later trades", worker)
    got = await outputs(broker, names["enriched"], len(before) + len(after))
    assert got[: len(before)] == old_outputs  # written before the commit: unchanged
    assert got[len(before) :] == [
        {"id": 10, "now": 700, "then": 700},
        {"id": 11, "now": 700, "then": None},
        {"id": 12, "now": 150, "then": 100},
    ]
    source = queries(worker)["enriched"]["sources"]["market_stats"]
    assert source["switches"] == 1
    assert source["refreshes"] >= 1
    assert source["breaker"]["state"] == "closed"
    assert old_snapshot in source["snapshot_caches"]
