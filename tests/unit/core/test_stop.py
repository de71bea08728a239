"""core.stop.finish: work on a store in a thread is waited for to its end even when the caller
is cancelled meanwhile (the store's close must not run under it); the cancellation comes after.
core.stop.stop_in_order: an agent's stop keeps its order (drain, transactions under the lock,
consumer, stores) and stops the consumer and closes the stores whatever fails before."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiokafka import AIOKafkaConsumer

from core.stop import bounded, finish, stop_in_order


async def test_a_cancelled_caller_still_waits_for_the_thread() -> None:
    release, ended = threading.Event(), threading.Event()

    def work() -> None:
        release.wait(10)
        ended.set()

    future = asyncio.ensure_future(asyncio.to_thread(work))
    waiter = asyncio.ensure_future(finish(future))
    await asyncio.sleep(0.05)
    waiter.cancel()  # twice: each is absorbed until the work ends
    await asyncio.sleep(0.05)
    waiter.cancel()
    await asyncio.sleep(0.05)
    assert not waiter.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert ended.is_set()


async def test_the_work_s_error_is_raised() -> None:
    def work() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await finish(asyncio.ensure_future(asyncio.to_thread(work)))


class Txns:
    """Stands for agents.transaction.Transactions (producers on a broker): records its close."""

    def __init__(self, steps: list[str], fail: bool) -> None:
        self.lock = asyncio.Lock()
        self.steps, self.fail = steps, fail

    async def close(self) -> None:
        self.steps.append(f"txns closed, own lock held: {self.lock.locked()}")
        if self.fail:
            raise OSError("commit failed")


async def _stop(
    steps: list[str],
    *,
    drain_fails: bool = False,
    txns_fail: bool = False,
    lock: asyncio.Lock | None = None,
) -> None:
    """An agent's stop with a real (never started) consumer; each step appended to ``steps``."""
    held = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    consumer: AIOKafkaConsumer | None = held
    txns = Txns(steps, txns_fail)
    current: Txns | None = None

    async def drain() -> None:
        nonlocal current
        # The agent's start, still running, makes its transactions meanwhile: closed too.
        current = txns
        steps.append(f"drained, consumer there: {consumer is not None}")
        if drain_fails:
            raise OSError("drain failed")

    def take_consumer() -> AIOKafkaConsumer | None:
        nonlocal consumer
        steps.append("consumer taken")
        taken, consumer = consumer, None
        return taken

    def close() -> None:
        steps.append(f"closed, consumer stopped: {held._closed}")

    try:
        await stop_in_order("agent q", drain(), lambda: current, take_consumer, close, lock=lock)
    finally:
        assert not txns.lock.locked()
        assert lock is None or not lock.locked()


async def test_an_agent_stops_in_order() -> None:
    steps: list[str] = []
    await _stop(steps)
    assert steps == [
        "drained, consumer there: True",
        "txns closed, own lock held: True",
        "consumer taken",
        "closed, consumer stopped: True",
    ]


async def test_the_transactions_close_under_the_lock_given() -> None:
    steps: list[str] = []
    lock = asyncio.Lock()
    await _stop(steps, lock=lock)
    # The agent's step writes under ``lock``, not the transactions' own.
    assert steps[1] == "txns closed, own lock held: False"


@pytest.mark.parametrize(
    ("drain_fails", "txns_fail", "error", "done"),
    [(True, False, "drain failed", 1), (False, True, "commit failed", 2)],
)
async def test_a_failure_before_still_stops_the_consumer_and_closes(
    drain_fails: bool, txns_fail: bool, error: str, done: int
) -> None:
    steps: list[str] = []
    with pytest.raises(OSError, match=error):
        await _stop(steps, drain_fails=drain_fails, txns_fail=txns_fail)
    assert steps[done:] == ["consumer taken", "closed, consumer stopped: True"]


async def test_bounded_work_that_runs_out_of_time_is_cancelled_without_an_error() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await bounded(work(), 0.05)
    assert started.is_set()
    assert cancelled.is_set()


async def test_bounded_work_s_own_error_is_raised() -> None:
    async def work() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await bounded(work(), 5)
