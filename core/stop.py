"""Stopping an aiokafka consumer whatever the broker left it in, and closing what it guarded.

``AIOKafkaConsumer.stop()`` raises ``CancelledError`` when the broker is away or slow: a fetch
that failed (connection refused, ``RequestTimedOutError`` from a slow broker) backs off in an
``asyncio.sleep`` outside the fetch's own ``CancelledError`` handler, and the fetcher's close
cancels that task and awaits it. A stop that ends there skips what follows it — the client's
connections (``stop`` closes them after the fetcher), and the caller's own clean-up: a table
loader's RocksDB store stayed open, and the next table on the same directory failed with
"lock hold by current process".

A query agent's stop (:func:`stop_in_order`) keeps one order whatever fails: in-flight outputs
acknowledged, open transactions committed, the consumer stopped, the stores closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer

logger = logging.getLogger(__name__)

W_STOP = "%s: its consumer failed to stop (%s: %s); its connections are closed regardless"


async def stop_consumer(consumer: AIOKafkaConsumer, owner: str = "a consumer's owner") -> None:
    """``consumer.stop()``, its connections closed even if the stop fails; no error raised but a
    real cancellation of the caller (raised once the connections are closed). ``owner`` names
    the stopping service in the warning logged when the stop fails otherwise than by the
    fetcher's cancellation (see the module docstring)."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        await _close_client(consumer)
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        logger.warning(W_STOP, owner, type(exc).__name__, exc)
        await _close_client(consumer)


class Closing(Protocol):
    """What :func:`stop_in_order` closes under a lock: an agent's transactions."""

    lock: asyncio.Lock

    async def close(self) -> object: ...


async def stop_in_order(
    owner: str,
    drain: Awaitable[object],
    txns: Callable[[], Closing | None],
    take_consumer: Callable[[], AIOKafkaConsumer | None],
    close: Callable[[], None],
    *,
    lock: asyncio.Lock | None = None,
) -> None:
    """Stop a query agent (named ``owner`` in the logs): await ``drain`` (the in-flight outputs
    acknowledged, bounded by the caller), close the transactions ``txns()`` has by then (commit
    what is open) holding ``lock`` — the one the agent's step writes under; by default the
    transactions' own — then, whatever those raised, stop the consumer ``take_consumer`` hands
    over (taken only now: the drain may still need it) with :func:`stop_consumer`, then,
    whatever that raised, ``close()`` the rest (an error before left the state stores locked
    for the next agent on their directories)."""
    try:
        await drain
        transactions = txns()
        if transactions is not None:
            async with transactions.lock if lock is None else lock:
                await transactions.close()
    finally:
        consumer = take_consumer()
        try:
            if consumer is not None:
                await stop_consumer(consumer, owner)
        finally:
            close()


async def bounded(work: Awaitable[object], timeout: float) -> None:
    """Wait for ``work`` at most ``timeout`` seconds; running out of time is no error (``work``
    is cancelled): a stop goes on without what did not finish."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(work, timeout)


async def _close_client(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(Exception):
        await consumer._client.close()


async def finish(future: asyncio.Future[None]) -> None:
    """Wait for ``future`` — work on a store in a thread, which the store's close must not run
    under — to its end even if the caller is cancelled meanwhile (that cancellation is raised
    after): a stop cancelled while a compaction runs still closes the store."""
    cancelled: asyncio.CancelledError | None = None
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError as exc:
            if future.done():
                break
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    future.result()
