"""A co-partitioned GROUP BY whose source topic lost records to retention (delete-records, as
retention does) while the query was stopped, on Apache Kafka. The documented contract
(docs/SQL.md, co-partitioned GROUP BY): the state is verified against the source topic; a task
whose last applied record was deleted resumes after it, its state kept (the deleted records are
in it); one whose unread records were deleted starts at the partition's new beginning and logs
it — those records are never aggregated. In process: the query's agent stopped, the records
deleted, the agent started again on the same data directory."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from agents.config import AgentConfig
from agents.pipeline import load_pipeline
from agents.stateful import StatefulAgent
from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.kafka.support import delete_records
from tests.support.eos import no_tables
from tests.support.kafka import produce, read_all, unique

pytestmark = [pytest.mark.broker, pytest.mark.kafka_only]

PIPELINE = """\
CREATE STREAM keyed (k VARCHAR, v BIGINT) WITH (topic='{events}', key='k');
CREATE TABLE sums WITH (topic='{sums}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM keyed GROUP BY k EMIT CHANGES;
"""


def events(first: int, n: int) -> list[dict[str, Any]]:
    return [{"k": f"k{i % 4}", "v": i} for i in range(first, first + n)]


def model(items: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for e in items:
        n, s = out.get(e["k"], (0, 0))
        out[e["k"]] = (n + 1, s + e["v"])
    return out


class Query:
    """The co-partitioned query's agent, started and stopped as a worker would run it."""

    def __init__(self, servers: str, tmp_path: Path) -> None:
        self.names = {n: unique(n) for n in ("events", "sums", "dlq")}
        sql = tmp_path / "pipeline.sql"
        sql.write_text(PIPELINE.format(**self.names))
        self.pipeline = load_pipeline([sql])
        (self.qdef,) = self.pipeline.queries
        assert self.qdef.copartitioned
        self.config = AgentConfig(
            bootstrap_servers=servers,
            app_id=unique("retained"),
            dead_letter_topic=self.names["dlq"],
            data_dir=tmp_path / "data",
        )
        self.servers = servers

    async def send(self, items: list[dict[str, Any]]) -> None:
        await produce(
            self.servers, self.names["events"], [(e["k"].encode(), codec.dumps(e)) for e in items]
        )

    async def run_until(self, items: list[dict[str, Any]], position: int) -> StatefulAgent:
        """The agent started, until its task applied everything below ``position`` and the sink
        holds ``model(items)``; then stopped (its state stored)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.servers)
        await producer.start()
        agent = StatefulAgent(self.qdef, self.pipeline, {}, producer, self.config, no_tables)
        await agent.start()
        try:
            deadline, got = time.monotonic() + 60, {}
            while not (
                0 in agent.tasks
                and agent.tasks[0].position >= position
                and (got := await self.sums()) == model(items)
            ):
                assert agent.stats.state != "failed", agent.stats.error
                assert time.monotonic() < deadline, f"sums {got}, want {model(items)}"
                await asyncio.sleep(0.2)
            return agent
        finally:
            await agent.stop()
            await producer.stop()

    async def sums(self) -> dict[str, tuple[int, int]]:
        out = {}
        for r in await read_all(self.servers, self.names["sums"]):
            row = codec.loads(r.value)
            out[row["k"]] = (row["n"], row["total"])
        return out


def retention_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for r in caplog.records if "past what its task's state" in (m := r.getMessage())]


async def test_retention_under_a_copartitioned_tasks_state(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agents")
    q = Query(broker.url, tmp_path)
    await ensure_topics(
        broker.url,
        [TopicSpec(q.names["events"], 1, configs={"cleanup.policy": "delete"})]
        + [TopicSpec(q.names[n], 1) for n in ("sums", "dlq")],
    )
    await q.send(events(0, 20))
    await q.run_until(events(0, 20), 20)

    # 1. Every applied record deleted, the last one too: its fingerprint cannot be checked. The
    # task resumes after it; the deleted records stay counted (they are in the state).
    await delete_records(broker.url, q.names["events"], before=20)
    await q.send(events(20, 10))
    agent = await q.run_until(events(0, 30), 30)
    assert (agent.stats.replays, agent.stats.rebuilds) == (0, 0)
    assert not retention_warnings(caplog)

    # 2. Records the task never read deleted (30..34): it starts at the new beginning (35) and
    # logs it; those records are never aggregated, the others all are, once.
    await q.send(events(30, 10))
    await delete_records(broker.url, q.names["events"], before=35)
    agent = await q.run_until(events(0, 30) + events(35, 5), 40)
    assert (agent.stats.replays, agent.stats.rebuilds) == (0, 0)
    logged = [
        r.getMessage() for r in caplog.records if "past what its task's state" in r.getMessage()
    ]
    assert logged == [
        f"query sums: {q.names['events']}[0] begins at offset 35, past what its task's state"
        " reflects: the records between were deleted by the topic's retention before they were"
        " aggregated"
    ]
