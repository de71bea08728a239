"""A worker with tables, queries and dead letters for the inspector tests (JSON and browser)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import processed, until
from tests.support.kafka import produce, rows, unique
from tests.support.worker import Worker, get_json

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR)
  WITH (topic='{users}', versions='10');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, qty BIGINT) WITH (topic='{orders}');

-- 100 / qty fails for qty = 0: a dead letter.
CREATE STREAM checked WITH (topic='{checked}') AS
SELECT o.order_id, u.name, 100 / o.qty AS share
FROM orders o JOIN users u ON u.id = o.user_id
EMIT CHANGES;

CREATE TABLE totals WITH (topic='{totals}') AS
SELECT user_id, COUNT(*) AS orders FROM orders GROUP BY user_id EMIT CHANGES;
"""

XSS = "<script>alert(1)</script>"
USERS = 60


@dataclass
class Inspected:
    worker: Worker
    names: dict[str, str]

    @property
    def web(self) -> str:
        return self.worker.web


def user(i: int, tier: str | None = None) -> dict[str, object]:
    name = XSS if i == 7 else f"user{i}"
    return {"id": i, "name": name, "tier": tier or ("gold" if i % 10 == 0 else "basic")}


async def start_inspected(broker: Broker, tmp_path: Path) -> Inspected:
    names = {n: unique(n) for n in ("users", "orders", "checked", "totals", "dlq")}
    compact = {"cleanup.policy": "compact"}
    await ensure_topics(broker.url, [TopicSpec(names["users"], 1, configs=compact)])
    await produce(broker.url, names["users"], rows((str(i), user(i)) for i in range(1, USERS + 1)))
    # Key 5 changes twice, at distinct times: a history of three versions.
    for tier in ("silver", "gold"):
        await asyncio.sleep(0.01)
        await produce(broker.url, names["users"], rows([("5", user(5, tier))]))
    pipeline = tmp_path / "pipeline.sql"
    pipeline.write_text(PIPELINE.format(**names))
    env = {
        "TABLESTREAM_BROKER": broker.url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_DLQ_TOPIC": names["dlq"],
    }
    worker = Worker(tmp_path / "w", env).start()
    await asyncio.to_thread(worker.table, "users")
    orders = [{"order_id": n, "user_id": 1 + n % 5, "qty": n % 4} for n in range(1, 21)]
    msgs = [(str(o["order_id"]).encode(), codec.dumps(o)) for o in orders]
    msgs.append((b"bad", b"\x00\xff<b>binary</b>"))  # not JSON: a dead letter shown as hex
    await produce(broker.url, names["orders"], msgs)
    await until(processed(worker, "checked", len(msgs)), "checked to read the orders", worker)
    return Inspected(worker, names)


def dead_letter_count(web: str) -> int:
    status, body = get_json(f"{web}/dead-letters/")
    return len(body["dead_letters"]) if status == 200 else 0


@pytest.fixture(scope="module")
def live(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inspected]:
    """One inspected worker per test module and broker (stopped at its end). Set up in a thread
    of its own: Playwright's sync API keeps an event loop running in the test thread."""
    path = tmp_path_factory.mktemp("inspector")
    with ThreadPoolExecutor(1) as pool:
        inspected = pool.submit(asyncio.run, start_inspected(broker, path)).result()
    yield inspected
    inspected.worker.stop()
