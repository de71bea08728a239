"""What every peer job shares (runs in the peers' virtualenv: no tablestream imports).

Settings come from the environment the bench sets: PEERS_BROKER, PEERS_ORDERS, PEERS_USERS
(topics), PEERS_SINK, PEERS_MARKER (a file written at the first order: wall clock and process
CPU, where the bench starts its clock), PEERS_JOB (enrich|window), PEERS_GROUP.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

BROKER = os.environ.get("PEERS_BROKER", "127.0.0.1:9092")
ORDERS = os.environ.get("PEERS_ORDERS", "peers-orders")
USERS = os.environ.get("PEERS_USERS", "peers-users")
SINK = os.environ.get("PEERS_SINK", "peers-out")
JOB = os.environ.get("PEERS_JOB", "enrich")
GROUP = os.environ.get("PEERS_GROUP", f"peers-{os.getpid()}")
WINDOW_MS = 10_000
_marker = os.environ.get("PEERS_MARKER")


def mark_started() -> None:
    """Called on the first order: the bench measures from here (startup excluded)."""
    global _marker
    if _marker is not None:
        path, _marker = _marker, None
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"wall": time.time(), "cpu": time.process_time()}, f)
        os.replace(tmp, path)


def load_users() -> dict[int, dict[str, Any]]:
    """The users topic read to its end into a dict (the peers' in-memory lookup table)."""
    import orjson
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": BROKER,
            "group.id": f"{GROUP}-users",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    meta = consumer.list_topics(USERS, timeout=30).topics[USERS]
    parts = list(meta.partitions)
    consumer.assign([TopicPartition(USERS, p, OFFSET_BEGINNING) for p in parts])
    users: dict[int, dict[str, Any]] = {}
    done: set[int] = set()
    while len(done) < len(parts):
        for m in consumer.consume(10_000, 1.0):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    done.add(m.partition())
                    continue
                raise RuntimeError(str(m.error()))
            if m.value() is None:
                continue
            row = orjson.loads(m.value())
            users[row["id"]] = row
    consumer.close()
    return users
