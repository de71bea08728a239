"""Stage 2 of a stateful query under exactly-once loses the broker after the worker's BrokerGate
let it through: once just before its consumer starts, once just before its transactional
producers start (inside the assignment hook). Each start is tried again, logged naming the
broker, until the broker — restarted on the same log directories — is back; the outputs are then
exact. Told to stop while it waits, the agent stops at once. In process, on a broker of the
test's own; the broker is stopped at those moments by the agent's own calls (its wait for
tables, its producers' start), everything else is real."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from agents.transaction import Transactions
from app.broker import Broker
from tests.support.eos import SYMBOLS, Stage2, stage2, write_stage1

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]

#: The group member outlives the broker's restart (no rebalance then re-runs the assignment
#: hook: only the hook's own retry can start the producers).
SESSION = 45.0


def retries(caplog: pytest.LogCaptureFixture, what: str, url: str) -> int:
    """How many times a start-up step beginning with ``what`` failed, logged naming ``url``."""
    broker = f" failed: broker {url} unreachable"
    return sum(
        m.startswith(f"start-up: {what}") and broker in m
        for m in (r.getMessage() for r in caplog.records)
    )


async def until(check: Callable[[], Any], what: str, run: Stage2, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it is truthy; the agent failing (a start not retried) ends it."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert run.agent.stats.state != "failed", f"{what}: {run.agent.stats.error}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return result


def stop_on_start(monkeypatch: pytest.MonkeyPatch, broker: Broker) -> list[float]:
    """The broker stopped when the agent first starts its transactional producers (in the
    assignment hook, the group joined); when, in the list."""
    start = Transactions.start
    stopped: list[float] = []

    async def stop_then_start(txns: Transactions, tps: Iterable[TopicPartition]) -> None:
        if not stopped:
            await asyncio.to_thread(broker.stop)
            stopped.append(time.monotonic())
        await start(txns, tps)

    monkeypatch.setattr(Transactions, "start", stop_then_start)
    return stopped


def stop_on_wait(broker: Broker) -> Callable[[Any], Awaitable[None]]:
    """The agent's wait for its tables (its last step before its consumer starts) stops the
    broker, the first time."""
    calls: list[int] = []

    async def wait_tables(names: Any) -> None:
        if not calls:
            calls.append(1)
            await asyncio.to_thread(broker.stop)

    return wait_tables


async def test_stage2_starts_retry_until_the_broker_is_back(
    fresh_broker: Broker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, url = fresh_broker, fresh_broker.url
    run = await stage2(
        url, tmp_path, "lost", stop_on_wait(broker), partitions=2, session_timeout=SESSION
    )
    await write_stage1(run.producer, run.repartition, 0, 30, partition=0)
    await write_stage1(run.producer, run.repartition, 30, 30, partition=1)
    stopped = stop_on_start(monkeypatch, broker)
    name = run.agent.qdef.name
    caplog.set_level(logging.INFO, logger="core.retry")
    try:
        await run.agent.start()
        # 1. Lost before the consumer starts: tried again, logged naming the broker.
        consumer = f"start query {name!r}'s stage-2 consumer"
        await until(lambda: retries(caplog, consumer, url) >= 2, "the consumer's retries", run)
        assert run.agent.stats.state != "failed", run.agent.stats.error
        await asyncio.to_thread(broker.start)  # same ports, same log directories
        # 2. Lost again once the group is joined, before the producers start.
        await until(lambda: stopped, "the assignment to start the producers", run, 90)
        producer = f"start the transactional producer '{run.agent.group_id}-"
        await until(lambda: retries(caplog, producer, url) >= 2, "the producers' retries", run)
        await asyncio.to_thread(broker.start)
        # Exactly once: each partition's task counts its 15 orders of each symbol, each count
        # once (both symbols were written to both partitions).
        expected = {s: sorted([*range(1, 16), *range(1, 16)]) for s in SYMBOLS}
        deadline = time.monotonic() + 90
        while (counts := {s: sorted(n) for s, n in (await run.counts()).items()}) != expected:
            assert time.monotonic() < deadline, f"counts {counts}"
            assert run.agent.stats.state != "failed", run.agent.stats.error
            await asyncio.sleep(0.5)
        done = [r.getMessage() for r in caplog.records if "done after" in r.getMessage()]
        assert any(consumer in m for m in done), done
        assert sum(producer in m for m in done) == 2, done  # both partitions' producers
    finally:
        await run.close()


async def stopped_at_once(run: Stage2) -> float:
    started = time.monotonic()
    await asyncio.wait_for(run.close(), 30)
    assert run.agent.stats.state == "stopped", run.agent.stats.error
    return time.monotonic() - started


async def test_stage2_told_to_stop_while_waiting_for_the_broker_stops_at_once(
    fresh_broker: Broker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a worker's SIGTERM does: the agent told to stop while a start waits for the broker
    (its consumer's; its producers', in the assignment hook) stops within seconds."""
    broker, url = fresh_broker, fresh_broker.url
    caplog.set_level(logging.INFO, logger="core.retry")
    first = await stage2(url, tmp_path / "a", "stop1", stop_on_wait(broker))
    await first.agent.start()
    await until(lambda: retries(caplog, "start query", url) >= 1, "the consumer's retry", first)
    assert await stopped_at_once(first) < 5

    await asyncio.to_thread(broker.start)
    stopped = stop_on_start(monkeypatch, broker)
    second = await stage2(url, tmp_path / "b", "stop2", session_timeout=SESSION)
    await second.agent.start()
    await until(lambda: stopped, "the assignment to start the producers", second, 90)
    await until(lambda: retries(caplog, "start the transactional", url) >= 1, "a retry", second)
    assert await stopped_at_once(second) < 5
