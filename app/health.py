"""Liveness and readiness of a worker, for the Kubernetes probes (deploy/k8s/worker.yaml).

- ``GET /live``  200 while the event loop turns and nothing died; 503 naming why: the heartbeat
  (a timer beating every second) is older than ``TABLESTREAM_LIVE_MAX_AGE`` seconds — the loop
  was wedged that long (a loop blocked right now does not answer at all, which fails the probe
  too) — or a query or a table loader failed. A restart is the cure for both.
- ``GET /ready`` (a view of the web layer, :mod:`app.web.api`) answers :func:`readiness`: 200 once
  every table caught up with its topic and every query runs; 503 with what it waits for (a table
  loading, a query waiting for its tables, starting or rebuilding). Not ready is no reason to
  restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import faust
from faust.web import Request, Response, View
from mode import Service

from core import codec

if TYPE_CHECKING:
    from agents.service import PipelineService

HEARTBEAT_INTERVAL_S = 1.0
#: The state of a query that is doing its work (agents.metrics.QueryStats.state).
RUNNING = "running"
FAILED = "failed"


class ReadyLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def is_ready(self) -> bool: ...


class TableLike(ReadyLike, Protocol):
    """A table (any kind: ``crashed`` is read when the kind runs as a service)."""


class Heartbeat:
    """When the event loop last ran our timer; its age is how long the loop was away."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: float | None = None
        self.beats = 0

    def beat(self) -> None:
        self.last = self.clock()
        self.beats += 1

    def age(self) -> float:
        """Seconds since the last beat; 0 before the first (the loop is still starting)."""
        return 0.0 if self.last is None else self.clock() - self.last


class HeartbeatService(Service):
    """Beats :class:`Heartbeat` every second. Started with the app (``add_dependency``) as the
    tables and queries are: a faust ``app.timer`` starts only after faust's own consumer group
    was joined, so the queries could run for seconds with no heartbeat at all."""

    def __init__(self, heartbeat: Heartbeat, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heartbeat = heartbeat

    async def on_start(self) -> None:
        self.heartbeat.beat()

    @Service.timer(HEARTBEAT_INTERVAL_S)
    async def _beat(self) -> None:
        self.heartbeat.beat()


def _agents(pipelines: PipelineService | None) -> Sequence[Any]:
    return list(pipelines) if pipelines is not None else []


def liveness(
    heartbeat: Heartbeat, tables: Iterable[TableLike], agents: Sequence[Any], max_age: float
) -> tuple[int, dict[str, Any]]:
    """(status, body) of ``/live``."""
    problems = []
    age = heartbeat.age()
    if age > max_age:
        problems.append(f"event loop wedged: heartbeat {age:.1f}s old (limit {max_age:g}s)")
    for agent in agents:
        if agent.stats.state == FAILED or agent.crashed:
            problems.append(f"query {agent.stats.name} failed: {agent.stats.error or 'crashed'}")
    for table in tables:
        if getattr(table, "crashed", False):
            problems.append(f"table {table.name} failed")
    body = {
        "live": not problems,
        "heartbeat_age_s": round(age, 3),
        "heartbeats": heartbeat.beats,
        "problems": problems,
    }
    return (503 if problems else 200), body


def readiness(tables: Iterable[ReadyLike], agents: Sequence[Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) of ``/ready``: tables caught up and queries running."""
    waiting = sorted(t.name for t in tables if not t.is_ready)
    queries = {a.stats.name: a.stats.state for a in agents if a.stats.state != RUNNING}
    ready = not waiting and not queries
    body = {"ready": ready, "waiting_for": waiting, "queries_not_running": queries}
    return (200 if ready else 503), body


def register_health(
    app: faust.App,
    tables: Iterable[TableLike],
    pipelines: PipelineService | None,
    *,
    max_age: float,
) -> Heartbeat:
    """Mounts ``/live`` and starts the heartbeat timer."""
    heartbeat = Heartbeat()
    all_tables = list(tables)
    app.add_dependency(HeartbeatService(heartbeat, beacon=app.beacon))

    def answer(view: View, status: int, body: Any) -> Response:
        return view.bytes(codec.dumps(body), content_type="application/json", status=status)

    @app.page("/live")
    class Live(View):
        async def get(self, request: Request) -> Response:
            status, body = liveness(heartbeat, all_tables, _agents(pipelines), max_age)
            return answer(self, status, body)

    return heartbeat
