"""A crash never changes a windowed result — and this test fails without the watermark fix.

The bug (issue 10): after a restart, stage 1 of a windowed GROUP BY reads one source partition
far ahead of the others (Tansu ignores the per-partition fetch size; any broker does when one
partition's backlog is there first) and interleaves them into the repartition topic. A task's
watermark taken as the largest event time it saw then outruns the slower source partitions, and
their valid records go to the dead-letter topic as ``late``.

Reproduced on purpose, on both brokers: two workers (two app ids) run the same windowed query
over one 3-partition stream, one with the watermark over the source partitions
(``agents/watermarks.py``), one with ``TABLESTREAM_WATERMARK_PER_SOURCE=false`` (each task's own
stream time, the behaviour before the fix). Both aggregate a first minute of events, are
SIGKILLed, and while they are down a backlog of event time (60 s of it, produced in an instant:
event time far faster than the wall clock) lands in source partition 0 only. Restarted, both
read partition 0 far ahead; then partitions 1 and 2 get their backlog for the same event time.

- with the fix: every window is exactly what the input defines, no dead letter;
- without it: hundreds of valid records are dead letters with reason ``late`` (every record is
  either counted in a window or there: the run is complete, not just slow).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import COMPACT, worker_env
from tests.support.kafka import produce, read_all, rows, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1s', partitions='3');

CREATE TABLE wins WITH (topic='{wins}', partitions='3') AS
SELECT k, window_start, COUNT(*) AS n, SUM(v) AS s
FROM events WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;
"""
#: The same, not repartitioned (its group key reads a joined table): one query reads every
#: source partition itself (agents.agent, agents.watermarks.PartitionClock).
JOINED = """\
CREATE TABLE users (id VARCHAR PRIMARY KEY, tier VARCHAR) WITH (topic='{users}');
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1s', partitions='3');

CREATE TABLE wins WITH (topic='{wins}', partitions='3') AS
SELECT u.tier AS k, window_start, COUNT(*) AS n, SUM(e.v) AS s
FROM events e JOIN users u ON u.id = e.k
WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY u.tier EMIT CHANGES;
"""
KEYS = [f"k{i}" for i in range(12)]
TIERS = {k: f"t{i % 3}" for i, k in enumerate(KEYS)}
BASE = 1_800_000_000_000
STEP_MS = 100  # event time between two records of one partition
LIVE_S = 10  # event time aggregated before the crash
BACKLOG_S = 60  # event time each partition's backlog spans

Window = tuple[str, int]
Event = dict[str, Any]


