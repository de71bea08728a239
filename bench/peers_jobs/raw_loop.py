"""The floor: a raw aiokafka getmany + orjson loop doing the job by hand (PEERS_JOB)."""

from __future__ import annotations

import asyncio

import common
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def main() -> None:
    users = common.load_users()
    gold = {uid: row["name"] for uid, row in users.items() if row["tier"] == "gold"}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=common.BROKER,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=common.BROKER, linger_ms=5, max_batch_size=1024 * 1024
    )
    await consumer.start()
    await producer.start()
    # The producer waits for the topic's metadata (Apache Kafka's first metadata answer lists
    # no topic the client has not asked for yet; Tansu's lists them all).
    parts = await producer.partitions_for(common.ORDERS)
    tps = [TopicPartition(common.ORDERS, p) for p in parts]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    loads, dumps, send = orjson.loads, orjson.dumps, producer.send
    windows: dict[tuple[int, int], list[float]] = {}
    # Event time per partition: the watermark is the slowest partition's newest record.
    newest = {tp.partition: 0 for tp in tps}
    enrich = common.JOB == "enrich"
    started = False
    closed_below = 0  # windows starting before this were emitted
    while True:
        batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
        if not batch:
            continue
        if not started:
            common.mark_started()
            started = True
        pending = []
        for tp, msgs in batch.items():
            for m in msgs:
                o = loads(m.value)
                uid = o["user_id"]
                if enrich:
                    name = gold.get(uid)
                    if name is not None and o["amount"] > 500:
                        out = {
                            "order_id": o["order_id"],
                            "user_id": uid,
                            "name": name,
                            "amount": o["amount"],
                        }
                        pending.append(await send(common.SINK, dumps(out), key=m.key))
                    continue
                ts = o["ts"]
                start = ts - ts % common.WINDOW_MS
                acc = windows.get((uid, start))
                if acc is None:
                    windows[(uid, start)] = [1, o["amount"]]
                else:
                    acc[0] += 1
                    acc[1] += o["amount"]
            if msgs and not enrich:
                newest[tp.partition] = max(newest[tp.partition], loads(msgs[-1].value)["ts"])
        if not enrich:
            watermark = min(newest.values())
            bound = watermark - watermark % common.WINDOW_MS  # closed: start + size <= watermark
            closed = [k for k in windows if k[1] < bound] if bound > closed_below else []
            closed_below = max(closed_below, bound)
            for k in closed:
                n, total = windows.pop(k)
                out = {"user_id": k[0], "window_start": k[1], "n": n, "total": round(total, 2)}
                pending.append(await send(common.SINK, dumps(out), key=str(k[0]).encode()))
        if pending:
            await asyncio.gather(*pending)


if __name__ == "__main__":
    asyncio.run(main())
