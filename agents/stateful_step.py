"""Stage 2's at-least-once step (:mod:`agents.stateful`): a fetched batch through its partitions'
tasks, handed to the delivery with the state writes and group offsets its acknowledgement
allows (the exactly-once step is :func:`agents.transactional.stateful_step`).

Every partition is verified before any runs: a mismatch (:class:`agents.state.StateMismatch`)
drops the whole fetch — each task is then sought back to its position —, never half a processed
batch. Records fetched before a rebalance moved their partition are left to its new owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.delivery import Inflight
from agents.hold import prefetch_batch
from agents.state import QueryState
from core.fetch import highwater, still_current
from tables.store import StoreBatch

#: Turns of the event loop given after each batch (see :func:`run_fetched`'s end).
YIELDS = 3

if TYPE_CHECKING:
    from agents.stateful import StatefulAgent
    from agents.tasks import AggregateTask


async def run_fetched(
    agent: StatefulAgent, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, Any]
) -> None:
    """One fetch (maybe empty) through the tasks, under the agent's lock."""
    async with agent._lock:
        for task in agent.tasks.values():
            # A topic that ends before the offset a state reflects is not the one it came
            # from (a fetch past the end may just come back empty: checked every step).
            task.check_highwater(highwater(consumer, task.tp))
        if not fetched:
            agent.update_lag()
            await agent.delivery.commit_if_idle()
            return
        started = time.monotonic()
        writes: list[tuple[QueryState, StoreBatch]] = []
        offsets: dict[TopicPartition, int] = {}
        stats = agent.stats
        for owner, msgs in await verified_runs(agent, consumer, fetched):
            tp = owner.tp
            before = owner.duplicates
            counts, batch = owner.run(msgs, agent.output)
            if batch is not None:
                writes.append((owner.state, batch))
            # Never below what the partition's previous owner committed (quiet replay).
            # Also for a batch whose state is written later (the task's write interval):
            # the group offset says which outputs were written, a later owner replays the
            # records between the stored state and it quietly.
            offsets[owner.tp] = max(owner.position, owner.quiet_until)
            stats.add(counts)
            stats.duplicates_skipped += owner.duplicates - before
            stats.partitions[tp.partition] = (owner.position, highwater(consumer, tp))
        # Returns at once: the output hands its batches to the producer in the background
        # (agents.sink), the delivery awaits their acknowledgements in order.
        futures = await agent.output.flush()
        await agent.delivery.put(Inflight(futures, offsets, writes, started))
        stats.batches += 1
    # Nothing above waits for the broker now: give the event loop the few turns it takes to put
    # this batch's produce requests on the wire (the output's task hands the batches over, the
    # producer's sender builds a request, its connection writes it) and the fetcher to read, so
    # that the broker works on them while the next batch runs.
    for _ in range(YIELDS):
        await asyncio.sleep(0)


async def verified_runs(
    agent: StatefulAgent,
    consumer: AIOKafkaConsumer,
    fetched: Mapping[TopicPartition, Any],
) -> list[tuple[AggregateTask, Any]]:
    """The fetched partitions this agent still owns, each batch verified against its task's
    state (a mismatch raises before any batch runs) and its external tables' keys prefetched;
    both steps, at-least-once and exactly-once, run these."""
    runs: list[tuple[AggregateTask, Any]] = []
    for tp, msgs in fetched.items():
        owner = agent.tasks.get(tp.partition)
        mine = owner is not None and tp.topic == agent.topic
        if owner is not None and mine and await still_current(consumer, tp, msgs):
            runs.append((owner, owner.verify(msgs)))
        # else: revoked after the fetch; its new owner reads it
    for owner, msgs in runs:  # external tables: the batch's keys fetched at once
        await prefetch_batch(owner.processor, {owner.tp: msgs})
    return runs
