"""``TABLESTREAM_STATE_WRITE_INTERVAL``: how often an at-least-once stateful task writes its state.

Two workers run the same co-partitioned GROUP BY over their own topics in small batches
(``TABLESTREAM_QUERY_MAX_RECORDS``): one writes its state with every batch (``0``), one at most
once a minute (``60``: its first batch only, here). Both are SIGKILLed once every output was
acknowledged and every offset committed, then restarted on their data: the first resumes every
task at its partition's end (its state is the last batch's); the second resumes from its first
batch's state and replays the rest quietly (rebuilding state without repeating outputs). Both
then hold the exact totals of every record, sent before and after the crash.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import processed, queries, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.one_broker]

PARTITIONS = 2
PIPELINE = """\
CREATE STREAM keyed (k VARCHAR, v BIGINT) WITH (topic='{events}', key='k', partitions='2');
CREATE TABLE sums WITH (topic='{sums}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM keyed GROUP BY k EMIT CHANGES;
"""
BATCH = 40
ROUNDS = 4


def items(first: int, n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(first, first + n):
        k = f"k{i % 13}"
        out.append((k.encode(), codec.dumps({"k": k, "v": i % 5 + 1})))
    return out


async def committed(url: str, group: str, topic: str) -> int:
    """How many records of ``topic`` ``group`` committed, over its partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=url, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum([await consumer.committed(tp) or 0 for tp in tps])
    finally:
        await consumer.stop()


def owns(worker: Worker) -> Callable[[], bool]:
    return lambda: len(queries(worker).get("sums", {}).get("partitions", {})) == PARTITIONS


def started_lines(worker: Worker, since: int) -> list[str]:
    return worker.log.read_text(errors="replace")[since:].splitlines()


async def test_a_worker_writes_state_as_often_as_the_setting_says(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    runs: dict[str, dict[str, Any]] = {}
    for interval in ("0", "60"):
        names = {n: unique(n) for n in ("events", "sums", "dlq")}
        pipeline = tmp_path / f"interval-{interval}.sql"
        pipeline.write_text(PIPELINE.format(**names))
        env = {
            **worker_env(broker.url, pipeline, names),
            "TABLESTREAM_QUERY_MAX_RECORDS": str(BATCH // 2),
            "TABLESTREAM_STATE_WRITE_INTERVAL": interval,
        }
        await ensure_topics(broker.url, [TopicSpec(names["events"], PARTITIONS)])
        worker = Worker(tmp_path / f"w{interval}", env).start()
        workers.append(worker)
        runs[interval] = {"names": names, "env": env, "worker": worker}
    for run in runs.values():
        # Assigned before the first record: no rebalance (whose revoke writes the state) later.
        await until(owns(run["worker"]), "the tasks", run["worker"], 90)

    # Several batches per task: each round waits for the one before to be read and acknowledged.
    for r in range(ROUNDS):
        for run in runs.values():
            await produce(broker.url, run["names"]["events"], items(r * BATCH, BATCH))
        for run in runs.values():
            w = run["worker"]
            await until(processed(w, "sums", (r + 1) * BATCH), f"round {r} read", w, 90)
    for run in runs.values():
        w, group = run["worker"], f"{run['env']['TABLESTREAM_APP_ID']}-sums-agg"

        async def done(run: dict[str, Any] = run, group: str = group) -> bool:
            n = await committed(broker.url, group, run["names"]["events"])
            return n == ROUNDS * BATCH

        for _ in range(150):
            if await done():
                break
            await asyncio.sleep(0.2)
        assert await done(), "the group's offsets were not committed to the end"
        w.stop(signal.SIGKILL)
        run["since"] = len(w.log.read_text(errors="replace"))
        w.start()

    for run in runs.values():
        await until(owns(run["worker"]), "the tasks back", run["worker"], 90)
    more = items(ROUNDS * BATCH, BATCH)
    for run in runs.values():
        await produce(broker.url, run["names"]["events"], more)

    want: dict[str, tuple[int, int]] = {}
    for _, value in items(0, (ROUNDS + 1) * BATCH):
        e = codec.loads(value)
        n, total = want.get(e["k"], (0, 0))
        want[e["k"]] = (n + 1, total + e["v"])
    resumed = re.compile(r"task \S+\[(\d)\] resumes at offset (\d+)")
    for interval, run in runs.items():
        w, names = run["worker"], run["names"]
        await until(processed(w, "sums", BATCH), "the records after the restart", w, 90)
        lines = started_lines(w, run["since"])
        quiet = [line for line in lines if "rebuilds state without outputs" in line]
        at = {int(p): int(o) for line in lines for p, o in resumed.findall(line)}
        assert sorted(at) == list(range(PARTITIONS)), lines
        if interval == "0":
            # The state of every batch written: each task resumes at its partition's end.
            assert not quiet, quiet
            assert sum(at.values()) == ROUNDS * BATCH
        else:
            # Only the first batch's state written: the rest replayed quietly.
            assert quiet, lines
            assert sum(at.values()) < ROUNDS * BATCH

        async def exact(names: dict[str, str] = names) -> bool:
            got = {}
            for rec in await read_all(broker.url, names["sums"]):
                row = codec.loads(rec.value)
                got[row["k"]] = (row["n"], row["total"])
            return got == want

        for _ in range(100):
            if await exact():
                break
            await asyncio.sleep(0.2)
        assert await exact(), f"interval {interval}: the totals are not exact"
