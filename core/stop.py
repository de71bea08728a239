"""Stopping an aiokafka consumer whatever the broker left it in, and closing what it guarded.

``AIOKafkaConsumer.stop()`` raises ``CancelledError`` when the broker is away or slow: a fetch
that failed (connection refused, ``RequestTimedOutError`` from a slow broker) backs off in an
``asyncio.sleep`` outside the fetch's own ``CancelledError`` handler, and the fetcher's close
cancels that task and awaits it. A stop that ends there skips what follows it — the client's
connections (``stop`` closes them after the fetcher), and the caller's own clean-up: a table
loader's RocksDB store stayed open, and the next table on the same directory failed with
"lock hold by current process".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
