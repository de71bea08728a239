"""At-least-once delivery of processed batches: wait for the broker's acks, then commit.

A processed batch is handed over with the futures of its output record batches (results and
dead letters), the source offsets it covers and, for a stateful query, its state write batches
(one per task: :mod:`agents.tasks`). Batches are acknowledged in order; only then is each state
written (with its offsets, one RocksDB write) or the group offsets committed — so a source offset
is never committed before every output it caused is on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from agents.metrics import QueryStats
from agents.state import QueryState
from core.retry import describe
from tables.store import StoreBatch

logger = logging.getLogger(__name__)

W_COMMIT = "query %r: offset commit of %s failed (%s); records before it may be read again"
E_NOT_ACKED = "query %s: outputs of the batch read from %s not acknowledged (%s)"
#: Seconds between two offset commits of a stateless query (acked offsets wait at most this).
COMMIT_INTERVAL = 0.5
#: A group commit slower than this many seconds is logged.
SLOW_COMMIT = 1.0
W_SLOW_COMMIT = "query %r: an offset commit took %.1f s"


@dataclass(slots=True)
class Inflight:
    """One processed batch whose outputs are on their way to the broker."""

    futures: list[asyncio.Future[Any]]
    offsets: dict[TopicPartition, int]
    #: State changes with the offsets they reflect, each for its store: written once acked.
    writes: list[tuple[QueryState, StoreBatch]]
    fetched_at: float


class Delivery:
    """The in-flight batches of one query, and what is committed once they are acknowledged."""

    def __init__(
        self,
        name: str,
        stats: QueryStats,
        max_inflight: int,
        on_failure: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self.name = name
        self.stats = stats
        #: Where acknowledged offsets are committed (a consumer group); None: the offsets live
        #: in local state (stateful queries), written with the batches' ``writes``.
        self.consumer: AIOKafkaConsumer | None = None
        self._queue: asyncio.Queue[Inflight] = asyncio.Queue(maxsize=max_inflight)
        self._on_failure = on_failure
        self._acked: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        #: Group commits run beside the acknowledgements instead of between them (a stateful
        #: task's commits only tell a later owner what was written: its state writes, not the
        #: coordinator's answer, must follow the acks promptly).
        self.background_commits = False
        self._commit_task: asyncio.Task[None] | None = None

    async def put(self, item: Inflight) -> None:
        """Hand a batch over; waits while ``max_inflight`` batches await their acks."""
        await self._queue.put(item)

    async def run(self, should_stop: Callable[[], bool]) -> None:
        """Acknowledge batches in order, forever (the agent's committer task)."""
        while not should_stop():
            item = await self._queue.get()
            try:
                if item.futures:
                    await asyncio.gather(*item.futures)
                self.stats.observe_latency(time.monotonic() - item.fetched_at)
                await self._acknowledged(item)
            except KafkaError as exc:
                # Outputs not acknowledged: nothing of this batch may be committed. Stop the
                # worker; a restart re-reads from the last committed offsets.
                where = read_from(item.offsets)
                error = f"{type(exc).__name__}: {exc} (outputs of the batch read from {where})"
                self.stats.state, self.stats.error = "failed", error
                logger.exception(E_NOT_ACKED, self.name, where, describe(exc))
                await self._on_failure(exc)
            finally:
                # A written batch holds RocksDB's column family: drop it before a rebuild reopens.
                item.writes = []
                self._queue.task_done()

    async def _acknowledged(self, item: Inflight) -> None:
        for state, batch in item.writes:
            state.commit(batch)  # a local write: every batch
        # Then the group's offsets, if the agent has a group (a stateful task's group offsets
        # tell the partition's next owner which outputs were already written).
        if self.consumer is None or not item.offsets:
            return
        self._acked.update(item.offsets)
        # A group commit is a round trip to the coordinator: at most one per interval (a later
        # commit covers the earlier offsets; a crash re-reads at most that much).
        if time.monotonic() - self._committed_at >= COMMIT_INTERVAL:
            await self.commit_acked()

    async def commit_if_idle(self) -> None:
        """Nothing new came: do not leave acknowledged offsets uncommitted for long."""
        if self._acked and time.monotonic() - self._committed_at >= COMMIT_INTERVAL:
            await self.commit_acked()

    async def commit_acked(self) -> None:
        running = self._commit_task
        if self.background_commits and running is not None and not running.done():
            return  # what is acknowledged meanwhile goes with the next commit
        offsets, self._acked = self._acked, {}
        consumer = self.consumer
        if not offsets or consumer is None:
            return
        self._committed_at = time.monotonic()
        if self.background_commits:
            self._commit_task = asyncio.create_task(self._commit(consumer, offsets))
        else:
            await self._commit(consumer, offsets)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        started = time.monotonic()
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            where = ", ".join(
                f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items())
            )
            logger.warning(W_COMMIT, self.name, where, describe(exc))
        took = time.monotonic() - started
        if took > SLOW_COMMIT:
            logger.warning(W_SLOW_COMMIT, self.name, took)

    async def drain(self) -> None:
        """Wait until every batch handed over is acknowledged and committed."""
        await self._queue.join()
        running = self._commit_task
        if running is not None:
            await running
        background, self.background_commits = self.background_commits, False
        try:
            await self.commit_acked()
        finally:
            self.background_commits = background


def read_from(offsets: dict[TopicPartition, int]) -> str:
    """Where a batch was read, for its errors: each partition and the offset its reading stopped
    before (the offset committed once the batch is acknowledged)."""
    parts = [f"{tp.topic}[{tp.partition}] before offset {o}" for tp, o in sorted(offsets.items())]
    return ", ".join(parts) or "no partition (markers only)"
