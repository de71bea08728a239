"""Holding a batch without leaving the consumer group.

A query over an external table whose ``on_error`` is ``wait`` holds its batch in the prefetch
until the database answers again — minutes, maybe. A group consumer that does not poll for
``max.poll.interval.ms`` (aiokafka: the time spent outside ``getmany``, 300 s by default) is
taken for stuck: it leaves the group, its partitions go to another worker, which reads the same
records and waits on the same database, and so on. So while the batch is held, the consumer
keeps polling with every assigned partition paused (KIP-62's pattern): each poll tells the
coordinator the member is alive, and returns no record. Paused partitions keep their position
(the held batch's records were already returned; records the fetcher had buffered beyond it are
dropped by aiokafka and fetched again after the resume): nothing is skipped or read twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)
#: Seconds between polls while a batch is held (far below any max.poll.interval.ms).
POLL_INTERVAL = 1.0
I_HOLDING = "batch held (a source is unavailable): partitions %s paused, the consumer keeps polling"


async def while_polling(consumer: Any, work: Awaitable[T], interval: float = POLL_INTERVAL) -> T:
    """``await work``; if it takes longer than ``interval``, with ``consumer``'s partitions
    paused and the consumer polling every ``interval`` until it is done."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=interval)
    if done:
        return task.result()
    ours: set[Any] = set()
    try:
        while not task.done():
            # Pause what is assigned now (a rebalance while holding can assign more), resume
            # only what this pause paused (others may pause partitions for their own reasons).
            fresh = set(consumer.assignment()) - set(consumer.paused())
            if fresh:
                consumer.pause(*fresh)
                if not ours:
                    logger.warning(I_HOLDING, sorted(str(tp) for tp in fresh))
                ours |= fresh
            records = await consumer.getmany(timeout_ms=0)
            for tp, recs in records.items():  # none while paused; never lose one if it comes
                if recs:
                    consumer.seek(tp, recs[0].offset)
            await asyncio.wait({task}, timeout=interval)
    except BaseException:
        task.cancel()
        raise
    finally:
        still = ours & set(consumer.assignment())
        if still:
            consumer.resume(*still)
    return task.result()
