"""The Apache Kafka launcher: jars resolved once, a real KRaft node, stopped by its own pid."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import BrokerError, KafkaBroker, kafka_jars
from app.broker.process import answers_metadata
from tests.support.brokers import kafka_missing
from tests.support.kafka import create_topic, produce, read_all, unique

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(kafka_missing() is not None, reason=kafka_missing() or ""),
]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")  # a zombie (exited, not yet reaped) is gone too
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return gone(pid)


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_jars()  # the shared cache holds the jars: start() gets as far as looking for java
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on it
    with pytest.raises(BrokerError, match="needs mvn on PATH") as err:
        kafka_jars(cache=tmp_path / "cache")
    assert err.value.fields["tool"] == "mvn"
    broker = KafkaBroker()
    try:
        with pytest.raises(BrokerError, match="needs java on PATH"):
            broker.start()
        assert broker.pid is None
    finally:
        broker.close()


@pytest.mark.slow
def test_two_processes_resolving_at_once_share_one_complete_directory(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    results: list[Path] = []
    errors: list[BaseException] = []

    def resolve() -> None:
        try:
            results.append(kafka_jars(cache=cache))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0] == results[1]
    jars = {p.name for p in results[0].iterdir()}
    assert any(j.startswith("kafka_2.13-4.1") for j in jars)
    assert any(j.startswith("log4j-slf4j-impl") for j in jars)
    assert [p.name for p in cache.iterdir()] == [results[0].parent.name]  # no half-written dirs
    assert kafka_jars(cache=cache) == results[0]  # reused, not resolved again


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(log_path=tmp_path_factory.mktemp("kafka") / "kafka.log") as broker:
        yield broker


def test_restart_keeps_records_ports_and_directory(kafka: KafkaBroker) -> None:
    topic = unique("restart")
    port, data = kafka.port, kafka.data_dir
    asyncio.run(_create_and_produce(kafka.url, topic))
    old_pid = kafka.pid
    assert old_pid is not None
    kafka.restart()
    assert wait_gone(old_pid)
    assert (kafka.port, kafka.data_dir) == (port, data)
    assert kafka.pid != old_pid
    assert answers_metadata(kafka.port)
    got = asyncio.run(read_all(kafka.url, topic))
    assert sorted(m.value for m in got) == [b"v0", b"v1", b"v2"]


def test_the_broker_runs_with_a_low_pause_gc(kafka: KafkaBroker) -> None:
    # ZGC: no stop-the-world pause of G1's 10-35 ms stalling every record in flight.
    assert kafka.pid is not None
    argv = Path(f"/proc/{kafka.pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in argv
    assert b"-XX:+UseZGC" in argv
    assert not any(flag.startswith(b"-XX:+UseG1GC") for flag in argv)


async def _create_and_produce(url: str, topic: str) -> None:
    await create_topic(url, topic, partitions=1)
    await produce(url, topic, [(b"k", f"v{i}".encode()) for i in range(3)])


def test_topics_are_not_created_by_a_producer(kafka: KafkaBroker) -> None:
    # The app must create what it uses, as on a cluster with auto.create.topics.enable=false.
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import UnknownTopicOrPartitionError

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.url, request_timeout_ms=2000)
        await producer.start()
        try:
            with pytest.raises(UnknownTopicOrPartitionError):
                await producer.send_and_wait(unique("absent"), b"x")
        finally:
            await producer.stop()

    asyncio.run(send())


def test_close_stops_the_process_and_removes_its_data(tmp_path: Path) -> None:
    broker = KafkaBroker(log_path=tmp_path / "kafka.log").start()
    pid, port, data = broker.pid, broker.port, broker.data_dir
    assert pid is not None
    assert data.is_dir()
    broker.close()
    assert wait_gone(pid)
    assert not data.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), 0.5).close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from app.broker import KafkaBroker, stop_all_on_signals
    stop_all_on_signals()
    b = KafkaBroker().start()
    print(b.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_owner_takes_its_broker_along(sig: int) -> None:
    # SIGTERM: the handler stops the broker; SIGKILL: Linux's parent-death signal does.
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    broker_pid = 0
    try:
        assert proc.stdout is not None
        broker_pid = int(proc.stdout.readline())
        proc.send_signal(sig)
        proc.wait(30)
        assert wait_gone(broker_pid), f"the broker outlived its owner killed by {sig!r}"
    finally:
        if proc.poll() is None:
            proc.kill()
        if broker_pid and not gone(broker_pid):
            os.killpg(broker_pid, signal.SIGKILL)


def test_command_line_kafka_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    pid_file = tmp_path / "broker.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.broker", "--kind", "kafka", "--pid-file", str(pid_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    broker_pid = 0
    try:
        assert proc.stdout is not None
        host, port = proc.stdout.readline().strip().split(":")
        assert host == "127.0.0.1"
        assert answers_metadata(int(port))
        broker_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_gone(broker_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        if broker_pid and not gone(broker_pid):
            os.killpg(broker_pid, signal.SIGKILL)
