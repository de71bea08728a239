"""The agents' loop steps and rebalance hooks under exactly-once (:mod:`agents.transaction`).

A fetched batch is processed partition by partition, each into its task's open transaction; the
transactions commit every :data:`agents.transaction.COMMIT_INTERVAL`. What did not commit is
undone here: an aborted task's partition is sought back to its committed offset (stage 2: its
task is reopened from the stored state, which never holds an uncommitted batch); a fenced task's
partition is paused until the group hands out partitions again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.hold import prefetch_batch
from agents.stable_offsets import stable_committed
from agents.stateful_step import verified_runs
from agents.transaction import Failed, Transactions
from core.errors import ConfigError
from core.fetch import highwater, still_current

if TYPE_CHECKING:
    from agents.agent import Processor, QueryAgent
    from agents.pipeline import QueryDef
    from agents.repartition import RepartitionAgent
    from agents.stateful import StatefulAgent
    from agents.tasks import AggregateTask
    from agents.watermarks import Mark

logger = logging.getLogger(__name__)

E_NOT_REPARTITIONED = (
    "processing_guarantee=exactly_once: query {name!r} is stateful and not repartitioned ({why});"
    " every worker computes its whole aggregate, which exactly-once cannot share — group by"
    " columns of the stream only, or use at_least_once"
)
I_RESET = "query %s: local state of %s[%d] is ahead of the committed offset %s; replaying"


def check_queries(queries: Sequence[QueryDef]) -> None:
    """Queries exactly-once cannot run stop the worker at start, named."""
    for q in queries:
        if q.stateful and not q.repartition and not q.copartitioned:
            raise ConfigError(
                E_NOT_REPARTITIONED.format(name=q.name, why=q.not_repartitioned),
                field="processing_guarantee",
                query=q.name,
            )


async def transactional_step(
    agent: QueryAgent,
    txns: Transactions,
    consumer: AIOKafkaConsumer,
    processor: Processor,
    fetched: Mapping[TopicPartition, Sequence[Any]],
) -> None:
    """One fetched batch of a grouped agent (stateless query, stage 1) into its transactions."""
    stats = agent.stats
    started = time.monotonic()
    if fetched and not txns.closed:
        # External tables: the batch's keys fetched at once, before any transaction begins and
        # outside the lock (a source that is down holds the batch here, polling, while the
        # rebalance hooks take the lock); a partition revoked meanwhile is skipped below.
        assigned = consumer.assignment()
        mine = {tp: msgs for tp, msgs in fetched.items() if tp in assigned}
        await prefetch_batch(processor, mine, consumer)
    async with txns.lock:
        if txns.closed:
            return  # stopping: what was fetched is read again after the restart
        if fetched:
            assigned = consumer.assignment()
            for tp, msgs in fetched.items():
                if tp not in assigned or not msgs or not await still_current(consumer, tp, msgs):
                    continue  # revoked or sought after the fetch
                output = await txns.begin(tp)
                if output is None:
                    continue  # its producer failed: the task is rewound or stopped below
                counts = processor.run_fetched({tp: msgs}, output)
                if await txns.sent(tp, msgs[-1].offset + 1):
                    stats.add(counts)
            stats.batches += 1
        failed = await _commit_when_due(stats, consumer, txns, bool(fetched), started)
    if failed:
        await _rewind(consumer, txns, failed)


async def _commit_when_due(
    stats: Any, consumer: AIOKafkaConsumer, txns: Transactions, fetched: bool, started: float
) -> Failed:
    """After a batch (or an empty fetch): positions noted, and the open transactions committed
    when due (every one when nothing came); what failed to commit, to rewind or reopen."""
    await _positions(stats, consumer)
    if fetched and not txns.due():
        return Failed()
    failed = await txns.commit(everything=not fetched)
    _count(stats, txns)
    if fetched:
        stats.latencies.append(time.monotonic() - started)
    return failed


def _count(stats: Any, txns: Transactions) -> None:
    stats.transactions = txns.commits
    stats.transactions_aborted = txns.aborts
    stats.commit_seconds = txns.commit_seconds


async def _positions(stats: Any, consumer: AIOKafkaConsumer) -> None:
    """Positions and high-watermarks for the lag: the consumer's position, not the last record's
    offset + 1 — a transaction's commit marker takes an offset after its records."""
    for tp in consumer.assignment():
        hw = highwater(consumer, tp)
        if hw is not None:
            stats.partitions[tp.partition] = (await consumer.position(tp), hw)