def events_of(partition: int, start_s: int, seconds: int, rng: random.Random) -> list[Event]:
    """One partition's events from ``BASE + start_s`` on, in event-time order up to a jitter
    below the declared out-of-orderness (none of them is late in its own partition)."""
    out = []
    start = BASE + start_s * 1000
    for i in range(seconds * 1000 // STEP_MS):
        ts = max(start, start + i * STEP_MS - rng.randrange(0, 500))
        out.append({"k": rng.choice(KEYS), "v": rng.randrange(1, 100), "ts": ts, "p": partition})
    return out


async def produce_to(servers: str, topic: str, events: list[Event]) -> None:
    """Each event to its own partition (``p``), in order, in lingering batches."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=20, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=codec.dumps(e), key=e["k"].encode(), partition=e["p"])
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def windows(events: list[Event], joined: bool = False) -> dict[Window, tuple[int, int]]:
    """(group, window start) -> (count, sum): what the query must end with (grouped by the
    user's tier for :data:`JOINED`)."""
    out: dict[Window, tuple[int, int]] = {}
    for e in events:
        w = (TIERS[e["k"]] if joined else e["k"], e["ts"] - e["ts"] % 10_000)
        n, s = out.get(w, (0, 0))
        out[w] = (n + 1, s + e["v"])
    return out


async def sink_windows(servers: str, topic: str) -> dict[Window, tuple[int, int]]:
    out = {}
    # Committed records only: an exactly-once run's aborted outputs are not its result.
    for r in await read_all(servers, topic, timeout=20, isolation_level="read_committed"):
        row = codec.loads(r.value)
        out[(row["k"], row["window_start"])] = (row["n"], row["s"])
    return out


async def late_letters(servers: str, topic: str) -> int:
    """Dead letters of ``topic``; every one must be ``late`` (anything else fails the test)."""
    dead = await read_all(servers, topic, timeout=5, isolation_level="read_committed")
    reasons = [dict(r.headers).get("tablestream.reason") for r in dead]
    assert all(r == b"late" for r in reasons), reasons[:3]
    return len(reasons)


async def wait_for(what: str, check: Any, workers: list[Worker], timeout: float) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for w in workers:
            assert w.proc is not None
            assert w.proc.poll() is None, w.tail()
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.5)
    tails = "\n".join(w.tail() for w in workers)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{tails}")


@dataclass
class Replay:
    """What :func:`replay` produced and which sink and dead-letter topics each run wrote."""

    events: list[Event]
    behind: list[Event]
    expected: dict[Window, tuple[int, int]]
    names: dict[str, dict[str, str]]
    workers: list[Worker]


async def replay(
    broker: Broker,
    tmp_path: Path,
    workers: list[Worker],
    runs: dict[str, dict[str, str]],
    pipeline: str = PIPELINE,
) -> Replay:
    """The scenario of the module docstring: one worker per run (its settings in ``runs``),
    killed and restarted with partition 0's backlog read ahead; returns once every event was
    produced (the runs may still be processing)."""
    rng = random.Random(10)
    events_topic = unique("events")
    await ensure_topics(broker.url, [TopicSpec(events_topic, 3)])
    joined = pipeline is JOINED
    users = unique("users")
    if joined:
        await ensure_topics(broker.url, [TopicSpec(users, 1, configs=COMPACT)])
        await produce(broker.url, users, rows((k, {"id": k, "tier": t}) for k, t in TIERS.items()))
    names: dict[str, dict[str, str]] = {}
    procs = []
    for run, settings in runs.items():
        names[run] = {"events": events_topic, "wins": unique(f"wins-{run}"), "dlq": unique("dlq")}
        path = tmp_path / f"{run}.sql"
        path.write_text(pipeline.format(users=users, **names[run]))
        env = {**worker_env(broker.url, path, names[run]), **settings}
        procs.append(Worker(tmp_path / run, env).start())
        workers.append(procs[-1])

    async def shows(run: str, events: list[Event]) -> bool:
        """The run's sink holds every window of ``events`` with at least their counts."""
        got = await sink_windows(broker.url, names[run]["wins"])
        want = windows(events, joined).items()
        return all(got.get(w, (0, 0))[0] >= n for w, (n, _) in want)

    # A first stretch of event time on every partition, aggregated by all; then all crash.
    live = [e for p in range(3) for e in events_of(p, 0, LIVE_S, rng)]
    await produce_to(broker.url, events_topic, live)
    for run in runs:
        await wait_for(f"{run} to aggregate", lambda r=run: shows(r, live), procs, 90)
    for w in procs:
        w.stop(signal.SIGKILL)

    # While they are down, partition 0's backlog arrives first: read far ahead after restart.
    ahead = events_of(0, LIVE_S, BACKLOG_S, rng)
    await produce_to(broker.url, events_topic, ahead)
    for w in procs:
        w.start()
    for run in runs:
        await wait_for(f"{run} to read partition 0 ahead", lambda r=run: shows(r, ahead), procs, 90)
    behind = [e for p in (1, 2) for e in events_of(p, LIVE_S, BACKLOG_S, rng)]
    await produce_to(broker.url, events_topic, behind)
    events = live + ahead + behind
    return Replay(events, behind, windows(events, joined), names, procs)


async def exact_and_no_late(broker: Broker, r: Replay, run: str) -> None:
    """With the fix: exactly the windows the input defines, no dead letter."""
    names, expected = r.names[run], r.expected

    async def exact() -> bool:
        late = await late_letters(broker.url, names["dlq"])
        assert late == 0, f"{run}: {late} valid records are dead letters as late"
        return await sink_windows(broker.url, names["wins"]) == expected

    await wait_for(f"the {run} run's exact windows", exact, r.workers, 90)


async def late_without_the_fix(broker: Broker, r: Replay, run: str) -> None:
    """Without the fix: valid records of partitions 1 and 2 are late; every record is counted
    in a window or is a dead letter (the run is complete, not just slow)."""
    names = r.names[run]

    async def complete() -> tuple[int, int] | None:
        counted = sum(n for n, _ in (await sink_windows(broker.url, names["wins"])).values())
        late = await late_letters(broker.url, names["dlq"])
        return (counted, late) if counted + late >= len(r.events) else None

    counted, late = await wait_for(f"the {run} run to finish", complete, r.workers, 90)
    assert counted + late == len(r.events)
    assert late > len(r.behind) // 2, f"only {late} of {len(r.behind)} records behind were late"


async def test_a_crash_with_a_partition_read_ahead_makes_no_record_late(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    runs = {
        "fixed": {"TABLESTREAM_WATERMARK_PER_SOURCE": "true"},
        "unfixed": {"TABLESTREAM_WATERMARK_PER_SOURCE": "false"},
    }
    r = await replay(broker, tmp_path, workers, runs)
    await exact_and_no_late(broker, r, "fixed")

    await late_without_the_fix(broker, r, "unfixed")


@pytest.mark.kafka_only
async def test_exactly_once_keeps_the_watermark_over_the_source_partitions(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    """Under exactly-once, stage 1 writes its markers inside each source partition's
    transaction: the same crash and backlog make no record late either."""
    runs = {"eos": {"TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once"}}
    r = await replay(broker, tmp_path, workers, runs)
    await exact_and_no_late(broker, r, "eos")


async def test_a_query_not_repartitioned_keeps_the_watermark_over_its_source_partitions(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    """A windowed GROUP BY on a joined table's column runs without the repartition stage, one
    query over every source partition: the same crash and backlog, the same outcome."""
    runs = {
        "fixed": {"TABLESTREAM_WATERMARK_PER_SOURCE": "true"},
        "unfixed": {"TABLESTREAM_WATERMARK_PER_SOURCE": "false"},
    }
    r = await replay(broker, tmp_path, workers, runs, JOINED)
    await exact_and_no_late(broker, r, "fixed")
    await late_without_the_fix(broker, r, "unfixed")
