"""GROUP BY the stream's record key runs in one stage, without a repartition topic
(:mod:`agents.copartition`), with the same results as the two-stage path.

One worker runs the same two queries twice over one 4-partition topic keyed by the group key:
through the stream ``events`` (no key declared: repartitioned) and through ``keyed`` (the same
topic, ``key='k'``: co-partitioned). Both must give every group the same rows in the same order;
records that break co-partitioning are dead letters of the co-partitioned queries only; a second
worker, a SIGKILL and a restart keep the results exact.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from app.broker import Broker
from core import codec
from tables.deadletter import H_REASON, H_SOURCE
from tables.topics import existing_topics
from tests.integration.agents.support import queries, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BASE = 1_700_000_000_000
KEYS = 40
PARTITIONS = 4
PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1h', partitions='4');
CREATE STREAM keyed (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', key='k', timestamp='ts', out_of_orderness='1h');

CREATE TABLE sums_r WITH (topic='{sums_r}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k EMIT CHANGES;
CREATE TABLE sums_c WITH (topic='{sums_c}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM keyed GROUP BY k EMIT CHANGES;

CREATE STREAM wins_r WITH (topic='{wins_r}') AS
SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total
FROM events WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;
CREATE STREAM wins_c WITH (topic='{wins_c}') AS
SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total
FROM keyed WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;
"""
COPART = ("sums_c", "wins_c")
BOTH = ("sums_r", "sums_c", "wins_r", "wins_c")


def events(first: int, n: int) -> list[dict[str, Any]]:
    return [
        {"k": f"k{i % KEYS}", "v": i % 7 + 1, "ts": BASE + (i * 37) % 60_000}
        for i in range(first, first + n)
    ]


