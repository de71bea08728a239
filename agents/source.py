"""How a query's agents (:class:`~agents.agent.QueryAgent`, :class:`~agents.stateful.StatefulAgent`)
read their source topic: the consumer, the transactions under exactly-once, and what a grouped
agent does when the group moves partitions between workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from mode import Service

from agents.config import AgentConfig
from agents.membership import MemberFile
from agents.metrics import QueryStats
from agents.transaction import Transactions
from agents.transactional import txns_assigned, txns_revoked
from core.fetch import highwater
from core.retry import StartupRetry, StoppedWaiting

# Moved to core.stop (the table loader stops its consumer the same way); importable from here.
from core.stop import stop_consumer as stop_consumer

logger = logging.getLogger(__name__)

#: Per-partition fetch size of windowed queries (a few hundred records per partition and fetch).
WINDOWED_FETCH_BYTES = 64 * 1024


def source_consumer(
    cfg: AgentConfig, client: str, group: str | None, *, windowed: bool
) -> AIOKafkaConsumer:
    """A consumer in ``group`` (offsets committed there), or without one (``group`` None: every
    partition is assigned and sought from the agent's own state, so no offset reset applies)."""
    common: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": f"{cfg.app_id}-query-{client}",
        "enable_auto_commit": False,
        # A windowed query has one watermark for all partitions: small per-partition fetches
        # interleave the partitions finely while catching up, so one read far ahead of
        # another does not turn the other's records late.
        "max_partition_fetch_bytes": WINDOWED_FETCH_BYTES if windowed else 8 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        # Tansu holds a fetch for its whole max wait even once data arrived: this bounds the
        # latency a record spends waiting to be fetched.
        "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
        "isolation_level": cfg.isolation_level,
    }
    if group is None:
        return AIOKafkaConsumer(group_id=None, auto_offset_reset="none", **common)
    return AIOKafkaConsumer(
        group_id=group,
        **cfg.instance_of(group),
        auto_offset_reset="earliest",
        session_timeout_ms=int(cfg.session_timeout * 1000),
        heartbeat_interval_ms=max(1000, int(cfg.session_timeout * 100)),
        **common,
    )


def query_transactions(
    cfg: AgentConfig,
    name: str,
    group: str,
    sink_topic: str,
    id_prefix: str,
    service: Service | None = None,
) -> Transactions:
    """A query's transactions (exactly-once, :mod:`agents.transaction`): one producer per task,
    ``transactional.id`` ``<id_prefix>-<partition>``, offsets committed to ``group``, records to
    ``sink_topic`` and the dead letters. Each producer's start is tried again while the broker
    is away (:mod:`core.retry`); ``service``, the agent, stops that at once when it stops."""
    return Transactions(
        name,
        servers=cfg.bootstrap_servers,
        id_prefix=id_prefix,
        group_id=group,
        topics=[sink_topic, cfg.dead_letter_topic],
        client_id=f"{cfg.app_id}-query-{name}",
        commit_interval=cfg.commit_interval,
        retry=StartupRetry(cfg.bootstrap_servers, service),
    )


def show_lag(consumer: AIOKafkaConsumer, stats: QueryStats) -> None:
    """An idle fetch: the high-watermarks the fetch brought, for the lag shown."""
    for tp in consumer.assignment():
        pos, _ = stats.partitions.get(tp.partition, (0, None))
        hw = highwater(consumer, tp)
        if hw is not None:
            stats.partitions[tp.partition] = (pos, hw)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another worker, commit what was acknowledged."""

    def __init__(
        self,
        stats: QueryStats,
        consumer: Callable[[], AIOKafkaConsumer | None],
        drain: Callable[[], Awaitable[None]],
        txns: Transactions | None,
        member: MemberFile | None,
    ) -> None:
        self.stats = stats
        #: The agent's consumer while it runs (None once it stops).
        self.consumer = consumer
        self.drain = drain
        self.txns = txns
        self.member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), 30)
        if self.txns is not None:
            await txns_revoked(self.txns)
        for tp in revoked:
            self.stats.partitions.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "query %s: assigned %s",
            self.stats.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing",
        )
        consumer = self.consumer()
        if consumer is None:
            return
        if self.member is not None:
            self.member.remember(consumer)
        if self.txns is not None:
            try:
                await txns_assigned(self.txns, consumer, set(assigned))
            except StoppedWaiting:
                # Told to stop while the producers' start waited for the broker (see
                # agents.stateful_hooks): the agent's stop ends the rest.
                logger.info("query %s: stopped while its assignment waited", self.stats.name)
                return
        for tp in assigned:
            # Where reading resumes, for the lag shown until a batch of the partition comes.
            committed = await consumer.committed(tp)
            self.stats.partitions[tp.partition] = (committed or 0, None)
