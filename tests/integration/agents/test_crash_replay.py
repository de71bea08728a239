"""A crash never changes a windowed result: two workers (two app ids) run the same windowed
GROUP BY over the same 3-partition stream while it is produced with event time running 10x
faster than the wall clock; one is SIGKILLed 4 times and restarted (each restart replays a
backlog, its stage 1 reading the source partitions unevenly). Both end with the windows the
input defines, and neither sends a record to the dead-letter topic as late: the watermark is the
minimum over the source partitions (agents/watermarks.py)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import queries, until, worker_env
from tests.support.kafka import read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1s', partitions='3');

CREATE TABLE wins WITH (topic='{wins}', partitions='3') AS
SELECT k, window_start, COUNT(*) AS n, SUM(v) AS s
FROM events WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;
"""
KEYS = [f"k{i}" for i in range(24)]
SPEEDUP = 10  # event time runs this much faster than the wall clock
PRODUCE_S = 40.0
RATE = 400  # events per wall-clock second, over all partitions
KILLS = 4


async def produce_live(servers: str, topic: str, started: float) -> list[dict[str, Any]]:
    """Events for :data:`PRODUCE_S` seconds, event time = 10x the wall time since ``started``
    (jitter within the declared out-of-orderness), sent in lingering batches."""
    rng = random.Random(5)
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=50, acks="all")
    await producer.start()
    sent: list[dict[str, Any]] = []
    futures = []
    base = 1_800_000_000_000
    try:
        i = 0
        while (elapsed := time.monotonic() - started) < PRODUCE_S:
            for _ in range(RATE // 10):
                k = KEYS[i % len(KEYS)]
                ts = base + int(elapsed * 1000 * SPEEDUP) - rng.randrange(0, 400)
                event = {"k": k, "v": rng.randrange(1, 100), "ts": ts}
                futures.append(await producer.send(topic, value=codec.dumps(event), key=k.encode()))
                sent.append(event)
                i += 1
            await asyncio.sleep(0.1)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def _aggregating(worker: Worker) -> bool:
    q = queries(worker).get("wins")
    return q is not None and q["records_in"] > 0


def windows(events: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(key, window start) -> (count, sum): what the query must end with."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for e in events:
        w = (e["k"], e["ts"] - e["ts"] % 10_000)
        n, s = out.get(w, (0, 0))
        out[w] = (n + 1, s + e["v"])
    return out


async def final_windows(servers: str, topic: str) -> dict[tuple[str, int], tuple[int, int]]:
    out = {}
    for r in await read_all(servers, topic, timeout=30):
        row = codec.loads(r.value)
        out[(row["k"], row["window_start"])] = (row["n"], row["s"])
    return out


async def test_a_crash_never_changes_a_windowed_result(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    events_topic = unique("events")
    await ensure_topics(broker.url, [TopicSpec(events_topic, 3)])
    runs = {}
    for run in ("calm", "killed"):
        names = {"events": events_topic, "wins": unique(f"wins-{run}"), "dlq": unique("dlq")}
        path = tmp_path / f"{run}.sql"
        path.write_text(PIPELINE.format(**names))
        env = worker_env(broker.url, path, names)
        runs[run] = (names, Worker(tmp_path / run, env).start())
        workers.append(runs[run][1])

    started = time.monotonic()
    producing = asyncio.ensure_future(produce_live(broker.url, events_topic, started))
    victim = runs["killed"][1]
    kills = 0
    while kills < KILLS and not producing.done():
        # Killed while it aggregates (not while it starts), then down while a backlog builds.
        await until(lambda: _aggregating(victim), "the victim to aggregate", victim, 60)
        await asyncio.sleep(1.0)
        victim.stop(signal.SIGKILL)
        kills += 1
        await asyncio.sleep(2.0)
        victim.start()
    events = await producing
    assert kills >= 3
    expected = windows(events)

    for run, (names, worker) in runs.items():
        deadline = time.monotonic() + 90
        got: dict[tuple[str, int], tuple[int, int]] = {}
        while time.monotonic() < deadline:
            got = await final_windows(broker.url, names["wins"])
            if got == expected:
                break
            assert worker.proc is not None, run
            assert worker.proc.poll() is None, worker.tail()
            await asyncio.sleep(2)
        wrong = {w: (got.get(w), v) for w, v in expected.items() if got.get(w) != v}
        assert got == expected, (
            f"{run}: {len(wrong)} windows differ, e.g. {list(wrong.items())[:3]}"
        )
        dead = await read_all(broker.url, names["dlq"], timeout=5)
        reasons = [dict(r.headers).get("tablestream.reason") for r in dead]
        assert reasons == [], f"{run}: {len(reasons)} dead letters, e.g. {reasons[:3]}"
