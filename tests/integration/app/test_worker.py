"""`faust -A app worker`, as users run it, against the embedded broker."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from app.broker import Broker
from tests.support.kafka import create_topic, final_state, produce, rows, unique
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def test_two_workers_of_one_app_each_hold_every_key(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    topic = await create_topic(broker.url, unique("users"), partitions=4)
    msgs = rows((str(i), {"id": i, "v": 0}) for i in range(5_000))
    await produce(broker.url, topic, msgs)
    env = {
        "TABLESTREAM_BROKER": broker.url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_TABLES": f"users:{topic}:id",
    }
    workers += [Worker(tmp_path / n, env).start() for n in ("a", "b")]
    for w in workers:
        stats = await asyncio.to_thread(w.table, "users")
        assert stats["size"] == 5_000
        assert get_json(f"{w.web}/ready") == (
            200,
            {"ready": True, "waiting_for": [], "queries_not_running": {}},
        )

    # A live change reaches both; every key agrees on both.
    changed = rows([("17", {"id": 17, "v": 1}), ("18", None)])
    await produce(broker.url, topic, changed)
    expected = final_state(msgs + changed)
    for w in workers:
        for _ in range(100):
            status, body = get_json(f"{w.web}/tables/users/17")
            if body.get("value") == expected["17"]:
                break
            await asyncio.sleep(0.1)
        assert body == {"key": "17", "value": expected["17"]}
        assert get_json(f"{w.web}/tables/users/18")[0] == 404
        for key in random.Random(3).sample(sorted(expected), 50):
            assert get_json(f"{w.web}/tables/users/{key}") == (
                200,
                {"key": key, "value": expected[key]},
            )

    # Paging walks every row exactly once, in key order.
    seen: list[str] = []
    after = None
    while True:
        url = f"{workers[0].web}/tables/users/?limit=1000" + (f"&after={after}" if after else "")
        status, body = get_json(url)
        assert status == 200
        seen += [r["key"] for r in body["rows"]]
        after = body["next"]
        if after is None:
            break
    assert seen == sorted(expected)

    status, body = get_json(f"{workers[0].web}/tables/")
    assert [t["name"] for t in body["tables"]] == ["users"]
    status, body = get_json(f"{workers[0].web}/tables/nope/")
    assert status == 404
    assert body["tables"] == ["users"]


async def test_worker_restart_resumes_from_local_state(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    topic = await create_topic(broker.url, unique("prices"), partitions=2)
    first = rows((f"p{i}", {"px": i}) for i in range(3_000))
    await produce(broker.url, topic, first)
    env = {
        "TABLESTREAM_BROKER": broker.url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_TABLES": f"prices:{topic}",
    }
    w = Worker(tmp_path / "w", env).start()
    workers.append(w)
    assert (await asyncio.to_thread(w.table, "prices"))["records_read"] == 3_000
    w.stop()

    tail = rows((f"p{i}", {"px": -i}) for i in range(500))
    await produce(broker.url, topic, tail)
    w.start()
    stats = await asyncio.to_thread(w.table, "prices")
    assert stats["records_read"] == 500
    assert stats["size"] == len(final_state(first + tail))
    assert get_json(f"{w.web}/tables/prices/p7")[1]["value"] == {"px": -7}