def keyed(items: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    """Keyed by the group column, placed by the producer's default partitioner."""
    return [(e["k"].encode(), codec.dumps(e)) for e in items]


async def trickle(servers: str, topic: str, items: list[dict[str, Any]], chunk: int) -> None:
    """``items`` produced ``chunk`` at a time, 50 ms apart: a stream a worker is caught in."""
    for i in range(0, len(items), chunk):
        await produce(servers, topic, keyed(items[i : i + chunk]), linger_ms=5)
        await asyncio.sleep(0.05)


def model(items: list[dict[str, Any]]) -> dict[str, dict[tuple[Any, ...], tuple[int, int]]]:
    """Per query kind, group -> (count, sum) over ``items``."""
    sums: dict[tuple[Any, ...], tuple[int, int]] = {}
    wins: dict[tuple[Any, ...], tuple[int, int]] = {}
    for e in items:
        for out, key in ((sums, (e["k"],)), (wins, (e["k"], e["ts"] - e["ts"] % 10_000))):
            n, s = out.get(key, (0, 0))
            out[key] = (n + 1, s + e["v"])
    return {"sums": sums, "wins": wins}


async def latest(broker: Broker, topic: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """The newest row of every group in a sink (keyed by the group, one partition per key)."""
    out = {}
    for r in await read_all(broker.url, topic):
        row = codec.loads(r.value)
        group = (row["k"],) if "window_start" not in row else (row["k"], row["window_start"])
        out[group] = (row["n"], row["total"])
    return out


async def exact(
    broker: Broker, names: dict[str, str], items: list[Any], qs: tuple[str, ...]
) -> None:
    want = model(items)
    got: dict[str, Any] = {}
    for _ in range(150):
        got = {q: await latest(broker, names[q]) for q in qs}
        if all(got[q] == want[q[:4]] for q in qs):
            return
        await asyncio.sleep(0.3)
    for q in qs:
        assert got[q] == want[q[:4]], q


@dataclass
class Run:
    broker: Broker
    tmp_path: Path
    names: dict[str, str]
    env: dict[str, str]
    worker: Worker
    #: Every good event produced so far (the models are over these).
    items: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def run(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One worker for the module's tests (they run in order: the last one kills it)."""
    tmp_path = tmp_path_factory.mktemp("copartition")
    names = {n: unique(n) for n in ("events", *BOTH, "dlq")}
    pipeline = tmp_path / "copartition.sql"
    pipeline.write_text(PIPELINE.format(**names))
    env = worker_env(broker.url, pipeline, names)
    worker = Worker(tmp_path / "a", env).start()
    r = Run(broker, tmp_path, names, env, worker)
    try:
        yield r
    finally:
        worker.stop(signal.SIGKILL)


def _owns(worker: Worker, qs: tuple[str, ...], n: int) -> bool:
    stats = queries(worker)
    return all(len(stats.get(q, {}).get("partitions", {})) == n for q in qs)


async def test_same_rows_as_the_repartitioned_path_without_a_repartition_topic(run: Run) -> None:
    broker, names, worker = run.broker, run.names, run.worker
    await until(lambda: _owns(worker, COPART, 4), "the co-partitioned tasks", worker, 90)
    await until(lambda: "sums_r" in queries(worker), "the repartitioned queries", worker, 90)
    items = events(0, 4_000)
    run.items += items
    await produce(broker.url, names["events"], keyed(items))
    await exact(broker, names, run.items, BOTH)

    stats = queries(worker)
    for q in COPART:
        # One stage: the source's partitions are the tasks; no repartition stage or topic.
        assert stats[q]["kind"] == "stateful"
        assert stats[q]["source"] == names["events"], stats[q]
        assert sorted(stats[q]["partitions"]) == ["0", "1", "2", "3"], stats[q]
        assert stats[q]["records_in"] == len(items)
        assert stats[q]["dead_letters"] == 0
        assert f"{q}-repartition" not in stats
    assert "sums_r-repartition" in stats
    topics = await existing_topics(broker.url)
    app = run.env["TABLESTREAM_APP_ID"]
    assert f"{app}-sums_r-repartition" in topics
    assert not any(t.startswith(f"{app}-sums_c") or t.startswith(f"{app}-wins_c") for t in topics)

    # Every group's rows in the same order both ways (EMIT CHANGES: one row per record).
    for r_q, c_q in (("sums_r", "sums_c"), ("wins_r", "wins_c")):
        seqs = []
        for q in (r_q, c_q):
            per_group: dict[bytes, list[Any]] = {}
            for rec in await read_all(broker.url, names[q]):
                per_group.setdefault(rec.key, []).append(codec.loads(rec.value))
            seqs.append(per_group)
        assert seqs[0] == seqs[1], r_q
        assert sum(len(v) for v in seqs[1].values()) == len(items)


async def test_records_breaking_co_partitioning_are_dead_letters(run: Run) -> None:
    broker, names = run.broker, run.names
    topic = names["events"]
    good = events(10_000, 40)
    wrong_key = {"k": "k1", "v": 100, "ts": BASE}
    no_key = {"k": "k2", "v": 200, "ts": BASE}
    misplaced = {"k": "k3", "v": 300, "ts": BASE}
    right = (murmur2(b"k3") & 0x7FFFFFFF) % PARTITIONS
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(topic, codec.dumps(wrong_key), key=b"k9"),
            await producer.send_and_wait(topic, codec.dumps(no_key), key=None),
            await producer.send_and_wait(
                topic, codec.dumps(misplaced), key=b"k3", partition=(right + 1) % PARTITIONS
            ),
        ]
    finally:
        await producer.stop()
    await produce(broker.url, topic, keyed(good))
    run.items += good

    # The co-partitioned queries count none of them; the repartitioned ones count all three.
    await exact(broker, names, run.items, COPART)
    await exact(broker, names, [*run.items, wrong_key, no_key, misplaced], ("sums_r", "wins_r"))

    dead = await read_all(broker.url, names["dlq"])
    by_query: dict[str, list[Any]] = {}
    for rec in dead:
        by_query.setdefault(dict(rec.headers)[H_SOURCE].decode(), []).append(rec)
    assert sorted(by_query) == ["query:sums_c", "query:wins_c"]
    for recs in by_query.values():
        headers = [dict(r.headers) for r in recs]
        where = [(int(h["tablestream.partition"]), int(h["tablestream.offset"])) for h in headers]
        assert sorted(where) == sorted((m.partition, m.offset) for m in sent)
        assert {h["tablestream.topic"].decode() for h in headers} == {topic}
        # In the order sent: wrong key, no key, misplaced.
        reasons = [h[H_REASON].decode() for h in sorted(headers, key=_sent_order(sent))]
        assert reasons[0].startswith("record key 'k9' is not the key column k of stream keyed")
        assert reasons[1].startswith("record without a key: stream keyed"), reasons
        assert reasons[2].startswith(f"record key 'k3' belongs in partition {right} of"), reasons


def _sent_order(sent: list[Any]) -> Any:
    order = {(m.partition, m.offset): i for i, m in enumerate(sent)}
    return lambda h: order[(int(h["tablestream.partition"]), int(h["tablestream.offset"]))]


async def test_rebalance_crash_and_restart_keep_the_results_exact(run: Run) -> None:
    broker, names, env, first = run.broker, run.names, run.env, run.worker
    second = Worker(run.tmp_path / "b", env).start()
    try:
        both = [first, second]

        def split() -> bool:
            parts = [set(queries(w).get("sums_c", {}).get("partitions", {})) for w in both]
            return all(parts) and not parts[0] & parts[1] and len(parts[0] | parts[1]) == 4

        await until(split, "the co-partitioned tasks split between the workers", second, 90)
        items = events(20_000, 8_000)

        producing = asyncio.create_task(trickle(broker.url, names["events"], items, 500))
        await until(
            lambda: queries(first).get("sums_c", {}).get("records_in", 0) >= 1_000,
            "the first worker to be mid-stream",
            first,
        )
        first.stop(signal.SIGKILL)
        await producing
        run.items += items
        await until(lambda: _owns(second, COPART, 4), "the survivor to own every task", second, 90)
        await exact(broker, names, run.items, COPART)

        # Restarted on its data dir: tasks come back to it, resumed from local state.
        first.start()
        await until(split, "the tasks split again", first, 90)
        more = events(40_000, 2_000)
        await produce(broker.url, names["events"], keyed(more))
        run.items += more
        await exact(broker, names, run.items, COPART)
        assert "resumes at offset" in first.log.read_text()
    finally:
        second.stop(signal.SIGKILL)


EOS_PIPELINE = """\
CREATE STREAM keyed (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', key='k', timestamp='ts', partitions='4');
CREATE TABLE sums_c WITH (topic='{sums_c}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM keyed GROUP BY k EMIT CHANGES;
"""


@pytest.mark.kafka_only
async def test_exactly_once_through_a_sigkill(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    """One transaction per source partition's task: killed mid-stream and restarted, the sink
    read_committed holds every group's rows once each, counts 1, 2, 3, ... without a repeat."""
    names = {n: unique(n) for n in ("events", "sums_c", "dlq")}
    pipeline = tmp_path / "eos.sql"
    pipeline.write_text(EOS_PIPELINE.format(**names))
    env = {
        **worker_env(broker.url, pipeline, names),
        "TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once",
        "TABLESTREAM_QUERY_MAX_RECORDS": "500",
    }
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    await until(lambda: _owns(worker, ("sums_c",), 4), "the tasks", worker, 90)
    items = events(0, 8_000)

    producing = asyncio.create_task(trickle(broker.url, names["events"], items, 400))
    await until(
        lambda: queries(worker).get("sums_c", {}).get("records_in", 0) >= 1_500,
        "the worker to be mid-stream",
        worker,
    )
    worker.stop(signal.SIGKILL)
    worker.start()
    await producing

    per_group: dict[str, list[int]] = {}
    final: dict[tuple[Any, ...], tuple[int, int]] = {}
    for _ in range(100):
        per_group, final = {}, {}
        for rec in await read_all(broker.url, names["sums_c"], isolation_level="read_committed"):
            row = codec.loads(rec.value)
            per_group.setdefault(row["k"], []).append(row["n"])
            final[(row["k"],)] = (row["n"], row["total"])
        if sum(len(ns) for ns in per_group.values()) >= len(items):
            break
        await asyncio.sleep(0.5)
    assert final == model(items)["sums"]
    # One committed row per input record: no group's count repeats or skips.
    assert all(ns == list(range(1, len(ns) + 1)) for ns in per_group.values())
