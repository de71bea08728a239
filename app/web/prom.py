"""``GET /metrics``: the worker's tables and queries in the Prometheus text format.

One :class:`~prometheus_client.CollectorRegistry` per app (never the process-global default:
tests run several apps in one process), holding one collector that reads the live counters at
scrape time — nothing is copied on the hot path. Names follow Prometheus conventions: a
``tablestream_`` prefix, ``_total`` on counters, base units (``_seconds``, ``_bytes``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agents.metrics import LATENCY_BUCKETS
from tables import Table

if TYPE_CHECKING:
    from agents.service import Agent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("starting", "waiting for tables", "running", "rebuilding", "stopped", "failed")


def stats_of(table: Table) -> dict[str, Any]:
    """A table's stats as a dict, whatever its kind (``stats()`` renders itself)."""
    stats = table.stats()
    as_dict = getattr(stats, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(vars(stats))


_NAME = re.compile(r"[^a-zA-Z0-9_]")
#: Fields of a source's stats that are not metrics (text, or names).
_NOT_METRICS = frozenset({"name", "kind", "source", "ready", "last_error", "topic"})


class SourceMetrics:
    """An external table's stats shown generically: every number as a gauge
    ``tablestream_source_<field>{table}`` (nested: ``<field>_<sub>``), every text field of a
    nested object as ``..._<sub>{table, <sub>="value"} 1`` (the breaker's state)."""

    def __init__(self) -> None:
        self.families: dict[str, GaugeMetricFamily] = {}

    def _family(self, name: str, extra: str | None = None) -> GaugeMetricFamily:
        if name not in self.families:
            labels = ["table"] + ([extra] if extra else [])
            self.families[name] = GaugeMetricFamily(
                name,
                f"An external table's {name.removeprefix('tablestream_source_')}.",
                labels=labels,
            )
        return self.families[name]

    def add(self, table: str, stats: dict[str, Any], prefix: str = "tablestream_source") -> None:
        for key, value in stats.items():
            if key in _NOT_METRICS:
                continue
            name = f"{prefix}_{_NAME.sub('_', key)}"
            if isinstance(value, bool):
                self._family(name).add_metric([table], 1.0 if value else 0.0)
            elif isinstance(value, int | float):
                self._family(name).add_metric([table], float(value))
            elif isinstance(value, dict) and prefix == "tablestream_source":
                self.add(table, value, name)
            elif isinstance(value, str) and prefix != "tablestream_source":
                self._family(name, _NAME.sub("_", key)).add_metric([table, value], 1.0)


class TablestreamCollector(Collector):
    def __init__(
        self, tables: Callable[[], Iterable[Table]], agents: Callable[[], Iterable[Agent]]
    ) -> None:
        self._tables = tables
        self._agents = agents

    def collect(self) -> Iterator[Metric]:
        yield from self._collect_tables()
        yield from self._collect_queries()

    def _collect_tables(self) -> Iterator[Metric]:
        t = "tablestream_table_"
        rows = GaugeMetricFamily(t + "rows", "Rows (keys) in the table.", labels=["table"])
        changes = CounterMetricFamily(
            t + "changes", "Changes applied, by operation.", labels=["table", "op"]
        )
        read = CounterMetricFamily(t + "records_read", "Source records read.", labels=["table"])
        malformed = CounterMetricFamily(
            t + "malformed_records", "Records sent to the dead letters.", labels=["table"]
        )
        ready = GaugeMetricFamily(
            t + "ready", "1 once the table caught up with its topic.", labels=["table"]
        )
        progress = GaugeMetricFamily(
            t + "restore_progress_ratio",
            "Share of the topic read while loading (1 once ready).",
            labels=["table"],
        )
        lag = GaugeMetricFamily(
            t + "lag_records",
            "Records not yet applied, per partition.",
            labels=["table", "partition"],
        )
        disk = GaugeMetricFamily(
            t + "disk_bytes", "Bytes the store uses on disk.", labels=["table"]
        )
        sources = SourceMetrics()
        for table in self._tables():
            name = table.name
            d = stats_of(table)
            ready.add_metric([name], 1.0 if table.is_ready else 0.0)
            if "size" not in d:  # another table kind (an external source): its own fields
                sources.add(name, d)
                continue
            rows.add_metric([name], d["size"])
            for op in ("insert", "update", "delete"):
                changes.add_metric([name, op], d.get(op + "s", 0))
            read.add_metric([name], d.get("records_read", 0))
            malformed.add_metric([name], d.get("malformed", 0))
            left = 0
            for p, ps in sorted(d.get("partitions", {}).items()):
                if ps.get("lag") is not None:
                    lag.add_metric([name, str(p)], ps["lag"])
                    left += ps["lag"]
            done = d.get("records_read", 0)
            ratio = 1.0 if d.get("ready") else (done / (done + left) if done + left else 0.0)
            progress.add_metric([name], ratio)
            disk.add_metric([name], d.get("bytes_on_disk", 0))
        yield from (rows, changes, read, malformed, ready, progress, lag, disk)
        yield from sources.families.values()

    def _collect_queries(self) -> Iterator[Metric]:
        q = "tablestream_query_"
        labels = ["query", "stage"]
        records_in = CounterMetricFamily(q + "records_in", "Source records read.", labels=labels)
        records_out = CounterMetricFamily(q + "records_out", "Output records sent.", labels=labels)
        dead = CounterMetricFamily(
            q + "dead_letters",
            "Records sent to the dead letters, by reason.",
            labels=[*labels, "reason"],
        )
        lag = GaugeMetricFamily(q + "lag_records", "Source records not yet read.", labels=labels)
        rebuilds = CounterMetricFamily(
            q + "rebuilds", "State rebuilds from the source.", labels=labels
        )
        state = GaugeMetricFamily(
            q + "state", "1 for the stage's current state.", labels=[*labels, "state"]
        )
        latency = HistogramMetricFamily(
            q + "batch_latency_seconds",
            "From a batch's fetch to the broker's ack of its outputs.",
            labels=labels,
        )
        for agent in self._agents():
            s = agent.stats
            lv = [agent.qdef.name, s.kind]
            records_in.add_metric(lv, s.records_in)
            records_out.add_metric(lv, s.records_out)
            for reason, n in sorted(s.dead_letter_reasons.items()):
                dead.add_metric([*lv, reason], n)
            if s.lag is not None:
                lag.add_metric(lv, s.lag)
            rebuilds.add_metric(lv, s.rebuilds)
            for st in STATES:
                state.add_metric([*lv, st], 1.0 if s.state == st else 0.0)
            buckets, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS, float("inf")), s.latency_counts, strict=True):
                running += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric(lv, buckets, s.latency_sum)
        yield from (records_in, records_out, dead, lag, rebuilds, state, latency)


def make_registry(
    tables: Callable[[], Iterable[Table]], agents: Callable[[], Iterable[Agent]]
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TablestreamCollector(tables, agents))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
