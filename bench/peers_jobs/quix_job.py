"""Quix Streams, as its docs write a job: a StreamingDataFrame, JSON serdes, group_by + window.

python quix_job.py   (PEERS_* settings: see common.py)
"""

from __future__ import annotations

import os

import common
from quixstreams import Application

USERS = common.load_users()
GOLD = {uid: row["name"] for uid, row in USERS.items() if row["tier"] == "gold"}

app = Application(
    broker_address=common.BROKER,
    consumer_group=common.GROUP,
    auto_offset_reset="earliest",
    state_dir=os.environ.get("PEERS_STATE_DIR", "/tmp/peers-quix-state"),
    use_changelog_topics=False,
    auto_create_topics=True,
)


def ts_of(value, headers, timestamp, timestamp_type) -> int:
    return int(value["ts"])


orders = app.topic(common.ORDERS, value_deserializer="json", timestamp_extractor=ts_of)
# Orders keep their bytes key; windows are keyed by the (int) user id group_by set.
key_serializer = "bytes" if common.JOB == "enrich" else "json"
sink = app.topic(common.SINK, key_serializer=key_serializer, value_serializer="json")
sdf = app.dataframe(orders)


def started(o: dict) -> dict:
    common.mark_started()
    return o


sdf = sdf.apply(started)
if common.JOB == "enrich":
    sdf = sdf.filter(lambda o: o["user_id"] in GOLD and o["amount"] > 500)
    sdf = sdf.apply(
        lambda o: {
            "order_id": o["order_id"],
            "user_id": o["user_id"],
            "name": GOLD[o["user_id"]],
            "amount": o["amount"],
        }
    )
else:
    sdf = sdf.group_by("user_id")
    # The two source partitions interleave in event time through the repartition topic: a grace
    # longer than the data's span keeps every order; the sentinels (10 min later) close windows.
    sdf = (
        sdf.tumbling_window(duration_ms=common.WINDOW_MS, grace_ms=300_000)
        .reduce(
            reducer=lambda acc, o: {
                "user_id": acc["user_id"],
                "n": acc["n"] + 1,
                "total": acc["total"] + o["amount"],
            },
            initializer=lambda o: {"user_id": o["user_id"], "n": 1, "total": o["amount"]},
        )
        .final()
    )
    sdf = sdf.apply(
        lambda w: {
            "user_id": w["value"]["user_id"],
            "window_start": w["start"],
            "n": w["value"]["n"],
            "total": round(w["value"]["total"], 2),
        }
    )
sdf.to_topic(sink)

if __name__ == "__main__":
    app.run()
