"""How long records take to flow again after a worker is SIGKILLed and started again.

A worker runs a stateless query and a repartitioned aggregate over a stream fed continuously
(200 records/s in lingering batches). It is SIGKILLed ``--kills`` times and started again at
once; each time the figure is the seconds from the new process's start to the first output it
writes on each sink (outputs are stamped with the worker's clock). The phases come from the
worker's log: process start → first log line (imports, faust's boot) → tables ready → each query
running → its JoinGroup sent → answered → SyncGroup answered (partitions assigned) → tasks opened.

    .venv/bin/python -m bench.restart [--kills 3] [--kind tansu|kafka | --broker HOST:PORT]
                                      [--membership auto|true|false] [--session-timeout 10]

Without ``--broker`` it starts a broker of ``--kind`` (Tansu by default; Apache Kafka needs Java).
``--membership`` is the worker's ``TABLESTREAM_STATIC_MEMBERSHIP`` (``auto``: dynamic on Tansu,
static on Apache Kafka; see agents/membership.py). The load average is printed with the figures:
on a shared machine the boot (imports) grows with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.broker import make_broker
from core import codec
from tables.topics import TopicSpec, ensure_topics, topic_partitions
from tests.support.kafka import unique
from tests.support.worker import Worker

PIPELINE = """\
CREATE STREAM events (k VARCHAR, v BIGINT) WITH (topic='{events}', partitions='3');
CREATE STREAM big WITH (topic='{big}', partitions='3') AS
SELECT k, v FROM events WHERE v > 50 EMIT CHANGES;
CREATE TABLE sums WITH (topic='{sums}', partitions='3') AS
SELECT k, COUNT(*) AS n, SUM(v) AS s FROM events GROUP BY k EMIT CHANGES;
"""
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


async def feed(servers: str, topic: str, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=50)
    await producer.start()
    try:
        i = 0
        while not stop.is_set():
            for _ in range(20):
                value = codec.dumps({"k": f"k{i % 50}", "v": i % 100})
                await producer.send(topic, value=value, key=f"k{i % 50}".encode())
                i += 1
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


async def first_output_after(servers: str, topic: str, since_ms: int, timeout: float) -> float:
    """Seconds from ``since_ms`` to the first record of ``topic`` stamped at or after it."""
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        # The worker creates its sinks: wait until this one exists.
        while not (parts := await topic_partitions(consumer, topic)):
            if time.monotonic() > deadline:
                return float("inf")
            await asyncio.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        # From the beginning (offsets_for_times answers wrongly on Tansu): the topics are small.
        await consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            stamps = [r.timestamp for msgs in batch.values() for r in msgs]
            fresh = [t for t in stamps if t >= since_ms]
            if fresh:
                return float(min(fresh) - since_ms) / 1000
        return float("inf")
    finally:
        await consumer.stop()


def phases(log: Path, since: float) -> dict[str, float]:
    """Seconds from ``since`` (epoch) to the first log line of each phase."""
    marks = {
        "first log line": "",
        "tables ready": "ready:",
        "query running": r": running \(",
        "join sent": r"\(Re-\)joining group .*-(sums|big)",
        "joined": r"Joined group '.*-(sums|big)",
        "partitions assigned": ": assigned ",
        "tasks opened": "replays from|resumes at",
    }
    out: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = _LOG_TIME.match(line)
        if m is None:
            continue
        at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at < since:
            continue
        for name, pattern in marks.items():
            if name not in out and re.search(pattern, line):
                out[name] = at - since
    return out


@contextlib.contextmanager
def broker_url(given: str | None, kind: str) -> Iterator[str]:
    if given:
        yield given
        return
    b = make_broker(kind)
    try:
        yield b.start().url
    finally:
        b.close()


async def main(
    kills: int,
    given: str | None,
    kind: str,
    keep_log: Path | None,
    membership: str,
    session_timeout: float,
) -> None:
    with broker_url(given, kind) as servers, tempfile.TemporaryDirectory() as tmp:
        names = {n: unique(n) for n in ("events", "big", "sums", "dlq")}
        await ensure_topics(servers, [TopicSpec(names["events"], 3)])
        path = Path(tmp) / "pipeline.sql"
        path.write_text(PIPELINE.format(**names))
        env = {
            "TABLESTREAM_BROKER": servers,
            "TABLESTREAM_APP_ID": unique("restart"),
            "TABLESTREAM_PIPELINE": str(path),
            "TABLESTREAM_DLQ_TOPIC": names["dlq"],
            "TABLESTREAM_SESSION_TIMEOUT": str(session_timeout),
            "TABLESTREAM_STATIC_MEMBERSHIP": membership,
        }
        worker = Worker(Path(tmp) / "w", env)
        stop = asyncio.Event()
        feeding = asyncio.ensure_future(feed(servers, names["events"], stop))
        try:
            started = time.time()
            worker.start()
            first = await first_output_after(servers, names["sums"], int(started * 1000), 120)
            print(f"first start: outputs after {first:.1f} s")
            figures: dict[str, list[float]] = {"big": [], "sums": []}
            for _ in range(kills):
                await asyncio.sleep(3)
                worker.stop(signal.SIGKILL)
                started = time.time()
                worker.start()
                for sink in figures:
                    delay = await first_output_after(servers, names[sink], int(started * 1000), 60)
                    figures[sink].append(delay)
                got = phases(worker.log, started)
                print(
                    "restart: "
                    + ", ".join(f"{s} flows after {v[-1]:.1f} s" for s, v in figures.items())
                    + " | "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in got.items())
                )
            print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            for sink, values in figures.items():
                print(
                    f"{sink}: median {statistics.median(values):.1f} s, max {max(values):.1f} s"
                    f" over {len(values)} restarts (from process start)"
                )
        finally:
            stop.set()
            await feeding
            worker.stop()
            if keep_log is not None:
                await asyncio.to_thread(shutil.copyfile, worker.log, keep_log)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--broker", default=None, help="an existing broker (else one started)")
    parser.add_argument("--kind", default="tansu", choices=["tansu", "kafka"], help="to start")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the worker log here")
    parser.add_argument(
        "--membership",
        default="auto",
        choices=["auto", "true", "false"],
        help="TABLESTREAM_STATIC_MEMBERSHIP of the worker (true: static, false: dynamic)",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="TABLESTREAM_SESSION_TIMEOUT of the worker (Tansu holds a join for half of it)",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.kills,
            args.broker,
            args.kind,
            args.keep_log,
            args.membership,
            args.session_timeout,
        )
    )
