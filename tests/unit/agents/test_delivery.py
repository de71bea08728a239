"""Delivery: state and offsets are written only after the broker acknowledged the batch's
outputs, in order; an unacknowledged batch writes nothing and stops the agent."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from agents.delivery import Delivery, Inflight
from agents.metrics import QueryStats
from agents.state import QueryState


@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"
    topic: str = "orders"
    timestamp: int = 0


async def test_state_is_written_after_the_acks_and_in_order(tmp_path: Path) -> None:
    failures: list[BaseException] = []

    async def failed(exc: BaseException) -> None:
        failures.append(exc)

    state = QueryState(tmp_path / "q", "orders")
    state.open()
    delivery = Delivery("q", QueryStats("q", "orders", "out", "stateful"), 4, failed)
    stop = False
    runner = asyncio.create_task(delivery.run(lambda: stop))
    loop = asyncio.get_running_loop()
    first: asyncio.Future[Any] = loop.create_future()
    second: asyncio.Future[Any] = loop.create_future()
    tp = TopicPartition("orders", 0)
    await delivery.put(
        Inflight([first], {tp: 10}, [(state, state.batch({"g": 1}, {0: Rec(0, 9)}))], 0.0)
    )
    await delivery.put(
        Inflight([second], {tp: 20}, [(state, state.batch({"g": 2}, {0: Rec(0, 19)}))], 0.0)
    )
    second.set_result(None)  # acked out of order: nothing may be written before the first
    await asyncio.sleep(0.05)
    assert state.positions() == {}
    first.set_result(None)
    await asyncio.wait_for(delivery.drain(), 5)
    assert state.positions() == {0: 20}
    assert dict(state.items()) == {"g": 2}

    failing: asyncio.Future[Any] = loop.create_future()
    failing.set_exception(KafkaTimeoutError())
    await delivery.put(
        Inflight([failing], {tp: 30}, [(state, state.batch({"g": 3}, {0: Rec(0, 29)}))], 0.0)
    )
    await asyncio.wait_for(delivery.drain(), 5)
    assert state.positions() == {0: 20}  # not acknowledged: not written
    assert [type(e) for e in failures] == [KafkaTimeoutError]
    stop = True
    runner.cancel()
    state.close()


async def test_background_commits_never_hold_the_state_writes_back(tmp_path: Path) -> None:
    """A stateful task's group commit runs beside the acks: a slow coordinator does not delay the
    next batch's state write; drain waits for the commits."""
    release = asyncio.Event()
    commits: list[dict[TopicPartition, int]] = []

    class SlowGroup:
        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            await release.wait()
            commits.append(dict(offsets))

    async def failed(exc: BaseException) -> None:
        raise AssertionError(exc)

    state = QueryState(tmp_path / "q", "rp")
    state.open()
    delivery = Delivery("q", QueryStats("q", "rp", "out", "stateful"), 4, failed)
    delivery.consumer = SlowGroup()
    delivery.background_commits = True
    stop = False
    runner = asyncio.create_task(delivery.run(lambda: stop))
    tp = TopicPartition("rp", 0)
    for n in (1, 2):
        batch = state.batch({"g": n}, {0: Rec(0, 10 * n - 1)})
        await delivery.put(Inflight([], {tp: 10 * n}, [(state, batch)], 0.0))
    await asyncio.sleep(0.05)
    assert state.positions() == {0: 20}  # both written while the first commit still waits
    assert commits == []
    draining = asyncio.create_task(delivery.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()  # drain waits for the group to have the offsets
    release.set()
    await asyncio.wait_for(draining, 5)
    assert commits[0] == {tp: 10}
    assert commits[-1] == {tp: 20}
    stop = True
    runner.cancel()
    state.close()


async def test_an_unacknowledged_batch_names_where_it_was_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[BaseException] = []

    async def failed(exc: BaseException) -> None:
        failures.append(exc)

    stats = QueryStats("q", "orders", "out", "stateless")
    delivery = Delivery("q", stats, 4, failed)
    stop = False
    runner = asyncio.create_task(delivery.run(lambda: stop))
    failing: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failing.set_exception(KafkaTimeoutError())
    offsets = {TopicPartition("orders", 2): 41, TopicPartition("orders", 0): 7}
    with caplog.at_level(logging.ERROR, logger="agents.delivery"):
        await delivery.put(Inflight([failing], offsets, [], 0.0))
        await asyncio.wait_for(delivery.drain(), 5)
    where = "orders[0] before offset 7, orders[2] before offset 41"
    assert caplog.messages == [
        f"query q: outputs of the batch read from {where} not acknowledged (KafkaTimeoutError)"
    ]
    assert stats.state == "failed"
    assert (
        stats.error
        == f"KafkaTimeoutError: KafkaTimeoutError (outputs of the batch read from {where})"
    )
    assert [type(e) for e in failures] == [KafkaTimeoutError]
    stop = True
    runner.cancel()
