"""What the pages, the JSON views and ``/metrics`` show of tables and queries, computed once.

Tables are read through the :class:`tables.protocol.Table` protocol and optional capabilities
checked on the object (``page``, ``versioned``, ``get_changes_since``): other table kinds (an
external database's, say) may lack them. Rates are rolling: :class:`Rates` samples the counters
every second and answers the change per second over the last ``window`` seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tables import Table

if TYPE_CHECKING:
    from agents.service import Agent, PipelineService

#: Seconds of samples kept, and the default window of a rate.
HISTORY_S = 60.0
RATE_WINDOW_S = 10.0


class Rates:
    """Rolling per-second rates of monotonic counters, by name."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def sample(self, name: str, value: float) -> None:
        now = self._clock()
        samples = self._samples.setdefault(name, deque())
        if samples and now - samples[-1][0] < 0.2:  # a page load right after the timer
            samples[-1] = (samples[-1][0], value)
            return
        samples.append((now, value))
        while samples and now - samples[0][0] > HISTORY_S:
            samples.popleft()

    def rate(self, name: str, window: float = RATE_WINDOW_S) -> float | None:
        """Change per second over the last ``window`` seconds; None before two samples."""
        samples = self._samples.get(name)
        if not samples or len(samples) < 2:
            return None
        t1, v1 = samples[-1]
        # The newest sample at least ``window`` old (else the oldest): a rate over >= window.
        t0, v0 = samples[0]
        for t, v in samples:
            if t1 - t < window:
                break
            t0, v0 = t, v
        return None if t1 <= t0 else max(0.0, (v1 - v0) / (t1 - t0))


def table_kind(table: Table) -> str:
    kind = getattr(table, "kind", None)
    if isinstance(kind, str):
        return kind
    base = "reference" if type(table).__name__ == "ReferenceTable" else type(table).__name__
    return f"{base} (versioned)" if getattr(table, "versioned", False) else base


def is_versioned(table: Table) -> bool:
    return bool(getattr(table, "versioned", False)) and hasattr(table, "history")


@dataclass(slots=True)
class TableView:
    """One table as the inspector shows it."""

    name: str
    kind: str
    stats: dict[str, Any]
    updates_per_s: float | None
    read_per_s: float | None
    #: Records left to read while loading (sum of partition lags), their rate and ETA seconds.
    left: int | None
    eta_s: float | None
    progress: float | None  # 0..1 of what was on the topic when the table started
    source: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "updates_per_s": self.updates_per_s,
            "records_read_per_s": self.read_per_s,
            "records_left": self.left,
            "eta_s": self.eta_s,
            "progress": self.progress,
            **({"source": self.source} if self.source else {}),
        }


#: TableStats fields every table reports; anything else a stats object carries (an external
#: source's hits, misses, latency, breaker) is shown generically as "source".
_KNOWN_STATS = frozenset(
    {"name", "topic", "size", "inserts", "updates", "deletes", "malformed", "records_read"}
    | {"last_updated", "ready", "running", "bytes_on_disk", "partitions"}
)


def _stats_dict(table: Table) -> tuple[dict[str, Any], dict[str, Any]]:
    stats = table.stats()
    as_dict = getattr(stats, "as_dict", None)
    body: dict[str, Any] = as_dict() if callable(as_dict) else dict(vars(stats))
    source = {k: v for k, v in body.items() if k not in _KNOWN_STATS}
    return body, source


def sample_table(rates: Rates, table: Table) -> None:
    body, _ = _stats_dict(table)
    changes = sum(int(body.get(k) or 0) for k in ("inserts", "updates", "deletes"))
    rates.sample(f"table:{table.name}:changes", changes)
    rates.sample(f"table:{table.name}:read", int(body.get("records_read") or 0))


def table_view(rates: Rates, table: Table) -> TableView:
    body, source = _stats_dict(table)
    name = table.name
    updates = rates.rate(f"table:{name}:changes")
    read = rates.rate(f"table:{name}:read")
    lags = [p["lag"] for p in body.get("partitions", {}).values() if p.get("lag") is not None]
    left = sum(lags) if lags else None
    eta = None
    if left and read:
        eta = left / read
    progress = None
    if not body.get("ready"):
        done = body.get("records_read", 0)
        progress = done / (done + left) if left is not None and done + left > 0 else 0.0
    return TableView(name, table_kind(table), body, updates, read, left, eta, progress, source)


@dataclass(slots=True)
class QueryView:
    """A continuous query: its SQL and plan, and each stage's counters (two for a stateful,
    repartitioned query: the repartition stage and the aggregation)."""

    name: str
    sql: str
    plan: str
    where: str
    stages: list[dict[str, Any]]

    @property
    def state(self) -> str:
        states = [s["state"] for s in self.stages]
        for worst in ("failed", "rebuilding", "waiting for tables", "starting", "stopped"):
            if worst in states:
                return worst
        return states[0] if states else "starting"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "sql": self.sql,
            "plan": self.plan,
            "where": self.where,
            "stages": self.stages,
        }


def agents_of(pipelines: PipelineService | None) -> list[Agent]:
    return list(pipelines) if pipelines is not None else []


def sample_agents(rates: Rates, agents: Iterable[Agent]) -> None:
    for a in agents:
        rates.sample(f"query:{a.stats.name}:in", a.stats.records_in)
        rates.sample(f"query:{a.stats.name}:out", a.stats.records_out)


def _plan_of(agents: list[Agent]) -> str:
    for a in agents:
        query = getattr(a, "query", None)
        if query is not None:
            try:
                return str(query.explain())
            except Exception as exc:  # a plan is a courtesy: never fail the page for it
                return f"(no plan: {type(exc).__name__}: {exc})"
    return "(compiled once the query starts)"


def statement_text(sql: str, line: int) -> str:
    """The query's own statement for display: from its first line (1-based) to the line ending
    it with ``;``. A query's ``sql`` is its whole pipeline file with the other queries blanked."""
    lines = sql.splitlines()
    if not 0 < line <= len(lines):
        return "\n".join(x.rstrip() for x in lines if x.strip() not in ("", ";"))
    out = []
    for text in lines[line - 1 :]:
        out.append(text.rstrip())
        if text.split("--", 1)[0].rstrip().endswith(";"):
            break
    return "\n".join(out)


def query_views(rates: Rates, pipelines: PipelineService | None) -> Iterator[QueryView]:
    by_query: dict[str, list[Agent]] = {}
    for a in agents_of(pipelines):
        by_query.setdefault(a.qdef.name, []).append(a)
    for name, agents in by_query.items():
        qdef = agents[0].qdef
        stages = []
        for a in agents:
            body = a.stats.as_dict()
            body["in_per_s"] = rates.rate(f"query:{a.stats.name}:in")
            body["out_per_s"] = rates.rate(f"query:{a.stats.name}:out")
            stages.append(body)
        sql = statement_text(qdef.sql, qdef.line)
        yield QueryView(name, sql, _plan_of(agents), qdef.where, stages)
