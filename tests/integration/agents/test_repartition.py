"""Stateful queries shared by workers through a repartition topic: each worker aggregates the
repartition partitions it is assigned, each group's rows come from one worker, and state follows
the partitions — kept across a restart, rebuilt by replay on a worker that takes them over."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import queries, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BASE = 1_700_000_000_000
SIZE = 10_000
KEYS = 40
PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT, ts BIGINT)
  WITH (topic='{events}', timestamp='ts', out_of_orderness='1h', partitions='4');

CREATE TABLE sums WITH (topic='{sums}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k EMIT CHANGES;

CREATE TABLE wins WITH (topic='{wins}') AS
SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total
FROM events WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k EMIT CHANGES;
"""
QUERIES = ("sums", "wins")


def events(first: int, n: int) -> list[dict[str, Any]]:
    # Event times spread over a minute: several windows per key; out_of_orderness covers the
    # interleaving of the source partitions, so no record is late.
    return [
        {"k": f"k{i % KEYS}", "v": i % 7 + 1, "ts": BASE + (i * 37) % 60_000}
        for i in range(first, first + n)
    ]


def encoded(items: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    # Keyed by an id unrelated to the group key: the source partition says nothing about it.
    return [(f"e{i}".encode(), codec.dumps(e)) for i, e in enumerate(items)]


def expected_sums(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in items:
        t = out.setdefault(e["k"], {"k": e["k"], "n": 0, "total": 0})
        t["n"] += 1
        t["total"] += e["v"]
    return out


def expected_wins(items: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for e in items:
        start = e["ts"] - e["ts"] % SIZE
        t = out.setdefault((e["k"], start), {"k": e["k"], "window_start": start, "n": 0})
        t["n"] += 1
        t["total"] = t.get("total", 0) + e["v"]
    return out


def setup(tmp_path: Path, broker: Broker) -> tuple[dict[str, str], dict[str, str]]:
    names = {n: unique(n) for n in ("events", "sums", "wins", "dlq")}
    pipeline = tmp_path / "repartition.sql"
    pipeline.write_text(PIPELINE.format(**names))
    env = worker_env(broker.url, pipeline, names)
    return names, env


def owned(worker: Worker, query: str) -> set[str]:
    """The repartition partitions ``query``'s aggregation stage holds on ``worker``."""
    return set(queries(worker).get(query, {}).get("partitions", {}))


async def split(workers: list[Worker]) -> None:
    """Until both workers hold part of every query's repartition partitions."""
    for q in QUERIES:

        def both(q: str = q) -> bool:
            parts = [owned(w, q) for w in workers]
            return all(parts) and not (parts[0] & parts[1]) and len(parts[0] | parts[1]) == 4

        await until(both, f"the {q} tasks to be split between the workers", workers[0], 90)


async def all_read(workers: list[Worker], n: int) -> None:
    def done() -> bool:
        stats = [queries(w) for w in workers]
        return all(
            sum(s.get(q, {}).get("records_in", 0) for s in stats) >= n
            and all(s.get(q, {}).get("lag") in (0, None) for s in stats)
            for q in QUERIES
        )

    await until(done, "every event aggregated", workers[0], 120)


async def sink(broker: Broker, topic: str, at_least: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(100):
        out = await read_all(broker.url, topic)
        if len(out) >= at_least:
            break
        await asyncio.sleep(0.2)
    return out


def latest(records: list[Any]) -> dict[bytes, Any]:
    return {r.key: codec.loads(r.value) for r in records}


async def check_final(broker: Broker, names: dict[str, str], items: list[Any]) -> None:
    """The newest row per key of both sinks is the aggregate over every event exactly once."""
    want_sums = expected_sums(items)
    want_wins = expected_wins(items)
    got_sums: dict[str, Any] = {}
    got_wins: dict[tuple[str, int], Any] = {}
    for _ in range(100):
        got_sums = {v["k"]: v for v in latest(await read_all(broker.url, names["sums"])).values()}
        got_wins = {
            (v["k"], v["window_start"]): {k: v[k] for k in ("k", "window_start", "n", "total")}
            for v in latest(await read_all(broker.url, names["wins"])).values()
        }
        if got_sums == want_sums and got_wins == want_wins:
            break
        await asyncio.sleep(0.3)
    assert got_sums == want_sums
    assert got_wins == want_wins


async def test_two_workers_share_the_groups(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names, env = setup(tmp_path, broker)
    workers += [Worker(tmp_path / n, env).start() for n in ("a", "b")]
    await split(workers)
    items = events(0, 4_000)
    await produce(broker.url, names["events"], encoded(items))
    await all_read(workers, len(items))

    stats = [queries(w) for w in workers]
    for q in QUERIES:
        # Both workers aggregate (work shared) and each read only its own partitions' records.
        assert all(s[q]["records_in"] > 0 for s in stats), [s[q] for s in stats]
        assert sum(s[q]["records_in"] for s in stats) == len(items)
        assert all(s[q]["dead_letters"] == 0 for s in stats)
        assert sum(s[f"{q}-repartition"]["records_in"] for s in stats) == len(items)

    # EMIT CHANGES: one output per input in total — no worker repeats another's rows.
    for q in QUERIES:
        out = await sink(broker, names[q], len(items))
        assert len(out) == len(items), q
    sums_out = [codec.loads(r.value) for r in await read_all(broker.url, names["sums"])]
    per_key: dict[str, list[int]] = {}
    for v in sums_out:
        per_key.setdefault(v["k"], []).append(v["n"])
    # Each group's rows come from one task, in order: counts 1, 2, 3, ... with no gap or repeat.
    assert all(ns == list(range(1, len(ns) + 1)) for ns in per_key.values())
    await check_final(broker, names, items)


async def test_survivor_takes_over_a_killed_workers_partitions(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names, env = setup(tmp_path, broker)
    workers += [Worker(tmp_path / n, env).start() for n in ("a", "b")]
    await split(workers)
    victim, survivor = workers
    items = events(0, 20_000)

    async def trickle() -> None:
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            msgs = [(f"e{i + j}".encode(), codec.dumps(e)) for j, e in enumerate(chunk)]
            await produce(broker.url, names["events"], msgs, linger_ms=5)
            await asyncio.sleep(0.05)

    producing = asyncio.create_task(trickle())

    def mid_stream() -> bool:
        q = queries(victim)
        return all(q.get(n, {}).get("records_in", 0) >= 1_000 for n in QUERIES)

    await until(mid_stream, "the victim to be mid-stream", victim)
    victim.stop(signal.SIGKILL)
    await producing

    def took_over() -> bool:
        return all(len(owned(survivor, q)) == 4 for q in QUERIES)

    await until(took_over, "the survivor to own every partition", survivor, 90)
    await all_read([survivor], 1)
    await check_final(broker, names, items)
    stats = queries(survivor)
    for q in QUERIES:
        # The victim's partitions had no local state here: replayed from their beginning.
        assert stats[q]["replays"] >= 4, stats[q]
    text = survivor.log.read_text()
    assert "replays from 0" in text


async def test_restart_resumes_from_local_state(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names, env = setup(tmp_path, broker)
    first = Worker(tmp_path / "w", env).start()
    workers.append(first)
    items = events(0, 3_000)
    await produce(broker.url, names["events"], encoded(items))
    await all_read([first], len(items))
    assert all(queries(first)[q]["replays"] == 4 for q in QUERIES)  # new: nothing stored yet
    first.stop()

    second = Worker(tmp_path / "w", env).start()
    workers.append(second)
    more = events(3_000, 500)
    await until(lambda: all(len(owned(second, q)) == 4 for q in QUERIES), "tasks", second, 90)
    await produce(broker.url, names["events"], encoded(more))
    await all_read([second], len(more))
    await check_final(broker, names, items + more)
    stats = queries(second)
    for q in QUERIES:
        # Every task resumed from its stored offset: only the new events were read.
        assert stats[q]["replays"] == 0, stats[q]
        assert stats[q]["rebuilds"] == 0, stats[q]
        assert stats[q]["records_in"] == len(more), stats[q]
    assert "resumes at offset" in second.log.read_text()
