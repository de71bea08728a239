"""Helpers for pipeline tests: a pipeline file with unique topics, a worker running it, waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import produce, rows, unique
from tests.support.worker import Worker, get_json

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR) WITH (topic='{users}');
CREATE TABLE limits (symbol VARCHAR PRIMARY KEY, max_price DECIMAL(10,2)) WITH (topic='{limits}');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      qty BIGINT) WITH (topic='{orders}', partitions='2');

-- IN + EXISTS + a scalar subquery + a stream-table join; 100 / qty fails for qty = 0.
CREATE STREAM checked WITH (topic='{checked}', partitions='2') AS
SELECT o.order_id, u.name, o.price * o.qty AS notional,
       (SELECT max_price FROM limits l WHERE l.symbol = o.symbol) AS max_price
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
  AND EXISTS (SELECT 1 FROM limits l WHERE l.symbol = o.symbol)
  AND 100 / o.qty > 0
EMIT CHANGES;

CREATE TABLE totals WITH (topic='{totals}') AS
SELECT user_id, COUNT(*) AS orders, SUM(price * qty) AS notional
FROM orders GROUP BY user_id EMIT CHANGES;
"""


COMPACT = {"cleanup.policy": "compact"}
USERS = {1: ("ann", "gold"), 2: ("bob", "basic"), 3: ("cy", "gold")}
LIMITS = {"AAPL": "190.00", "MSFT": "420.00"}


async def seed_tables(broker_url: str, names: dict[str, str]) -> None:
    """The users and limits topics with :data:`USERS` and :data:`LIMITS`."""
    await ensure_topics(
        broker_url,
        [
            TopicSpec(names["users"], 1, configs=COMPACT),
            TopicSpec(names["limits"], 1, configs=COMPACT),
        ],
    )
    await produce(
        broker_url,
        names["users"],
        rows((str(i), {"id": i, "name": n, "tier": t}) for i, (n, t) in USERS.items()),
    )
    await produce(
        broker_url,
        names["limits"],
        [
            (s.encode(), f'{{"symbol": "{s}", "max_price": {p}}}'.encode())
            for s, p in LIMITS.items()
        ],
    )


def encoded(orders: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    """Orders keyed by their order id, as JSON."""
    return [(str(o["order_id"]).encode(), codec.dumps(o)) for o in orders]


def topics() -> dict[str, str]:
    return {n: unique(n) for n in ("users", "limits", "orders", "checked", "totals", "dlq")}


def write_pipeline(tmp_path: Path, names: dict[str, str], text: str = PIPELINE) -> Path:
    path = tmp_path / "pipeline.sql"
    path.write_text(text.format(**names))
    return path


def gold_orders(start: int, n: int) -> list[dict[str, Any]]:
    """Orders ``start`` .. ``start + n - 1`` of user 1 (gold) for AAPL (a limit exists) at 1.00:
    every one passes ``checked`` and counts in ``totals``."""
    return [
        {"order_id": i, "user_id": 1, "symbol": "AAPL", "price": Decimal("1.00"), "qty": 1}
        for i in range(start, start + n)
    ]


async def seeded_pipeline(
    broker_url: str, tmp_path: Path, partitions: int = 2
) -> tuple[dict[str, str], dict[str, str]]:
    """Fresh topic names with the tables seeded, the orders topic created with ``partitions``,
    and the environment of a worker running :data:`PIPELINE` over them: (names, env)."""
    names = topics()
    await seed_tables(broker_url, names)
    await ensure_topics(broker_url, [TopicSpec(names["orders"], partitions)])
    return names, worker_env(broker_url, write_pipeline(tmp_path, names), names)


def worker_env(broker_url: str, pipeline: Path, names: dict[str, str]) -> dict[str, str]:
    return {
        "TABLESTREAM_BROKER": broker_url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_DLQ_TOPIC": names["dlq"],
        "TABLESTREAM_QUERY_LOG_INTERVAL": "2",
    }


def queries(worker: Worker) -> dict[str, dict[str, Any]]:
    try:
        status, body = get_json(f"{worker.web}/queries/")
    except OSError:
        return {}
    return {q["name"]: q for q in body["queries"]} if status == 200 else {}


def marked(worker: Worker, query: str) -> Callable[[], bool]:
    """True once stage 2 of the windowed ``query`` read stage 1's first watermark marker (a
    record of the repartition topic) in each of its partitions: until then it has not heard how
    many source partitions there are, so its watermark holds and no record is late yet (as in
    Flink before the first watermark) — a test that checks which records are late waits for it."""

    def check() -> bool:
        q = queries(worker).get(query)
        parts = {} if q is None or q["kind"] != "stateful" else q["partitions"]
        return bool(parts) and all(p["position"] >= 1 for p in parts.values())

    return check


async def until(
    check: Callable[[], Any], what: str, worker: Worker | None = None, timeout: float = 60.0
) -> Any:
    """Poll ``check`` (run in a thread: it may do HTTP) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited while waiting for {what}:\n{worker.tail()}")
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.2)
    tail = worker.tail() if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{tail}")


def processed(worker: Worker, query: str, records: int) -> Callable[[], bool]:
    """True once ``query`` read ``records`` records and has nothing waiting for acks."""

    def check() -> bool:
        q = queries(worker).get(query)
        return q is not None and q["records_in"] >= records and q["lag"] == 0

    return check
