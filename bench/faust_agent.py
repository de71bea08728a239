"""The baseline of ``bench/pipeline.py``: a bare faust per-event agent (decode each JSON value,
count it), run as ``faust -A bench.faust_agent worker``. Configured by the bench through
``BENCH_*`` variables; prints one JSON line with its figures once it has seen every event, to
the file ``BENCH_RESULT``, then keeps running until the bench stops it.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import faust
import orjson

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
TOPIC = os.environ.get("BENCH_TOPIC", "orders")
EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))
RESULT = Path(os.environ.get("BENCH_RESULT", "faust-agent.json"))

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-faust"),
    broker=f"kafka://{BROKER}",
    value_serializer="raw",
    key_serializer="raw",
    store="memory://",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "1")),
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6070")),
    web_bind="127.0.0.1",
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    datadir=os.environ.get("BENCH_DATADIR", "bench-faust-data"),
    autodiscover=False,
)
source = app.topic(TOPIC, value_type=bytes, key_type=bytes)
state: dict[str, Any] = {"n": 0, "first": None}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@app.agent(source)
async def count(stream: Any) -> None:
    async for value in stream:
        orjson.loads(value)
        if state["first"] is None:
            state["first"], state["cpu"] = time.perf_counter(), cpu_seconds()
        state["n"] += 1
        if state["n"] == EXPECT:
            elapsed = time.perf_counter() - state["first"]
            cpu = cpu_seconds() - state["cpu"]
            figures = {"events": EXPECT, "seconds": elapsed, "cpu": cpu}
            RESULT.write_text(json.dumps(figures))  # noqa: ASYNC240 - once, after the measurement
