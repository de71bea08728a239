"""Two workers of one app on Apache Kafka, one restarted: with static membership (KIP-345, the
default on Kafka) and a session timeout longer than the restart, the group does not rebalance —
the other worker keeps its partitions throughout, the restarted one gets its own back (so a
stateful query's task state in its data directory stays its own: nothing is rebuilt) — and every
event is counted exactly once in the result (at-least-once, nothing lost)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import queries, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]

KEYS = 20
PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT) WITH (topic='{events}', partitions='4');

CREATE TABLE sums WITH (topic='{sums}') AS
SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k EMIT CHANGES;
"""
#: Longer than a worker's stop and start on a loaded machine (the static member's seat is kept
#: that long); the point of the test, and the advice of README "Several workers on one host".
SESSION = "45"


def events(first: int, n: int) -> list[tuple[bytes | None, bytes | None]]:
    # Keyed by an id unrelated to the group key: both stages and both groups take part.
    return [
        (f"e{i}".encode(), codec.dumps({"k": f"k{i % KEYS}", "v": i % 7 + 1}))
        for i in range(first, first + n)
    ]


def assigned(worker: Worker) -> int:
    """Group assignments the worker's consumers received (aiokafka logs one per generation)."""
    return worker.log.read_text(errors="replace").count("Setting newly assigned partitions")


def owned(worker: Worker) -> dict[str, set[str]]:
    stats = queries(worker)
    return {q: set(stats.get(q, {}).get("partitions", {})) for q in ("sums-repartition", "sums")}


def split(workers: list[Worker]) -> bool:
    owners = [owned(w) for w in workers]
    return all(
        all(o[q] for o in owners) and sum(len(o[q]) for o in owners) == 4
        for q in ("sums-repartition", "sums")
    )


async def test_a_restarted_worker_keeps_the_groups_settled(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = {n: unique(n) for n in ("events", "sums", "dlq")}
    pipeline = tmp_path / "static.sql"
    pipeline.write_text(PIPELINE.format(**names))
    env = {**worker_env(broker.url, pipeline, names), "TABLESTREAM_SESSION_TIMEOUT": SESSION}
    a, b = Worker(tmp_path / "a", env).start(), Worker(tmp_path / "b", env).start()
    workers += [a, b]
    await until(lambda: split(workers), "both groups split between the workers", a, 120)
    before = {"a": owned(a), "b": owned(b)}
    b_assigned = assigned(b)

    sent = [e for part in range(3) for e in events(part * 1000, 1000)]
    await produce(broker.url, names["events"], sent[:1000])
    stopped = time.monotonic()
    a.stop()  # SIGTERM: a graceful stop; a static member does not leave its groups
    await produce(broker.url, names["events"], sent[1000:2000])  # a's share waits for it
    a.start()
    await until(lambda: split(workers), "the restarted worker back in both groups", a, 120)
    # The stop and start took this long (printed with -s): with the default session (10 s) a
    # restart that takes longer has the group rebalance twice (the seat expires, then a joins).
    print(f"restart: {time.monotonic() - stopped:.1f}s")
    await produce(broker.url, names["events"], sent[2000:])

    def caught_up() -> bool:
        stats = [queries(w) for w in workers]
        return all(
            s.get(q, {}).get("lag") == 0 for s in stats for q in ("sums-repartition", "sums")
        )

    await until(caught_up, "both stages caught up", a, 120)

    assert {"a": owned(a), "b": owned(b)} == before
    assert assigned(b) == b_assigned, "the other worker saw a rebalance:\n" + b.tail()

    want: dict[str, dict[str, Any]] = {}
    for _, value in sent:
        assert value is not None
        e = codec.loads(value)
        t = want.setdefault(e["k"], {"k": e["k"], "n": 0, "total": 0})
        t["n"] += 1
        t["total"] += e["v"]
    got: dict[str, Any] = {}
    for _ in range(100):
        latest = [codec.loads(r.value) for r in await read_all(broker.url, names["sums"])]
        got = {v["k"]: v for v in latest}  # in offset order: the newest row of each key wins
        if got == want:
            break
        await asyncio.sleep(0.3)
    assert got == want
