"""The broker a benchmark runs on: ``--broker tansu|kafka``, one helper for every bench.

Apache Kafka runs with its full JIT (the tests' quicker-starting C1-only JVM would understate
it) and is stopped with the benchmark, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from app.broker import KINDS, Broker, make_broker, stop_all_on_signals
from app.broker.kafka import JVM_OPTS


def add_broker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        choices=KINDS,
        default="tansu",
        help="tansu (embedded, default) or kafka (Apache Kafka from its jars: Java 17 + Maven)",
    )


@contextlib.contextmanager
def bench_broker(kind: str, log_dir: Path | None = None) -> Iterator[Broker]:
    """A started broker of ``kind``, stopped (and its data removed) on the way out."""
    stop_all_on_signals()
    log = log_dir / f"{kind}.log" if log_dir is not None else None
    broker = make_broker(kind, log_path=log, kafka_jvm_opts=JVM_OPTS)
    started = time.perf_counter()
    with broker:
        print(f"broker: {kind} on {broker.url} (started in {time.perf_counter() - started:.1f}s)")
        yield broker