async def _rewind(consumer: AIOKafkaConsumer, txns: Transactions, failed: Failed) -> None:
    failed = _assigned(consumer, failed)
    for tp in failed.aborted:
        committed = txns.committed_offset(tp, await consumer.committed(tp))
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
    if failed.fenced:
        consumer.pause(*failed.fenced)


def generation(consumer: AIOKafkaConsumer) -> int | None:
    """The consumer group's generation this consumer joined last (aiokafka keeps it in its
    coordinator only), for :meth:`Transactions.stop`; None if unknown."""
    value = getattr(getattr(consumer, "_coordinator", None), "generation", None)
    return value if isinstance(value, int) and value > 0 else None


def _assigned(consumer: AIOKafkaConsumer, failed: Failed) -> Failed:
    """The failed tasks whose partition is still assigned: one that failed in the revocation
    hook's commit (:meth:`Transactions.revoke`) may have moved since; its next owner reads it
    from the committed offset (seeking or pausing it here would raise IllegalStateError)."""
    assigned = consumer.assignment()
    return Failed(
        [tp for tp in failed.aborted if tp in assigned],
        [tp for tp in failed.fenced if tp in assigned],
    )


async def txns_revoked(txns: Transactions) -> None:
    """Before partitions move: every open transaction committed; a failed one stays pending
    (:meth:`Transactions.revoke`), rewound by the next step or by the assignment's seek."""
    async with txns.lock:
        await txns.revoke()


async def txns_assigned(
    txns: Transactions, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
) -> None:
    """Producers for the assigned partitions — each fences the partition's previous producer and
    waits for its transaction to end — then reading resumes at the committed offsets."""
    async with txns.lock:
        # A batch fetched before the revocation may have been processed since (its transaction
        # open, its records beyond the committed offset): committed first, or the seek below
        # would read them into it a second time.
        await txns.commit(everything=True)
        await txns.stop(keep=assigned, generation=generation(consumer))
        await txns.start(assigned)
        # Stable (agents.stable_offsets): the previous owner's last transaction, completed by
        # the fencing above, may still be settling its offsets at the coordinator.
        settled = await stable_committed(consumer, txns.group_id, assigned)
        for tp in assigned:
            committed = txns.committed_offset(tp, settled.get(tp))
            if committed is not None:
                consumer.seek(tp, committed)
        if assigned:
            consumer.resume(*assigned)


# -- stage 2 (agents.stateful) ----------------------------------------------------------------
async def stateful_step(
    agent: StatefulAgent,
    txns: Transactions,
    consumer: AIOKafkaConsumer,
    fetched: Mapping[TopicPartition, Sequence[Any]],
) -> None:
    """One fetched batch of repartition partitions into their tasks' transactions; the tasks'
    state is written when their transaction commits."""
    stats = agent.stats
    started = time.monotonic()
    async with agent._lock:
        if txns.closed:
            return  # stopping: what was fetched is read again after the restart
        for task in agent.tasks.values():
            task.check_highwater(highwater(consumer, task.tp))
        if fetched:
            # Every partition verified before any runs, as in at-least-once.
            for owner, msgs in await verified_runs(agent, consumer, fetched):
                if not msgs:
                    continue
                tp = owner.tp
                before = owner.duplicates
                output = await txns.begin(tp)
                if output is None:
                    continue  # its producer failed: the task is reopened or closed below
                counts, batch = owner.run(msgs, output)
                # Never commit below what is committed: records replayed only to rebuild state
                # (below quiet_until) were committed by an earlier owner.
                offset = max(owner.position, owner.quiet_until)
                writes = [] if batch is None else [(owner.state, batch)]
                del batch  # a failed task's store is reopened below: no batch may outlive it
                if await txns.sent(tp, offset, writes):
                    stats.add(counts)
                    stats.duplicates_skipped += owner.duplicates - before
                writes.clear()
            stats.batches += 1
        failed = await _commit_when_due(stats, consumer, txns, bool(fetched), started)
        if failed:
            await _reopen(agent, consumer, failed)


