"""A query's source read as a global table is: every partition on every worker (no consumer
group), resumed from the positions stored with the query's state in RocksDB
(:class:`agents.state.QueryState`) and verified against them before the state is trusted.

What :class:`agents.agent.QueryAgent` does for a stateful query whose group key is not a
function of the stream record alone (it reads a joined table's columns), so that it cannot be
repartitioned before the join (see :mod:`agents.agent`). The agent keeps the loop, the rebuild
and the compiled query; this module owns the state, the assignment and the verification.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.metrics import QueryStats
from agents.pipeline import QueryDef
from agents.process import BatchCounts
from agents.state import QueryState, Verifier
from agents.watermarks import PartitionClock
from sql import CompiledQuery, StateError
from tables.store import StoreBatch

logger = logging.getLogger(__name__)

W_REBUILD = "query %r: local state does not fit topic %r (%s); rebuilding from the earliest offset"
I_STATEFUL = (
    "query %s is stateful and not repartitioned (%s): this worker reads every partition of %r and"
    " holds the whole state (every worker does; results are correct, outputs repeat once per"
    " worker)"
)
W_WATERMARK = (
    "query %s: one watermark over %r (%d partitions); while catching up, a partition read"
    " ahead of another can make the other's records late"
)


class GlobalSource:
    """Every partition of ``topic`` assigned to this worker's consumer, and the query's state
    under ``data_dir/queries/<query>/all``."""

    def __init__(self, qdef: QueryDef, topic: str, data_dir: Path, stats: QueryStats) -> None:
        self.qdef = qdef
        self.topic = topic
        self.stats = stats
        self.state = QueryState(data_dir / "queries" / qdef.name / "all", topic)
        self.verifier = Verifier()
        self.tps: list[TopicPartition] = []

    def assign(
        self, consumer: AIOKafkaConsumer, partitions: Iterable[int], *, windowed: bool, clock: bool
    ) -> None:
        """Every partition assigned, the state opened (then :meth:`seek`). ``clock``: the query
        has a watermark per partition (:class:`agents.watermarks.PartitionClock`)."""
        self.tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self.tps)
        logger.info(I_STATEFUL, self.qdef.name, self.qdef.not_repartitioned, self.topic)
        if len(self.tps) > 1 and windowed and not clock:
            logger.warning(W_WATERMARK, self.qdef.name, self.topic, len(self.tps))
        self.state.open()

    async def seek(
        self,
        consumer: AIOKafkaConsumer,
        query: CompiledQuery,
        clock: PartitionClock | None,
        recompile: Callable[[], CompiledQuery],
    ) -> None:
        """The stored state restored into ``query`` and each partition sought to its stored
        position (the last applied record re-read, to verify); a stored state that does not
        restore is dropped, the query compiled afresh (``recompile``) and read from the start."""
        state = self.state
        positions, fingerprints = state.positions(), state.fingerprints()
        if positions:
            try:
                items = state.items()
                query.restore_state(items if clock is None else clock.restore(items))
            except (StateError, pickle.UnpicklingError, ValueError, TypeError) as exc:
                logger.warning(W_REBUILD, self.qdef.name, self.topic, f"stored state: {exc}")
                self.stats.rebuilds += 1
                state.reset()
                recompile()
                positions, fingerprints = {}, {}
        self.verifier = Verifier()
        for tp in self.tps:
            pos = positions.get(tp.partition, 0)
            fp = fingerprints.get(tp.partition)
            self.stats.partitions[tp.partition] = (pos, None)
            if pos > 0 and fp is not None:
                self.verifier.expect(tp, fp)
                consumer.seek(tp, fp.offset)
            elif pos > 0:
                consumer.seek(tp, pos)
            else:
                await consumer.seek_to_beginning(tp)

    def check_highwaters(self, consumer: AIOKafkaConsumer) -> None:
        """A topic that ends before the offset the state reflects is not the one it came from
        (a fetch past the end may just come back empty: checked on every step)."""
        for tp in self.tps:
            pos = self.stats.partitions.get(tp.partition, (0, None))[0]
            Verifier.check_highwater(tp, consumer.highwater(tp), pos)

    def verified(self, fetched: dict[TopicPartition, Any]) -> dict[TopicPartition, Any]:
        """``fetched`` without the re-read last applied records (:meth:`seek`), checked."""
        if not self.verifier.pending:
            return fetched
        verify = self.verifier.check
        return {tp: verify(tp, msgs) for tp, msgs in fetched.items()}

    def batch(
        self, query: CompiledQuery, clock: PartitionClock | None, counts: BatchCounts
    ) -> StoreBatch:
        """The state the batch changed, with its partitions' positions (written after its acks)."""
        dirty = query.dirty_state()
        if clock is not None:
            dirty.update(clock.dirty_state())
        return self.state.batch(dirty, counts.last)
