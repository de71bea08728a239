"""A pipeline file run by a real ``faust -A app worker`` on the embedded broker: exact outputs,
a table change deciding a later record, dead letters, the aggregate as a queryable table."""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.deadletter import H_OFFSET, H_REASON, H_SOURCE, H_TOPIC
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import (
    LIMITS,
    USERS,
    processed,
    queries,
    seed_tables,
    topics,
    until,
    worker_env,
    write_pipeline,
)
from tests.support.kafka import produce, read_all, rows
from tests.support.worker import FAUST, ROOT, Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def order(order_id: int, user_id: int, symbol: str, price: str, qty: int) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "user_id": user_id,
        "symbol": symbol,
        "price": Decimal(price),
        "qty": qty,
    }


def expected_checked(o: dict[str, Any], users: dict[int, tuple[str, str]]) -> dict[str, Any] | None:
    """What the `checked` query must emit for ``o`` given the users table at that moment."""
    user = users.get(o["user_id"])
    if user is None or user[1] != "gold" or o["symbol"] not in LIMITS or o["qty"] == 0:
        return None
    return {
        "order_id": o["order_id"],
        "name": user[0],
        "notional": o["price"] * o["qty"],
        "max_price": Decimal(LIMITS[o["symbol"]]),
    }


def headers(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_pipeline_end_to_end(broker: Broker, tmp_path: Path, workers: list[Worker]) -> None:
    names = topics()
    await seed_tables(broker.url, names)
    first = [
        order(1, 1, "AAPL", "10.50", 3),
        order(2, 2, "AAPL", "1.00", 1),  # bob is basic: filtered, until the change below
        order(3, 3, "TSLA", "5.00", 1),  # no limit for TSLA: EXISTS is false
        order(4, 1, "MSFT", "2.00", 0),  # 100 / 0: a dead letter of `checked` only
        order(5, 3, "MSFT", "1.25", 4),
        order(6, 9, "AAPL", "1.00", 1),  # no user 9: the join and IN drop it
    ]
    malformed = [(b"m1", b"{not json"), (b"m2", b"[1, 2]")]
    msgs = [(str(o["order_id"]).encode(), codec.dumps(o)) for o in first]
    await ensure_topics(broker.url, [TopicSpec(names["orders"], 2)])  # as the pipeline declares
    await produce(broker.url, names["orders"], msgs[:3] + malformed[:1] + msgs[3:] + malformed[1:])

    pipeline = write_pipeline(tmp_path, names)
    worker = Worker(tmp_path / "w", worker_env(broker.url, pipeline, names)).start()
    workers.append(worker)
    total_in = len(first) + len(malformed)
    await until(processed(worker, "checked", total_in), "checked to read the first orders", worker)

    # A table change between two records of the same user decides the second one.
    users = dict(USERS)
    users[2] = ("bob", "gold")
    await produce(
        broker.url, names["users"], rows([("2", {"id": 2, "name": "bob", "tier": "gold"})])
    )

    def bob_is_gold() -> bool:
        status, body = get_json(f"{worker.web}/tables/users/2")
        return status == 200 and body["value"]["tier"] == "gold"

    await until(bob_is_gold, "the users table to see bob's change", worker)
    second = [order(7, 2, "AAPL", "2.00", 1), order(8, 1, "MSFT", "0.10", 3)]
    await produce(
        broker.url, names["orders"], [(str(o["order_id"]).encode(), codec.dumps(o)) for o in second]
    )
    total_in += len(second)
    await until(processed(worker, "checked", total_in), "checked to read every order", worker)
    # The aggregate's repartition stage reads every record; the malformed ones stop there (dead
    # letters), so its aggregation stage reads only the decodable ones.
    await until(processed(worker, "totals-repartition", total_in), "totals stage 1", worker)
    decodable = total_in - len(malformed)
    await until(processed(worker, "totals", decodable), "totals to read every order", worker)

    # `checked`: exactly the expected rows, keyed by the order's message key.
    expected = [
        (str(o["order_id"]).encode(), e)
        for o, when in [(o, USERS) for o in first] + [(o, users) for o in second]
        if (e := expected_checked(o, when)) is not None
    ]

    async def checked_out() -> list[Any]:
        return await read_all(broker.url, names["checked"])

    out: list[Any] = []
    for _ in range(50):
        out = await checked_out()
        if len(out) >= len(expected):
            break
        await asyncio.sleep(0.2)
    got = sorted(
        ((r.key, codec.loads_exact(r.value)) for r in out), key=lambda kv: kv[1]["order_id"]
    )
    assert got == expected
    assert [k for k, v in got if v["order_id"] == 7] == [b"7"]  # bob's second order went through

    # `totals`: the aggregate's last row per key is each user's total over every decodable order
    # (the division is only in `checked`), and the same rows are a table on the web view.
    totals: dict[str, dict[str, Any]] = {}
    for o in first + second:
        t = totals.setdefault(
            str(o["user_id"]), {"user_id": o["user_id"], "orders": 0, "notional": 0}
        )
        t["orders"] += 1
        t["notional"] += o["price"] * o["qty"]
    sink = {
        r.key.decode(): codec.loads_exact(r.value)
        for r in await read_all(broker.url, names["totals"])
    }
    assert sink == totals

    def table_rows() -> dict[str, Any] | None:
        status, body = get_json(f"{worker.web}/tables/totals/?limit=100")
        if status != 200:
            return None
        got = {r["key"]: r["value"] for r in body["rows"]}
        return got if len(got) == len(totals) and got == _json(totals) else None

    await until(table_rows, "the totals table on the web view", worker)

    # Dead letters: original bytes, topic/offset and reason, from each query that read them.
    dead = await read_all(broker.url, names["dlq"])
    by_source: dict[str, list[tuple[bytes, bytes, dict[str, str]]]] = {}
    for r in dead:
        h = headers(r)
        by_source.setdefault(h[H_SOURCE], []).append((r.key, r.value, h))
    checked_dead = sorted(by_source["query:checked"])
    assert [(k, v) for k, v, _ in checked_dead] == sorted([*malformed, msgs[3]])
    reasons = {k: h[H_REASON] for k, _, h in checked_dead}
    assert "not valid JSON" in reasons[b"m1"]
    assert "not an object" in reasons[b"m2"]
    assert reasons[b"4"].startswith("DivisionByZeroError")
    assert {h[H_TOPIC] for _, _, h in checked_dead} == {names["orders"]}
    assert all(h[H_OFFSET].isdigit() for _, _, h in checked_dead)
    assert sorted((k, v) for k, v, _ in by_source["query:totals"]) == sorted(malformed)

    # `faust -A app tables` shows the live stats of the running worker.
    listing = await asyncio.to_thread(
        subprocess.run,
        [FAUST, "-A", "app", "tables"],
        cwd=ROOT,
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    by_name = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert by_name["users"][1:4] == [names["users"], "true", str(len(USERS))]
    assert by_name["totals"][1:4] == [names["totals"], "true", str(len(totals))]

    stats = queries(worker)
    assert stats["checked"]["records_in"] == total_in
    assert stats["checked"]["records_out"] == len(expected)
    assert stats["checked"]["dead_letters"] == 3
    assert stats["totals-repartition"]["dead_letters"] == 2
    assert stats["totals-repartition"]["kind"] == "repartition"
    assert stats["totals"]["records_in"] == decodable
    assert stats["totals"]["kind"] == "stateful"


def _json(value: Any) -> Any:
    """``value`` as the test's HTTP helper reads the web view's JSON (stdlib json)."""
    return json.loads(codec.dumps(value))


async def test_a_bad_pipeline_file_stops_the_worker_with_file_line_column(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = topics()
    path = write_pipeline(tmp_path, names)
    path.write_text(path.read_text().replace("u.name,", "u.nmae,"))
    worker = Worker(tmp_path / "w", worker_env(broker.url, path, names)).start()
    workers.append(worker)
    assert worker.proc is not None
    code = await asyncio.to_thread(worker.proc.wait, 60)
    assert code == 2
    log = worker.log.read_text()
    assert log.startswith(f"error: {path}:8:20: unknown column 'u.nmae'")
    assert "Traceback" not in log