async def tasks_assigned(
    agent: StatefulAgent,
    txns: Transactions,
    consumer: AIOKafkaConsumer,
    assigned: set[TopicPartition],
) -> None:
    """Stage 2's assignment, in one hold of the agent's lock: open transactions committed, the
    producers of the assigned partitions started (each fences the partition's previous one and
    waits for its transaction to end), then the tasks opened, their committed offsets read and
    their partitions sought (:meth:`StatefulAgent.assign`).

    One hold, because a batch run in between — fetched from the committed offset while the new
    producers were fencing — moved a kept task past the committed offset in an open
    transaction: the assignment then took the task for one ahead of what was committed
    (:func:`align`), reset it and replayed it quietly only up to the committed offset, while
    that open transaction committed the batch's outputs too. Each of them twice (seen: 10-40
    EMIT CHANGES rows of a window twice in the two-worker SIGKILL test)."""
    async with agent._lock:
        # A batch processed since the revocation (a fetch under way then) has its transaction
        # open: committed first, so no kept task's state is ahead of the committed offset.
        failed = await txns.commit(everything=True)
        await txns.stop(keep=assigned, generation=generation(consumer))
        await txns.start(assigned)
        # A kept task whose transaction did not commit (here, or in the revocation hook: pending
        # until this commit) holds that transaction's batches in its live state: reopened from
        # its stored state, which holds exactly what committed, it resumes at the committed
        # offset. (It was taken for a task ahead of the committed offset and replayed from 0.)
        # A stored state that does not describe what was committed is still replayed: one
        # ahead of the committed offset by align, one behind it quietly up to it (assign).
        for tp in [*failed.aborted, *failed.fenced]:
            if tp in assigned and tp.partition in agent.tasks:
                agent.reopen(tp.partition)
        await agent.assign(assigned, held=True)
        if assigned:
            consumer.resume(*assigned)


async def _reopen(agent: StatefulAgent, consumer: AIOKafkaConsumer, failed: Failed) -> None:
    """Aborted tasks start again from their stored state (which the aborted transaction never
    reached); fenced ones are closed and their partitions paused."""
    failed = _assigned(consumer, failed)
    for tp in failed.aborted:
        if tp.partition not in agent.tasks:
            continue
        task = agent.reopen(tp.partition)
        await agent._quiet(task)
        agent._seek(task)
    for tp in failed.fenced:
        old = agent.tasks.pop(tp.partition, None)
        if old is not None:
            old.close()
        agent.stats.partitions.pop(tp.partition, None)
    if failed.fenced:
        consumer.pause(*failed.fenced)


def align(name: str, task: AggregateTask, txns: Transactions, answered: int | None) -> int | None:
    """The task's committed offset (:meth:`Transactions.committed_offset`). Local state must not
    be ahead of it (state is written only after a commit; ahead, it came from elsewhere, e.g. an
    at-least-once run): then the task is reset, to replay up to it."""
    committed = txns.committed_offset(task.tp, answered)
    if task.position > (committed or 0):
        logger.info(I_RESET, name, task.tp.topic, task.tp.partition, committed)
        task.reset()
    return committed


# -- stage 1's watermark markers (agents.watermarks) -------------------------------------------
async def mark_in_transactions(
    agent: RepartitionAgent,
    txns: Transactions,
    consumer: AIOKafkaConsumer,
    owned: Mapping[int, TopicPartition],
    marks: Sequence[Mark],
) -> None:
    """Each source partition's markers into its own transaction, after the records they
    describe: they commit (or abort) with them, and a read_committed task sees them in order.
    The transaction commits the partition's position, which every processed record is below."""
    async with txns.lock:
        if txns.closed:
            return
        for mark in marks:
            tp = owned.get(mark.partition)
            # ``owned`` was taken before the lock: a rebalance may have run its revocation hook
            # and changed the assignment meanwhile, its assignment hook (which stops the moved
            # tasks' producers) waiting for the lock behind this — the position of a partition
            # no longer assigned raised IllegalStateError and stopped the worker.
            if tp is None or tp not in txns.tasks or tp not in consumer.assignment():
                continue  # revoked or fenced meanwhile
            output = await txns.begin(tp)
            if output is None:
                continue  # its producer failed: the next commit reports the task
            agent._append_mark(mark, output)
            await txns.sent(tp, await consumer.position(tp))
