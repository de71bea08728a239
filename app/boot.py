"""What a worker starts, in which order: faust's boot strategy for tablestream.

faust's default strategy starts its own Kafka clients: a producer, a consumer in a thread of its
own, the leader assignor (which creates the ``<app id>-__assignor-__leader`` topic) and the topic
Conductor (which declares it again and subscribes faust's consumer group). tablestream uses none
of them: its tables and queries run their own aiokafka clients (``agents/__init__.py`` says
why), and faust's group reads nothing. They were also where a broker outage during start-up
stopped the worker: the Conductor's declaration of the assignor topic failed on
``NodeNotReadyError`` inside a background task of faust's, which crashes the app, with no way to
retry it from outside. So the worker starts, in this order:

1. faust's sensors and web server: ``/live`` and ``/ready`` answer from the first second (503
   while the broker is away or the tables load);
2. :class:`BrokerGate`: waits until the broker answers a metadata request, trying again with a
   growing pause and logging each try (:mod:`core.retry`);
3. the runtime's services (:attr:`app.factory.Runtime.services`): the tables, then the queries.
   Their own start-up steps that need the broker retry the same way, for a broker lost after
   the gate let them through.

A worker that is told to stop while it waits stops at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from aiokafka.errors import KafkaConnectionError
from faust.app.base import BootStrategy
from mode import Service, ServiceT

from app.probe import broker_answers
from core.retry import StartupRetry


class BrokerGate(Service):
    """Started before anything that needs the broker; done once the broker answers."""

    def __init__(self, bootstrap_servers: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap_servers = bootstrap_servers

    @property
    def label(self) -> str:
        return "BrokerGate"

    async def on_start(self) -> None:
        await StartupRetry(self.bootstrap_servers, self)("reach the broker", self._answers)

    async def _answers(self) -> None:
        if not await broker_answers(self.bootstrap_servers):
            raise KafkaConnectionError("no answer to a metadata request")


class TablestreamBoot(BootStrategy):
    """faust's web server and sensors; no faust Kafka client; then the runtime's services."""

    enable_kafka = False

    def server(self) -> Iterable[ServiceT]:
        runtime = getattr(self.app, "runtime", None)
        services = runtime.services if runtime is not None else ()
        return self._chain(self.sensors(), self.web_server(), services)


class TablestreamApp(faust.App):
    """faust's App with :class:`TablestreamBoot`."""

    BootStrategy = TablestreamBoot
