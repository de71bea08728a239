"""/live and /ready decisions (app.health) over real QueryStats and a clock we move."""

from __future__ import annotations

from dataclasses import dataclass

from agents.metrics import QueryStats
from app.health import Heartbeat, liveness, readiness


@dataclass
class Table:
    name: str
    is_ready: bool = True
    crashed: bool = False


@dataclass
class Agent:
    """What the probes read of a query agent: its stats and mode's crashed flag."""

    stats: QueryStats
    crashed: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def agent(name: str, state: str, error: str | None = None) -> Agent:
    stats = QueryStats(name, "orders", name, "stateless", state=state, error=error)
    return Agent(stats)


def test_live_while_the_heartbeat_is_fresh_and_nothing_failed() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    assert liveness(beat, [Table("users")], [], 30)[0] == 200  # no beat yet: still starting
    beat.beat()
    clock.now += 29.5
    status, body = liveness(beat, [Table("users")], [agent("q", "running")], 30)
    assert status == 200
    assert body == {"live": True, "heartbeat_age_s": 29.5, "heartbeats": 1, "problems": []}


def test_a_wedged_loop_or_a_failed_query_or_table_is_not_live() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    beat.beat()
    clock.now += 31
    failed = agent("checked", "failed", "KafkaError: gone")
    crashed = agent("totals", "running")
    crashed.crashed = True
    status, body = liveness(beat, [Table("users", crashed=True)], [failed, crashed], 30)
    assert status == 503
    assert body["problems"] == [
        "event loop wedged: heartbeat 31.0s old (limit 30s)",
        "query checked failed: KafkaError: gone",
        "query totals failed: crashed",
        "table users failed",
    ]


def test_ready_needs_every_table_caught_up_and_every_query_running() -> None:
    tables = [Table("users"), Table("limits", is_ready=False)]
    queries = [agent("checked", "waiting for tables"), agent("gold", "running")]
    status, body = readiness(tables, queries)
    assert status == 503
    assert body == {
        "ready": False,
        "waiting_for": ["limits"],
        "queries_not_running": {"checked": "waiting for tables"},
    }
    tables[1].is_ready = True
    queries[0].stats.state = "running"
    assert readiness(tables, queries) == (
        200,
        {"ready": True, "waiting_for": [], "queries_not_running": {}},
    )
    queries[1].stats.state = "rebuilding"
    assert readiness(tables, queries)[1]["queries_not_running"] == {"gold": "rebuilding"}
