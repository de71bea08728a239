"""Bytewax, tuned as its docs suggest: Kafka batches of 10k, orjson, batch operators.

python -m bytewax.run bytewax_job:flow   (PEERS_* settings: see common.py)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bytewax.operators as op
import bytewax.operators.windowing as win
import common
import orjson
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow

USERS = common.load_users()
GOLD = {uid: row["name"] for uid, row in USERS.items() if row["tier"] == "gold"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

flow = Dataflow(f"peers-{common.JOB}")
# tail=False: the flow ends at the topic's end (windows still open are emitted then).
msgs = op.input(
    "orders",
    flow,
    KafkaSource([common.BROKER], [common.ORDERS], tail=False, batch_size=10_000),
)


def enrich(batch: list) -> list:
    common.mark_started()
    loads, dumps, gold = orjson.loads, orjson.dumps, GOLD
    out = []
    for m in batch:
        o = loads(m.value)
        name = gold.get(o["user_id"])
        if name is not None and o["amount"] > 500:
            row = {
                "order_id": o["order_id"],
                "user_id": o["user_id"],
                "name": name,
                "amount": o["amount"],
            }
            out.append(KafkaSinkMessage(m.key, dumps(row)))
    return out


def decode(batch: list) -> list:
    common.mark_started()
    loads = orjson.loads
    return [loads(m.value) for m in batch]


def folder(acc: list, o: dict) -> list:
    if acc[0] is None:
        ts = o["ts"]
        acc[0] = ts - ts % common.WINDOW_MS
    acc[1] += 1
    acc[2] += o["amount"]
    return acc


def merger(a: list, b: list) -> list:
    return [a[0] if a[0] is not None else b[0], a[1] + b[1], a[2] + b[2]]


def emit(item: tuple) -> KafkaSinkMessage:
    key, (_window_id, acc) = item
    row = {"user_id": int(key), "window_start": acc[0], "n": acc[1], "total": round(acc[2], 2)}
    return KafkaSinkMessage(key.encode(), orjson.dumps(row))


if common.JOB == "enrich":
    out = op.flat_map_batch("enrich", msgs, enrich)
else:
    orders = op.flat_map_batch("decode", msgs, decode)
    keyed = op.key_on("by_user", orders, lambda o: str(o["user_id"]))
    clock = win.EventClock(
        lambda o: datetime.fromtimestamp(o["ts"] / 1000, tz=UTC),
        # Old event times + a system-time watermark: wait long, close at the input's end.
        wait_for_system_duration=timedelta(hours=1),
    )
    windower = win.TumblingWindower(length=timedelta(milliseconds=common.WINDOW_MS), align_to=EPOCH)
    folded = win.fold_window(
        "tumble", keyed, clock, windower, lambda: [None, 0, 0.0], folder, merger
    )
    out = op.map("emit", folded.down, emit)
op.output("sink", out, KafkaSink([common.BROKER], common.SINK))
