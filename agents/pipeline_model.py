"""A pipeline's data model: its streams, its queries and the topics they need.

Read from pipeline files by :mod:`agents.pipeline` (which re-exports these names); used by the
agents to wire each query to its topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tables.spec import TableSpec
from tables.topics import TopicSpec

COMPACT = {"cleanup.policy": "compact"}
FOREVER = {"retention.ms": "-1"}


@dataclass(frozen=True, slots=True)
class StreamDef:
    """A stream's topic: declared (``CREATE STREAM s (...) WITH (...)``) or a query's output."""

    name: str
    topic: str
    partitions: int | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class QueryDef:
    """One continuous query: its SQL (the file with other queries blanked) and its wiring."""

    name: str
    path: Path
    sql: str
    sink_kind: str  # "stream" | "table"
    sink_topic: str
    source: str  # the stream it reads, lower case
    reads: tuple[str, ...]  # tables it reads, lower case
    stateful: bool = False
    line: int = 0
    #: Stateful and repartitioned by its group key (:mod:`agents.repartition`); else why not.
    repartition: bool = False
    not_repartitioned: str = ""
    #: Stateful and co-partitioned: its GROUP BY holds the source's record key, so each source
    #: partition is aggregated in place (:mod:`agents.copartition`); ``key_column`` is the
    #: declared column each record's key must be (None: GROUP BY ``_key``).
    copartitioned: bool = False
    key_column: str | None = None
    #: How its groups reach their tasks, and why (EXPLAIN's ``Partitioning`` line).
    partitioning: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class Pipeline:
    """Everything the worker needs from its pipeline files."""

    tables: dict[str, TableSpec] = field(default_factory=dict)  # lower-case name -> spec
    streams: dict[str, StreamDef] = field(default_factory=dict)
    queries: list[QueryDef] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)

    def topics(self, default_partitions: int) -> list[TopicSpec]:
        """Stream topics (sources and sinks) and aggregate sink topics to create if missing."""
        out: dict[str, TopicSpec] = {}
        for s in self.streams.values():
            out.setdefault(s.topic, TopicSpec(s.topic, s.partitions or default_partitions))
        for q in self.queries:
            if q.sink_kind == "table":
                spec = self.tables[q.name.lower()]
                parts = spec.partitions or default_partitions
                out[q.sink_topic] = TopicSpec(q.sink_topic, parts, configs=COMPACT)
        return list(out.values())

    def source_topic(self, query: QueryDef) -> str:
        return self.streams[query.source].topic

    def repartition_topics(
        self, app_id: str, existing: Mapping[str, int], default_partitions: int
    ) -> list[TopicSpec]:
        """The repartition topic of every repartitioned query: the partitions of the query (its
        sink's ``partitions`` option, else its source topic's count in ``existing``), kept
        forever (``retention.ms=-1``: it is replayed to rebuild state)."""
        out = []
        for q in self.queries:
            if not q.repartition:
                continue
            sink = self.tables.get(q.name.lower()) if q.sink_kind == "table" else None
            declared = sink.partitions if sink is not None else None
            if q.sink_kind == "stream":
                declared = self.streams[q.name.lower()].partitions
            source = self.streams[q.source]
            parts = (
                declared or existing.get(source.topic) or source.partitions or default_partitions
            )
            out.append(TopicSpec(repartition_topic(app_id, q.name), parts, configs=FOREVER))
        return out


def repartition_topic(app_id: str, query: str) -> str:
    """The internal topic a stateful query's records go through, partitioned by group key."""
    return f"{app_id}-{query}-repartition"
