"""Exactly-once tests' helpers: reading what transactions committed, and the small stateful
query the in-process tests drive through the agents' hooks on the real broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.pipeline import load_pipeline
from agents.pipeline_model import repartition_topic
from tests.support.kafka import unique

#: The symbols of :data:`TAKEOVER`'s orders.
SYMBOLS = ["AAPL", "MSFT"]


async def read_committed(servers: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every committed record of ``topic``, up to its last stable offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        await consumer._client.add_topic(topic)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        assert tps, f"no topic {topic}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(msgs)
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return out
        raise AssertionError(f"{topic}: not read to its end in {timeout}s")
    finally:
        await consumer.stop()


TAKEOVER = """\
CREATE STREAM orders (order_id BIGINT, symbol VARCHAR, qty BIGINT) WITH (topic='{orders}');
CREATE TABLE volume WITH (topic='{volume}') AS
SELECT symbol, COUNT(*) AS n FROM orders GROUP BY symbol EMIT CHANGES;
"""


def takeover_query(tmp_path: Path, prefix: str) -> tuple[str, dict[str, str], Any, Any, str]:
    """:data:`TAKEOVER` on fresh topics: the app id, the topic names, the pipeline, its query,
    and the query's repartition topic."""
    app_id = unique(prefix)
    names = {n: unique(n) for n in ("orders", "volume", "dlq")}
    pipeline_sql = tmp_path / "pipeline.sql"
    pipeline_sql.write_text(TAKEOVER.format(**names))
    pipeline = load_pipeline([pipeline_sql])
    (query,) = pipeline.queries
    return app_id, names, pipeline, query, repartition_topic(app_id, query.name)


async def no_tables(names: Any) -> None:
    """The agent's wait for its tables: the query reads none."""
