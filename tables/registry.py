"""The tables of one worker: builds each through its kind (:mod:`tables.kinds`), creates the
Kafka tables' topics, owns the dead-letter producer, starts them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from mode import Service

from core.errors import ConfigError
from core.retry import StartupRetry
from tables.cache_settings import DEFAULTS, CacheSettings
from tables.deadletter import DeadLetterWriter, dead_letter_topic_spec
from tables.kinds import TableEnv, table_kind
from tables.protocol import Table
from tables.spec import TableSpec
from tables.topics import TopicSpec, ensure_topics

COMPACT = {"cleanup.policy": "compact"}


class TableRegistry(Service):
    """Starts every table of a worker and answers ``registry[name]``."""

    def __init__(
        self,
        specs: Sequence[TableSpec],
        *,
        data_dir: Path,
        bootstrap_servers: str,
        dead_letter_topic: str,
        default_partitions: int = 1,
        fetch_max_records: int = 10_000,
        row_cache: CacheSettings = DEFAULTS,
        client_id: str = "tablestream",
        read_committed: bool = False,
        max_skew_ms: int | None = 300_000,
        secrets: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.specs = tuple(specs)
        self.data_dir = data_dir
        self.bootstrap_servers = bootstrap_servers
        self.dead_letter_topic = dead_letter_topic
        self.default_partitions = default_partitions
        self._producer: AIOKafkaProducer | None = None
        self._dead_letters = DeadLetterWriter(None, dead_letter_topic)
        env = TableEnv(
            data_dir=data_dir,
            bootstrap_servers=bootstrap_servers,
            dead_letters=self._dead_letters,
            fetch_max_records=fetch_max_records,
            row_cache=row_cache,
            client_id=client_id,
            read_committed=read_committed,
            max_skew_ms=max_skew_ms,
            beacon=self.beacon,
            secrets=secrets or {},
        )
        self.tables: dict[str, Table] = {
            spec.name: table_kind(spec.name, spec.kind).create(spec, env) for spec in self.specs
        }

    @property
    def label(self) -> str:
        return "TableRegistry"

    def __getitem__(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(
                f"no table named {name!r}; tables: {', '.join(sorted(self.tables)) or 'none'}",
                table=name,
            ) from None

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables.values())

    def __len__(self) -> int:
        return len(self.tables)

    async def on_start(self) -> None:
        topics = [
            TopicSpec(s.topic, s.partitions or self.default_partitions, configs=COMPACT)
            for s in self.specs
            if s.kind == "kafka"
        ]
        # The one place the dead-letter topic is created: the tables' and the queries' dead letters.
        topics.append(dead_letter_topic_spec(self.dead_letter_topic, self.default_partitions))
        # Each step tried again while the broker is away (a worker started during an outage).
        retry = StartupRetry(self.bootstrap_servers, self)
        await retry(
            "create the tables' topics", lambda: ensure_topics(self.bootstrap_servers, topics)
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5
        )
        await retry("start the dead-letter producer", self._producer.start)
        self._dead_letters.producer = self._producer
        for table in self.tables.values():
            if isinstance(table, Service):  # tables that load or connect run as services
                await self.add_runtime_dependency(table)

    async def on_shutdown(self) -> None:
        # After the tables stopped (children stop before on_shutdown): no loader is mid-send.
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        for table in self.tables.values():
            if not await table.wait_until_ready(timeout):
                return False
        return True
