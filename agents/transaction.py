"""Exactly-once processing: each task's outputs, state and source offsets in one Kafka transaction.

Under ``processing_guarantee=exactly_once`` every query task — a source partition of a stateless
query or of stage 1 of a stateful one, a repartition partition of stage 2 — has its own
transactional producer with ``transactional.id`` ``<app_id>-<query>-<stage>-<partition>``. This
is Kafka Streams' per-task scheme (EOS v1): its EOS v2 (one producer per worker) fences zombies
through the group generation in TxnOffsetCommit, which aiokafka does not send; a per-task id
fences them through InitProducerId. A transaction holds what its task processed since the last
commit: output records and dead letters (appended into aiokafka record batches as at-least-once
does: a batch built by a transactional producer carries its id, epoch and transactional flag,
stamped when the batch is sent) and the source offsets (``send_offsets_to_transaction`` to the
consumer group). It commits every ``commit_interval`` seconds (Kafka Streams'
``commit.interval.ms`` under EOS, setting ``TABLESTREAM_COMMIT_INTERVAL_MS``; default
:data:`COMMIT_INTERVAL`), when no records come, and before partitions move. An output is visible
to ``read_committed`` readers once its transaction commits: the interval is the floor of the
end-to-end latency, against one commit (four round trips to the coordinator) per interval.

- Local state (RocksDB, stage 2) is written only once ``commit_transaction`` succeeded: never
  ahead of the committed offsets. A crash in between leaves it behind; the task replays the
  difference without writing outputs (:mod:`agents.tasks`), so the state then reflects exactly
  the committed offsets and never an aborted transaction.
- An aborted transaction (a send or the commit failed) is undone by the caller: its partitions
  are sought back to the committed offsets, stage 2 tasks reopened from their stored state.
- A producer fenced by a newer one with the same id (this worker is a zombie: the partition moved)
  stops that task: nothing more is written for it; its records are the new owner's.
- Starting a task's producer (InitProducerId) fences an earlier incarnation and waits until that
  one's open transaction is aborted or complete: committed offsets are read only after.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    IllegalOperation,
    KafkaError,
)

from agents.sink import MAX_BATCH_BYTES, Output
from agents.state import QueryState

# The start-up check moved to agents.transaction_probe (agents.service imports it from here).
from agents.transaction_probe import check_transactions as check_transactions
from agents.transaction_producer import (
    FENCING,
    Task,
    failure_cause,
    forget_futures,
    stop_producer,
)
from core.retry import STARTUP, StartupRetry
from tables.store import StoreBatch

logger = logging.getLogger(__name__)

#: Seconds a task's transaction stays open (Kafka Streams' default under EOS is 100 ms).
COMMIT_INTERVAL = 0.1
W_ABORTED = "query %s: transaction of %s[%d] aborted (%s); re-reading from the committed offset"
W_FENCED = "query %s: producer of %s[%d] fenced by a newer one (%s); the task stops here"
W_BROKEN = "query %s: producer of %s[%d] failed while %s (%s); its transaction is dropped, %s"
I_REJOINED = "query %s: group generation %s -> %s (out of the group meanwhile): new producers"
#: What the retries of a producer's start log it as, after the first assignment's (core.retry).
REBALANCE, RENEWAL = "rebalance", "producer renewal"


class Outcome(enum.Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"
    FENCED = "fenced"


@dataclass(slots=True)
class Failed:
    """Tasks whose last transaction did not commit: aborted ones re-read, fenced ones stop."""

    aborted: list[TopicPartition] = field(default_factory=list)
    fenced: list[TopicPartition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.aborted or self.fenced)


class Transactions:
    """The transactional producers of one agent's tasks (its assigned partitions)."""

    def __init__(
        self,
        name: str,
        *,
        servers: str,
        id_prefix: str,
        group_id: str,
        topics: Sequence[str],
        client_id: str,
        commit_interval: float = COMMIT_INTERVAL,
        retry: StartupRetry | None = None,
    ) -> None:
        self.name = name
        #: Starting a task's producer is tried again while the broker is away (lost between the
        #: worker's BrokerGate and an assignment, or during one); None: tried once.
        self.retry = retry
        #: Seconds a task's transaction stays open before :meth:`due` says commit (0: each batch).
        self.commit_interval = commit_interval
        self.servers = servers
        self.id_prefix = id_prefix
        self.group_id = group_id
        self.topics = list(topics)
        self.client_id = client_id
        self.tasks: dict[TopicPartition, Task] = {}
        #: The offset each task last committed. EndTxn returns before the coordinator wrote the
        #: transaction's markers: for a moment the group still answers the previous offset.
        self.committed: dict[TopicPartition, int] = {}
        #: Held while a batch is processed into transactions, and while they commit.
        self.lock = asyncio.Lock()
        #: Set by :meth:`close`: a batch fetched meanwhile is dropped, no producer starts again.
        self.closed = False
        self.commits = 0
        self.aborts = 0
        #: Seconds spent committing (waiting for acks and the coordinator), for the stats.
        self.commit_seconds = 0.0
        #: Tasks whose producer failed in :meth:`begin` or :meth:`sent`: reported by the next
        #: :meth:`commit`, with those whose commit failed.
        self.failed = Failed()
        #: The group generation of the last assignment (:meth:`stop`).
        self.generation: int | None = None
        #: Producers were started: later starts come from a rebalance (their retries say so).
        self.assigned = False

    def committed_offset(self, tp: TopicPartition, answered: int | None) -> int | None:
        """The group's committed offset of ``tp`` as ``answered`` by the coordinator, or the one
        this worker's producer committed last if that is newer (its markers may be in flight)."""
        mine = self.committed.get(tp)
        if mine is None or (answered is not None and answered >= mine):
            return answered
        return mine

    def transactional_id(self, tp: TopicPartition) -> str:
        return f"{self.id_prefix}-{tp.partition}"

    async def start(self, tps: Iterable[TopicPartition]) -> None:
        """Producers for ``tps`` not started yet (each fences its earlier incarnation and waits
        for that one's transaction to end), all at once."""
        new = [tp for tp in tps if tp not in self.tasks]
        phase = REBALANCE if self.assigned else STARTUP
        self.assigned = self.assigned or bool(new)
        tasks = await asyncio.gather(*(self._start(tp, phase) for tp in new))
        for task in tasks:
            self.tasks[task.tp] = task

    async def _start(self, tp: TopicPartition, phase: str) -> Task:
        if self.retry is None:
            return await self._try_start(tp)
        producer = (
            f"{self.transactional_id(tp)!r} of query {self.name}'s task {tp.topic}[{tp.partition}]"
        )
        return await self.retry(
            f"start the transactional producer {producer}", lambda: self._try_start(tp), phase
        )

    async def _try_start(self, tp: TopicPartition) -> Task:
        # A new producer each try: one whose start failed half-way is not started again.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.servers,
            client_id=f"{self.client_id}-{tp.partition}",
            transactional_id=self.transactional_id(tp),
            max_batch_size=MAX_BATCH_BYTES,
            linger_ms=0,
        )
        try:
            await producer.start()
            output = Output(producer)
            await output.prepare(self.topics)
        except BaseException:
            await stop_producer(producer)
            raise
        return Task(tp, producer, output)

    async def stop(
        self, keep: Iterable[TopicPartition] = (), generation: int | None = None
    ) -> None:
        """Stop the producers of every task not in ``keep`` (their transactions committed
        before: :meth:`commit`). ``generation``: the group's, on an assignment — one not
        following the last means this worker was out of the group meanwhile (its session
        expired under load): another owned its partitions and fenced the producers it still
        holds, so none is kept."""
        kept = set(keep)
        if generation is not None:
            if self.generation is not None and generation != self.generation + 1 and self.tasks:
                logger.info(I_REJOINED, self.name, self.generation, generation)
                kept = set()
            self.generation = generation
        # Tasks failed outside a commit and moved since: nothing left to rewind.
        self.failed.aborted = [tp for tp in self.failed.aborted if tp in kept]
        self.failed.fenced = [tp for tp in self.failed.fenced if tp in kept]
        for tp in [tp for tp in self.tasks if tp not in kept]:
            self.committed.pop(tp, None)  # its next producer waits for the markers
            task = self.tasks.pop(tp)
            await stop_producer(task.producer)

    async def begin(self, tp: TopicPartition) -> Output | None:
        """The output of ``tp``'s task, inside an open transaction; None if its producer failed
        (fenced or broken) or it has none: the task is then in :attr:`failed`, for the caller
        to rewind (aborted) or pause (fenced)."""
        task = self.tasks.get(tp)
        if task is None:
            # No producer: fenced by the partition's next owner (its records, fetched before
            # the partition was paused, still come). Only an assignment starts producers
            # (:meth:`start`): one started here fenced the real owner's and committed offsets
            # from this zombie's position, past records nobody committed (seen: a window's last
            # 47 rows missing in the two-worker SIGKILL test, the sessions expiring under load).
            if tp not in self.failed.fenced:
                self.failed.fenced.append(tp)
            return None
        if tp in self.failed.aborted:
            # Dropped (:meth:`_drop`), to be rewound by the next commit's caller: a transaction
            # begun before that would get the records from the rewound offset on a second time.
            return None
        if not task.open:
            try:
                await task.producer.begin_transaction()
            except (KafkaError, IllegalOperation, AssertionError) as exc:
                await self._drop(task, "beginning a transaction", exc)
                return None
            task.open, task.started = True, time.monotonic()
        return task.output

    async def sent(
        self, tp: TopicPartition, offset: int, writes: Sequence[tuple[QueryState, StoreBatch]] = ()
    ) -> bool:
        """The records appended to ``tp``'s output go into its transaction, with ``offset``.
        False if its producer failed sending them (the task is then in :attr:`failed`)."""
        task = self.tasks[tp]
        try:
            task.futures.extend(await task.output.flush())
        except (KafkaError, IllegalOperation, AssertionError) as exc:
            await self._drop(task, "sending", exc)
            return False
        task.offset = offset
        task.writes.extend(writes)
        return True

    async def _drop(self, task: Task, doing: str, exc: BaseException) -> None:
        """A producer that failed outside the commit (fenced in the background: the next begin
        or send fails) drops its open transaction as a failed commit does — it is aborted, so
        read_committed readers never see its records, and its state writes are discarded.
        Fenced, the task stops; otherwise its transaction is aborted, to re-read."""
        forget_futures(task.futures)
        task.futures, task.offset, task.open = [], None, False
        task.writes.clear()  # as in _commit: the task's store is reopened or closed at once
        cause = failure_cause(task.producer, exc)
        tp = task.tp
        if isinstance(cause, FENCING):
            logger.warning(
                W_BROKEN, self.name, tp.topic, tp.partition, doing, cause, "the task stops here"
            )
            self.failed.fenced.append(tp)
            self.tasks.pop(tp, None)
            await stop_producer(task.producer)
            return
        logger.warning(W_BROKEN, self.name, tp.topic, tp.partition, doing, cause, "re-reading it")
        self.aborts += 1
        if await self._abort(task):
            self.failed.aborted.append(tp)
        else:  # fenced meanwhile: the task stops
            self.failed.fenced.append(tp)
            self.tasks.pop(tp, None)
            await stop_producer(task.producer)

    def due(self) -> bool:
        """A transaction open for ``commit_interval``, or a task failed: commit now."""
        now, interval = time.monotonic(), self.commit_interval
        return bool(self.failed) or any(
            t.open and now - t.started >= interval for t in self.tasks.values()
        )

    async def commit(self, *, everything: bool = False) -> Failed:
        """Commit the open transactions (those open for ``commit_interval``, or all), at
        once; then write their local state. Returns the tasks that failed."""
        now, interval = time.monotonic(), self.commit_interval
        due = [
            t for t in self.tasks.values() if t.open and (everything or now - t.started >= interval)
        ]
        failed, self.failed = self.failed, Failed()
        if not due:
            return failed
        outcomes = await asyncio.gather(*(self._commit(t) for t in due))
        for task, outcome in zip(due, outcomes, strict=True):
            if outcome is Outcome.ABORTED:
                failed.aborted.append(task.tp)
            elif outcome is Outcome.FENCED:
                failed.fenced.append(task.tp)
                self.tasks.pop(task.tp, None)
                await stop_producer(task.producer)
        return failed

    async def revoke(self) -> None:
        """Before partitions move (the rebalance hooks, holding the lock): every open transaction
        committed. What failed stays pending as a dropped transaction does (:meth:`_drop`): an
        aborted task begins none until the next commit reported it for rewinding. A batch
        fetched before and waiting for the lock may run before the assignment hook seeks the
        partitions: begun at once, it went on from a position past the aborted records and
        committed an offset past outputs never written."""
        failed = await self.commit(everything=True)
        self.failed.aborted.extend(tp for tp in failed.aborted if tp not in self.failed.aborted)
        self.failed.fenced.extend(tp for tp in failed.fenced if tp not in self.failed.fenced)

    async def _commit(self, task: Task) -> Outcome:
        futures, task.futures = task.futures, []
        offset, task.offset = task.offset, None
        writes, task.writes = task.writes, []
        task.open = False
        producer = task.producer
        t0 = time.monotonic()
        rejected = False  # a record batch failed: the producer's sequence numbers are off
        try:
            # Every send's outcome retrieved (a fenced producer fails them all), the first raised.
            for result in await asyncio.gather(*futures, return_exceptions=True):
                if isinstance(result, BaseException):
                    rejected = True
                    raise result
            if offset is not None:
                await producer.send_offsets_to_transaction({task.tp: offset}, self.group_id)
            await producer.commit_transaction()
        except (KafkaError, IllegalOperation, AssertionError) as exc:
            # The error's traceback holds this frame, and the error lives on in the producer's
            # failed futures (a reference cycle, freed only by a full collection): a state batch
            # still referenced keeps its RocksDB store locked after the task closed it, and the
            # task reopened after the rebalance fails ("lock hold by current process"). An
            # aborted task's store is reopened at once too.
            writes.clear()
            # Every fencing error (InvalidProducerEpoch too, and the IllegalOperation or
            # AssertionError of a producer fenced in the background) is the fencing: aborting
            # would fail, and a new producer would fence the partition's owner (:meth:`_abort`).
            cause = failure_cause(producer, exc)
            if isinstance(cause, FENCING):
                logger.warning(W_FENCED, self.name, task.tp.topic, task.tp.partition, cause)
                return Outcome.FENCED  # the caller stops the producer, reading its futures
            self.aborts += 1
            logger.warning(W_ABORTED, self.name, task.tp.topic, task.tp.partition, cause)
            return Outcome.ABORTED if await self._abort(task, renew=rejected) else Outcome.FENCED
        self.commits += 1
        if offset is not None:
            self.committed[task.tp] = offset
        self.commit_seconds += time.monotonic() - t0
        for state, batch in writes:
            state.commit(batch)
        return Outcome.COMMITTED

    async def _abort(self, task: Task, *, renew: bool = False) -> bool:
        """Abort the task's open transaction; False if its producer turned out fenced (the
        caller stops the task). ``renew``: a record batch of it failed (rejected by the broker,
        e.g. MessageSizeTooLarge, or timed out); aiokafka neither bumps the epoch nor resets the
        partition's sequence number then, so every later transaction of that producer failed
        with OutOfOrderSequenceNumber and the task re-read forever — a new producer with the
        same id starts afresh (InitProducerId)."""
        try:
            await task.producer.abort_transaction()
        except (KafkaError, AssertionError) as exc:
            if isinstance(failure_cause(task.producer, exc), FENCING):
                # Not ours any more: a new producer would fence the partition's owner and go on
                # from this zombie's position.
                return False
            # Not abortable (a fatal error): a new producer with the same id aborts it.
            renew = True
        if renew:
            await stop_producer(task.producer)
            if self.closed:
                # The task ends here. A new producer's start was refused by its retry (the agent
                # stopping: StoppedWaiting), which ended the stop before the stores were closed.
                return True
            fresh = await self._start(task.tp, RENEWAL)
            task.producer, task.output = fresh.producer, fresh.output
        return True

    async def abort(self) -> list[TopicPartition]:
        """Abort every open transaction (the batch being processed failed); their partitions."""
        opened = [t for t in self.tasks.values() if t.open]
        for task in opened:
            task.futures, task.offset, task.writes, task.open = [], None, [], False
            self.aborts += 1
            await self._abort(task)
        return [t.tp for t in opened]

    async def close(self) -> Failed:
        """Commit what is open, then stop every producer."""
        self.closed = True
        failed = await self.commit(everything=True)
        await self.stop()
        return failed
