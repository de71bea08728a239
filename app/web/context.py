"""What the views of one worker read: its tables, its queries, rates, the metrics registry."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faust
from prometheus_client import CollectorRegistry

from app.web.http import HttpError
from app.web.model import Rates, agents_of, sample_agents, sample_table
from app.web.prom import make_registry
from sql import RelationSchema
from tables import Change, ChangeFeedTable, Table

#: Changes kept per table for the "latest changes" list.
RECENT_CHANGES = 20

if TYPE_CHECKING:
    from agents.service import Agent, PipelineService


@dataclass
class WebContext:
    app: faust.App
    registry: Iterable[Table]
    pipelines: PipelineService | None
    bootstrap_servers: str
    dead_letter_topic: str
    rates: Rates = field(default_factory=Rates)
    metrics: CollectorRegistry = field(init=False)
    recent_changes: dict[str, deque[Change]] = field(default_factory=dict)
    #: Inferred table columns reused by pull queries, and when they were last cleared.
    pull_schemas: dict[str, RelationSchema] = field(default_factory=dict)
    pull_schemas_at: float = 0.0

    def __post_init__(self) -> None:
        self.metrics = make_registry(self.tables, self.agents)
        for t in self.registry:
            # One bounded append per change: the "latest changes" of every table kind that
            # has a change feed (an external source's table has none).
            if isinstance(t, ChangeFeedTable):
                recent: deque[Change] = deque(maxlen=RECENT_CHANGES)
                self.recent_changes[t.name] = recent
                # It keeps the last few: the table need not make every change for it (a
                # result table's loader then decodes no row but those, tables/tail.py).
                t.subscribe(recent.append, last=RECENT_CHANGES)

    def tables(self) -> list[Table]:
        return sorted(self.registry, key=lambda t: t.name)

    def table(self, name: str) -> Table:
        """The table ``name`` (exact, else case-insensitive); 404 naming the tables there are."""
        tables = {t.name: t for t in self.registry}
        table = tables.get(name) or {k.lower(): t for k, t in tables.items()}.get(name.lower())
        if table is None:
            raise HttpError(404, f"no table named {name!r}", tables=sorted(tables))
        return table

    def agents(self) -> list[Agent]:
        return agents_of(self.pipelines)

    def sample(self) -> None:
        """Counters into the rolling rates (every second, and on each page load)."""
        for t in self.registry:
            sample_table(self.rates, t)
        sample_agents(self.rates, self.agents())
