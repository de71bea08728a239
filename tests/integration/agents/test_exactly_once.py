"""Exactly-once on Apache Kafka: a worker SIGKILLed again and again while a pipeline with a
stream-table join, an IN subquery and a windowed GROUP BY runs; the sinks, read with
read_committed, hold every expected output exactly once and every aggregate is right."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import queries, until
from tests.support.brokers import EXTERNAL
from tests.support.eos import read_committed
from tests.support.kafka import produce, rows, unique
from tests.support.worker import Worker

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.kafka_only,
]


@pytest.fixture(scope="module")
def kafka(broker: Broker) -> tuple[str, str]:
    """(bootstrap URL, session timeout) of the session's Apache Kafka, which lets consumer groups
    use 2 s sessions (tests/conftest.py): a SIGKILLed worker's group member is dropped in 2 s,
    not 6, ten times over. On a given cluster (TABLESTREAM_BROKER): 6 s."""
    return (EXTERNAL, "6") if EXTERNAL else (broker.url, "2")


#: Input orders; the kills land while they are produced and processed. (The issue asks for 300k;
#: 50k keep the test near 90 s on 2 shared cores, most of it ten worker starts. The whole run:
#: ``TABLESTREAM_TEST_EOS_ORDERS=300000``.)
ORDERS = int(os.environ.get("TABLESTREAM_TEST_EOS_ORDERS", "50000"))
KILLS = 10
PARTITIONS = 4
USERS = {i: ("gold" if i % 3 else "basic") for i in range(1, 41)}
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA"]
BASE = 1_700_000_000_000
WINDOW = 10_000

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR) WITH (topic='{users}');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      qty BIGINT, ts BIGINT)
  WITH (topic='{orders}', timestamp='ts', out_of_orderness='3600s', partitions='{partitions}');

CREATE STREAM checked WITH (topic='{checked}', partitions='{partitions}') AS
SELECT o.order_id, u.name, o.price * o.qty AS notional
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
EMIT CHANGES;

CREATE TABLE volume WITH (topic='{volume}', partitions='{partitions}') AS
SELECT symbol, window_start, COUNT(*) AS n, SUM(qty) AS qty
FROM orders WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY symbol EMIT CHANGES;
"""


