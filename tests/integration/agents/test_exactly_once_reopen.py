"""Stage 2's assignment hook and what its own commit returns, on Apache Kafka: a task kept across
a rebalance whose transaction did not commit there is reopened from its stored state — which
holds exactly what committed — instead of being taken for a task ahead of the committed offset
and replayed from offset 0; a stored state behind what was committed (another worker committed
past it meanwhile) is still replayed, quietly, up to the committed offset. Real broker,
transactions and RocksDB; the hooks called as aiokafka calls them; outputs read committed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.broker import Broker
from tests.support.eos import Driven, stage2, write_stage1

pytestmark = [pytest.mark.broker, pytest.mark.kafka_only]

#: An output row too large for the sink's ``max.message.bytes`` (16 kB here) until it is raised:
#: the broker rejects its record batch, so its transaction aborts at the commit.
BIG = "X" * 20000


async def raise_limit(servers: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        big = {"max.message.bytes": str(1024 * 1024)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=big)])
    finally:
        await admin.close()


def resets(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The tasks taken for ahead of the committed offset (reset, replayed from 0)."""
    return [m for r in caplog.records if "ahead of the committed offset" in (m := r.getMessage())]


async def test_a_kept_task_whose_commit_aborted_reopens_from_its_state(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agents")
    url = broker.url
    # Transactions commit only when the test (or a hook) says so.
    run = await stage2(
        url, tmp_path, "reopen", sink={"max.message.bytes": "16384"}, commit_interval=3600.0
    )
    tp = TopicPartition(run.repartition, 0)
    driven = await Driven.of(run.agent)
    try:
        await driven.assign(tp)
        await write_stage1(run.producer, run.repartition, 0, 40)
        await driven.run_until(0, 40)  # committed, state stored at 40
        # 10 more in an open transaction, one of them with an output the sink rejects.
        await write_stage1(run.producer, run.repartition, 40, 1, symbol=BIG)
        await write_stage1(run.producer, run.repartition, 41, 9)
        await driven.run_until(0, 50, commit=False)
        # A rebalance keeps the partition: the revocation hook's commit aborts (pending until
        # the assignment hook's commit reports it).
        await driven.revoke()
        assert (driven.txns.aborts, driven.txns.commits) == (1, 1)
        await raise_limit(url, run.names["volume"])
        replays = run.agent.stats.replays
        await driven.assign(tp)
        task = run.agent.tasks[0]
        assert task.position == 40, "not reopened from its stored state"
        assert run.agent.stats.replays == replays
        assert not resets(caplog)
        await driven.run_until(0, 50)
    finally:
        await driven.close()
        await run.producer.stop()
    assert await run.counts() == {
        "AAPL": list(range(1, 25)),  # even orders: 20 below 40, then 42..48
        "MSFT": list(range(1, 26)),
        BIG: [1],
    }


async def test_a_kept_task_fenced_meanwhile_replays_up_to_what_was_committed(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The kept task's transaction was fenced: another worker took the partition over during
    the rebalance and committed past this one's stored state before handing it back. Reopened
    from its state (40), the task replays quietly up to the committed offset (60) — no output
    twice — and goes on from there."""
    caplog.set_level(logging.INFO, logger="agents")
    url = broker.url
    run = await stage2(url, tmp_path, "fenced", commit_interval=3600.0)
    tp = TopicPartition(run.repartition, 0)
    first = await Driven.of(run.agent)
    try:
        await first.assign(tp)
        await write_stage1(run.producer, run.repartition, 0, 40)
        await first.run_until(0, 40)
        await write_stage1(run.producer, run.repartition, 40, 20)
        await first.run_until(0, 60, commit=False)  # 40..59 in an open transaction
        # Another worker takes the partition over (its producer fences this one's, whose open
        # transaction is aborted), replays quietly to 40 and commits 40..59 again.
        second = await Driven.of(run.another(tmp_path / "second"))
        try:
            await second.assign(tp)
            await second.run_until(0, 60)
            await second.revoke()
        finally:
            await second.close()
        # Back to this worker: its commit in the hooks finds its producer fenced.
        await first.revoke()
        replays = run.agent.stats.replays
        await first.assign(tp)
        task = run.agent.tasks[0]
        assert (task.position, task.quiet_until) == (40, 60), "not reopened from its state"
        assert run.agent.stats.replays == replays
        assert not resets(caplog)
        await write_stage1(run.producer, run.repartition, 60, 10)
        await first.run_until(0, 70)
    finally:
        await first.close()
        await run.producer.stop()
    assert await run.counts() == {"AAPL": list(range(1, 36)), "MSFT": list(range(1, 36))}
