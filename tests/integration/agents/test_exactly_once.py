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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.config import AgentConfig
from agents.pipeline import load_pipeline
from agents.pipeline_model import repartition_topic
from agents.repartition import H_ORIGIN, RepartitionAgent, pack_origin
from agents.stateful import StatefulAgent, _Tasks
from agents.transactional import mark_in_transactions, stateful_step
from agents.watermarks import Mark, mark_of
from app.broker import Broker
from core import codec
from core.fetch import getmany_raw
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import queries, until
from tests.support.brokers import EXTERNAL
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


async def test_a_batch_fetched_while_partitions_are_fenced_is_emitted_once(
    kafka: tuple[str, str], tmp_path: Path
) -> None:
    """Stage 2 keeps a task across a rebalance that brings it a new partition. While the new
    partition's producer fences its previous owner (InitProducerId: round trips with the lock
    held), the loop fetches the kept partition from its committed offset and waits for the lock
    with that batch. The batch must run after the tasks are sought, or not at all: run in
    between (the assignment hook used to let go of the lock before the tasks were sought), it
    moved the kept task past the committed offset in an open transaction, the assignment took
    the task for one ahead of what was committed, reset it and replayed it quietly only up to
    the committed offset — and its outputs were committed twice (the SIGKILL test's duplicate
    rows). Real broker, real transactions, real RocksDB; the hook called as aiokafka calls it."""
    kafka_url = kafka[0]
    app_id, names, pipeline, query, repartition = takeover_query(tmp_path, "takeover")
    await ensure_topics(
        kafka_url,
        [
            TopicSpec(repartition, 2),
            TopicSpec(names["volume"], 1),
            TopicSpec(names["dlq"], 1),
        ],
    )
    config = AgentConfig(
        bootstrap_servers=kafka_url,
        app_id=app_id,
        dead_letter_topic=names["dlq"],
        data_dir=tmp_path / "data",
        exactly_once=True,
        watermark_per_source=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url)
    await producer.start()
    agent = StatefulAgent(query, pipeline, {}, producer, config, _no_tables)
    consumer = agent._consumer = agent._new_consumer()
    txns = agent.txns = agent._transactions()
    hook = _Tasks(agent)
    kept, new = TopicPartition(repartition, 0), TopicPartition(repartition, 1)

    async def stage1(first: int, n: int) -> None:
        """``n`` repartition records of partition 0, as stage 1 writes them (origin header)."""
        records = [
            (i, codec.dumps({"order_id": i, "symbol": SYMBOLS[i % 2], "qty": 1}))
            for i in range(first, first + n)
        ]
        for i, value in records:
            await producer.send(
                repartition, value, partition=0, headers=[(H_ORIGIN, pack_origin(0, i))]
            )
        await producer.flush()

    async def run_until(position: int) -> None:
        """The loop's steps until the kept task applied everything below ``position``."""
        deadline = time.monotonic() + 30
        while agent.tasks[0].position < position:
            assert time.monotonic() < deadline, f"stuck at {agent.tasks[0].position}"
            fetched = await getmany_raw(consumer, 200, 1000)
            await stateful_step(agent, txns, consumer, fetched)
        async with agent._lock:
            assert not await txns.commit(everything=True)

    await consumer.start()
    try:
        # Generation 1: this worker owns partition 0 and commits 40 records' outputs.
        consumer.assign([kept])
        await hook.on_partitions_assigned({kept})
        await stage1(0, 40)
        await run_until(40)
        # 20 more, then generation 2: partition 0 kept, partition 1 new. The fetch reads the
        # kept partition from its committed offset (40; aiokafka's own OffsetFetch may answer
        # it a moment late, the seek stands for it) before the hook runs.
        await stage1(40, 20)
        consumer.assign([kept, new])
        consumer.seek(kept, 40)
        fetched: dict[TopicPartition, Any] = {}
        deadline = time.monotonic() + 30
        while not fetched.get(kept):
            assert time.monotonic() < deadline, "the kept partition's records never came"
            fetched = await getmany_raw(consumer, 200, 1000)
        assert fetched[kept][0].offset == 40
        assigning = asyncio.create_task(hook.on_partitions_assigned({kept, new}))
        await asyncio.sleep(0)  # the hook holds the lock, fencing partition 1's producer
        assert agent._lock.locked()
        step = asyncio.create_task(stateful_step(agent, txns, consumer, fetched))
        await asyncio.gather(assigning, step)
        await run_until(60)
    finally:
        async with agent._lock:
            await txns.close()
        await consumer.stop()
        for task in agent.tasks.values():
            task.close()
        agent.builder.close()
        await producer.stop()

    rows = [codec.loads_exact(r.value) for r in await read_committed(kafka_url, names["volume"])]
    counts = {s: sorted(r["n"] for r in rows if r["symbol"] == s) for s in SYMBOLS[:2]}
    assert counts == {s: list(range(1, 31)) for s in SYMBOLS[:2]}, (
        f"{len(rows)} rows for 60 records: counts {counts}"
    )


async def test_watermark_markers_skip_a_partition_a_rebalance_took(
    kafka: tuple[str, str], tmp_path: Path
) -> None:
    """Stage 1 writes each source partition's watermark markers into that partition's
    transaction. Which partitions it owns is read before it takes the transactions' lock; a
    rebalance may change the assignment meanwhile (its revocation hook done, its assignment
    hook — which stops the moved partitions' producers — waiting for the lock): a partition no
    longer assigned is skipped (its position raised IllegalStateError, which stopped the worker
    in a two-worker run), the others are marked and committed."""
    kafka_url = kafka[0]
    app_id, names, pipeline, query, repartition = takeover_query(tmp_path, "marks")
    await ensure_topics(
        kafka_url,
        [TopicSpec(names["orders"], 2), TopicSpec(repartition, 2), TopicSpec(names["dlq"], 1)],
    )
    config = AgentConfig(
        bootstrap_servers=kafka_url,
        app_id=app_id,
        dead_letter_topic=names["dlq"],
        data_dir=tmp_path / "data",
        exactly_once=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url)
    await producer.start()
    agent = RepartitionAgent(query, pipeline, {}, producer, config, _no_tables)
    agent.output.set_partitions(repartition, [0, 1])
    txns = agent._transactions()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_url,
        group_id=f"{app_id}-{query.name}",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    tps = [TopicPartition(names["orders"], p) for p in (0, 1)]
    await consumer.start()
    try:
        consumer.assign(tps)
        await txns.start(tps)
        owned = dict(enumerate(tps))
        consumer.assign(tps[:1])  # the rebalance took partition 1; its hook has not run yet
        marks = [Mark(p, 2, BASE, False) for p in (0, 1)]
        await mark_in_transactions(agent, txns, consumer, owned, marks)
        assert not await txns.commit(everything=True)
    finally:
        await txns.close()
        await consumer.stop()
        await producer.stop()
    written = [mark_of(r.headers) for r in await read_committed(kafka_url, repartition)]
    # Partition 0's marker on each repartition partition; none of partition 1.
    assert written == [marks[0], marks[0]]


async def _no_tables(names: Any) -> None:
    """The agent's wait for its tables: the query reads none."""