def make_orders(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [
        {
            "order_id": i,
            "user_id": rng.choice(list(USERS)),
            "symbol": rng.choice(SYMBOLS),
            "price": Decimal(rng.randrange(100, 20_000)) / 100,
            "qty": rng.randrange(1, 9),
            "ts": BASE + i * 2,
        }
        for i in range(n)
    ]


def processing(worker: Worker, stages: tuple[str, ...]) -> bool:
    q = queries(worker)
    return all(q.get(n, {}).get("records_in", 0) > 0 for n in stages)


async def until_processing(worker: Worker, stages: tuple[str, ...]) -> None:
    """Until ``worker`` read records in each of ``stages``; if not, the queries' state, records
    and lag in the error (lag 0: nothing left to read; lag > 0: stuck)."""
    try:
        await until(partial(processing, worker, stages), "the queries to process", worker, 60)
    except AssertionError as exc:
        seen = {n: (q["state"], q["records_in"], q["lag"]) for n, q in queries(worker).items()}
        raise AssertionError(f"{exc}\n(state, records_in, lag) per query: {seen}") from exc


async def prepare(kafka: tuple[str, str], tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Topics, the users table and the pipeline file; the workers' environment."""
    kafka_url, session_timeout = kafka
    names = {n: unique(n) for n in ("users", "orders", "checked", "volume", "dlq")}
    await ensure_topics(
        kafka_url,
        [
            TopicSpec(names["users"], 1, configs={"cleanup.policy": "compact"}),
            TopicSpec(names["orders"], PARTITIONS),
        ],
    )
    await produce(
        kafka_url,
        names["users"],
        rows((str(i), {"id": i, "name": f"u{i}", "tier": t}) for i, t in USERS.items()),
    )
    pipeline = tmp_path / "pipeline.sql"
    pipeline.write_text(PIPELINE.format(partitions=PARTITIONS, **names))
    env = {
        "TABLESTREAM_BROKER": kafka_url,
        "TABLESTREAM_APP_ID": unique("eos"),
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_DLQ_TOPIC": names["dlq"],
        "TABLESTREAM_DEFAULT_PARTITIONS": str(PARTITIONS),
        "TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once",
        "TABLESTREAM_SESSION_TIMEOUT": session_timeout,
        "TABLESTREAM_QUERY_MAX_RECORDS": "2000",
    }
    return names, env


async def check_sinks(
    kafka_url: str, names: dict[str, str], orders: list[dict[str, Any]], last: Worker
) -> None:
    """Once ``last`` caught up: each expected output once in the sinks (read_committed)."""
    gold = {i for i, t in USERS.items() if t == "gold"}
    expected = {o["order_id"]: o for o in orders if o["user_id"] in gold}
    windows: dict[tuple[str, int], list[int]] = {}
    for o in orders:
        w = windows.setdefault((o["symbol"], o["ts"] - o["ts"] % WINDOW), [0, 0])
        w[0] += 1
        w[1] += o["qty"]

    def done() -> bool:  # ``last`` read orders of its own: its lag is not the previous one's
        q = queries(last)
        stages = ("checked", "volume-repartition", "volume")
        return all(
            q.get(n, {}).get("lag") == 0
            and q[n]["records_in"] > 0
            and len(q[n]["partitions"]) == PARTITIONS
            for n in stages
        )

    await until(done, "every query to catch up", last, timeout=120)
    # Stage 2 may still be reading what stage 1 committed last: read until the sinks hold as
    # many rows as the inputs call for (a duplicate would show as one more).
    deadline = time.monotonic() + 30
    while True:
        checked = [
            codec.loads_exact(r.value) for r in await read_committed(kafka_url, names["checked"])
        ]
        volume = [
            codec.loads_exact(r.value) for r in await read_committed(kafka_url, names["volume"])
        ]
        if (
            len(checked) >= len(expected) and len(volume) >= len(orders)
        ) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)

    # The join and the IN subquery: each gold order once, none twice, none missing.
    ids = Counter(v["order_id"] for v in checked)
    duplicates = {i: n for i, n in ids.items() if n > 1}
    missing = set(expected) - set(ids)
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {sorted(duplicates)[:5]}"
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
    assert set(ids) == set(expected)
    for v in checked:
        o = expected[v["order_id"]]
        assert (v["name"], v["notional"]) == (f"u{o['user_id']}", o["price"] * o["qty"])

    # The windowed aggregate (EMIT CHANGES): each window's running count 1..n once each (one
    # row per order, none twice, none missing) and its final row the recomputed totals.
    seen: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for v in volume:
        seen.setdefault((v["symbol"], v["window_start"]), []).append(v)
    assert set(seen) == set(windows)
    for key, (n, qty) in windows.items():
        counts = sorted(r["n"] for r in seen[key])
        twice = sorted(c for c, k in Counter(counts).items() if k > 1)
        lost = sorted(set(range(1, n + 1)) - set(counts))
        assert counts == list(range(1, n + 1)), (
            f"window {key}: counts not 1..{n} once each: {len(counts)} rows, twice {twice[:10]},"
            f" missing {lost[:10]}, max {counts[-1]}"
        )
        final = max(seen[key], key=lambda r: r["n"])
        assert final["qty"] == qty, f"window {key}: qty {final['qty']} != {qty}"
    stats = queries(last)
    assert stats["volume"]["rebuilds"] == 0
    assert "aborted" not in last.tail(400)


async def test_sigkill_ten_times_exactly_once(
    kafka: tuple[str, str], tmp_path: Path, workers: list[Worker]
) -> None:
    kafka_url = kafka[0]
    names, env = await prepare(kafka, tmp_path)
    orders = make_orders(ORDERS)
    # A share of the orders for each incarnation, produced while it starts and runs: a
    # restarted worker always has records of its own to read (once every order was read and
    # committed by the ones before, it would have none: "processing" would never come).
    share = -(-ORDERS // (KILLS + 1))
    shares = [orders[i : i + share] for i in range(0, ORDERS, share)]

    async def trickle(part: list[dict[str, Any]]) -> None:
        chunk = max(1, len(part) // 8)
        for i in range(0, len(part), chunk):
            records = [(None, codec.dumps(o)) for o in part[i : i + chunk]]
            await produce(kafka_url, names["orders"], records)
            await asyncio.sleep(0.1)

    rng = random.Random(3)
    started = time.monotonic()
    restarts: list[float] = []
    for i in range(KILLS):
        producing = asyncio.create_task(trickle(shares[i]))
        worker = Worker(tmp_path / "w", env).start()
        workers.append(worker)
        t0 = time.monotonic()
        # Every other kill once both queries (and stage 2) wrote something, the others while
        # the worker may still be starting: opening tasks, replaying state, fencing producers.
        stages = ("checked", "volume") if i % 2 else ("checked",)
        await until_processing(worker, stages)
        restarts.append(time.monotonic() - t0)
        await asyncio.sleep(rng.uniform(0.0, 0.8))
        worker.stop(signal.SIGKILL)
        await producing
    last = Worker(tmp_path / "w", env).start()
    workers.append(last)
    await asyncio.gather(*(trickle(part) for part in shares[KILLS:]))

    await check_sinks(kafka_url, names, orders, last)
    print(
        f"{KILLS} kills, {ORDERS} orders in {time.monotonic() - started:.0f}s; start to"
        f" processing {min(restarts):.1f}-{max(restarts):.1f}s"
    )


async def test_a_worker_killed_its_partitions_move_exactly_once(
    kafka: tuple[str, str], tmp_path: Path, workers: list[Worker]
) -> None:
    """Two workers share the tasks; one is SIGKILLed mid-stream: the other takes its partitions
    over — its producers fence the dead worker's and abort their open transactions."""
    kafka_url = kafka[0]
    names, env = await prepare(kafka, tmp_path)
    orders = make_orders(ORDERS)
    first = Worker(tmp_path / "a", env).start()
    second = Worker(tmp_path / "b", env).start()
    workers.extend([first, second])
    # Keyed: spread over every partition (unkeyed small batches may all land in one).
    keyed = [(str(o["order_id"]).encode(), codec.dumps(o)) for o in orders]
    killed = asyncio.Event()
    sent = 0

    async def trickle() -> None:
        """~1000 orders/s until the kill, 2000 after it: the worker that joins last still finds
        records to read (a fixed count may all be read by the first before it joins)."""
        nonlocal sent
        until_sent = len(keyed)
        while sent < until_sent:
            if killed.is_set():
                until_sent = min(until_sent, sent + 2000)
            await produce(kafka_url, names["orders"], keyed[sent : sent + 200])
            sent += 200
            await asyncio.sleep(0.2)

    producing = asyncio.create_task(trickle())
    # Each worker has source partitions of both queries (stage 2's may all be one's).
    both = partial(processing, stages=("checked", "volume-repartition"))
    await until(lambda: both(first) and both(second), "both workers to process", first, 90)
    first.stop(signal.SIGKILL)
    killed.set()
    await producing
    await check_sinks(kafka_url, names, orders[:sent], second)
