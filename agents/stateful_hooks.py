"""Stage 2's rebalance hooks (:mod:`agents.stateful`): what a worker does with its tasks when the
group moves partitions. Before they move, in-flight batches are drained and, under exactly-once,
every open transaction committed (what fails stays pending); once assigned, the tasks are opened
or kept and sought — under exactly-once in one hold of the agent's lock with the producers'
start (:func:`agents.transactional.tasks_assigned`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener

from agents.transactional import tasks_assigned
from core.retry import StoppedWaiting

if TYPE_CHECKING:
    from agents.stateful import StatefulAgent

logger = logging.getLogger(__name__)

I_STOPPED = "query %s: stopped while its assignment waited for the broker"


class TaskHooks(ConsumerRebalanceListener):  # type: ignore[misc]
    """The rebalance listener of a :class:`~agents.stateful.StatefulAgent`'s consumer."""

    def __init__(self, agent: StatefulAgent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.agent.revoke()
        txns = self.agent.txns
        if txns is not None:
            async with self.agent._lock:
                # What fails stays pending: the assignment hook's commit reports it (a kept task
                # is reopened from its state), or the loop's (agents.transactional._reopen).
                await txns.revoke()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        txns, consumer = self.agent.txns, self.agent._consumer
        if self.agent._member is not None and consumer is not None:
            self.agent._member.remember(consumer)
        if txns is not None and consumer is not None:
            try:
                await tasks_assigned(self.agent, txns, consumer, set(assigned))
            except StoppedWaiting:
                # Told to stop while the producers' start waited for the broker: nothing
                # assigned was opened; the agent's stop ends the rest.
                logger.info(I_STOPPED, self.agent.qdef.name)
        else:
            await self.agent.assign(set(assigned))
