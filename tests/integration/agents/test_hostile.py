"""Thousands of hostile records mixed with valid ones on stream and table topics, against a real
worker: it stays up, every valid output is exact, every hostile record is a dead letter with a
reason (from each query or table that read it), and no valid record is one."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import EmbeddedBroker
from core import codec
from tables.deadletter import H_OFFSET, H_PARTITION, H_REASON, H_SOURCE, H_TOPIC
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import processed, queries, until, worker_env
from tests.support.kafka import read_all, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR, credit DECIMAL(10,2))
  WITH (topic='{users}');
CREATE TABLE notes WITH (topic='{notes}', key='id');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, price DECIMAL(10,2), qty BIGINT,
                      note VARCHAR) WITH (topic='{orders}', partitions='2');

CREATE STREAM checked WITH (topic='{checked}', partitions='2') AS
SELECT o.order_id, u.name, o.price * o.qty AS notional, o.note
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold')
EMIT CHANGES;

CREATE TABLE totals WITH (topic='{totals}') AS
SELECT user_id, COUNT(*) AS n, SUM(price * qty) AS total FROM orders GROUP BY user_id EMIT CHANGES;
"""

DEEP = b"[" * 10_000 + b"]" * 10_000
MB = 900 * 1024  # a "1 MB" value: under the producer's default 1 MiB request limit
BIG = 18446744073709551617  # 2^64 + 1
Message = tuple[bytes | None, bytes]


def j(fields: dict[str, Any]) -> bytes:
    return codec.dumps(fields)


def hostile(
    fields: Callable[[int], dict[str, Any]], key_field: str
) -> list[Callable[[int], bytes]]:
    """Values that must never be stored or processed; ``fields(i)`` is a valid record's."""

    def with_(**changes: Any) -> Callable[[int], bytes]:
        return lambda i: j({**fields(i), **changes})

    def raw(fmt: bytes) -> Callable[[int], bytes]:
        return lambda i: fmt.replace(b"ID", str(i).encode())

    return [
        raw(b'{"' + key_field.encode() + b'": ID,'),  # invalid JSON
        raw(b""),  # an empty value (not a tombstone)
        raw(b'{"' + key_field.encode() + b'": ID, "name": "\xff\xfe"}'),  # invalid UTF-8
        raw(b"[ID, 2, 3]"),
        raw(b"ID"),
        raw(b'"ID"'),
        raw(b"null"),
        raw(b'{"' + key_field.encode() + b'": ID, "x": ' + DEEP + b"}"),
        raw(
            b'{"' + key_field.encode() + b'": ID, "deep": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}"
        ),
    ]


def user(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user-{i}-ü", "tier": "gold" if i % 3 else "basic", "credit": "1.00"}


def note(i: int) -> dict[str, Any]:
    return {"id": f"n{i}", "ключ": "значение", "n": BIG * i, "nested": [{"a": None}]}


def order(i: int, users: int) -> dict[str, Any]:
    return {"order_id": i, "user_id": i % users, "price": "12.25", "qty": i % 7, "note": "x"}


def hostile_users() -> list[Callable[[int], bytes]]:
    typed = [
        lambda i: j({**user(i), "id": "abc"}),
        lambda i: j({**user(i), "id": BIG}),
        lambda i: j({k: v for k, v in user(i).items() if k != "id"}),  # missing key field
        lambda i: codec.dumps(user(i))[:-1] + b', "credit": NaN}',
        lambda i: codec.dumps(user(i))[:-1] + b', "credit": Infinity}',
        lambda i: j({**user(i), "credit": "12345678901.00"}),  # over DECIMAL(10,2)
        lambda i: j({**user(i), "credit": [1]}),
        lambda i: j({**user(i), "id": {}}),
    ]
    return hostile(user, "id") + typed


def hostile_notes() -> list[Callable[[int], bytes]]:
    return [
        *hostile(note, "id"),
        lambda i: j({"no_id": i}),
        lambda i: j({"id": None, "n": i}),
        lambda i: j({"id": [i]}),  # a key that is not a scalar
        lambda i: b'{"id": "n' + str(i).encode() + b'", "x": NaN}',
    ]


def hostile_orders(users: int) -> list[Callable[[int], bytes]]:
    typed = [
        lambda i: j({**order(i, users), "order_id": "abc"}),
        lambda i: j({**order(i, users), "user_id": BIG}),
        lambda i: j({**order(i, users), "qty": 10**30}),
        lambda i: j({**order(i, users), "qty": [1]}),
        lambda i: j({**order(i, users), "price": {"a": 1}}),
        lambda i: codec.dumps(order(i, users))[:-1] + b', "price": NaN}',
        lambda i: codec.dumps(order(i, users))[:-1] + b', "price": -Infinity}',
        lambda i: j({**order(i, users), "price": "123456789.00"}),  # over DECIMAL(10,2)
    ]
    return hostile(lambda i: order(i, users), "order_id") + typed


def valid_orders(i: int, users: int) -> dict[str, Any]:
    """Valid, some in odd ways: missing fields, lenient casts, long digits, numbers as text."""
    o = order(i, users)
    kind = i % 6
    if kind == 1:
        del o["price"], o["qty"]  # missing fields are NULL: valid
    elif kind == 2:
        o["price"] = Decimal("0.124999999999999999")  # rounds to 0.12, never via 0.125
    elif kind == 3:
        o["note"] = 123456789012345678901234567890  # a number in a STRING column keeps its digits
    elif kind == 4:
        o["qty"] = str(o["qty"])  # "3" for a BIGINT: a lenient cast
        o["ünïcode"] = "☃"
    elif kind == 5:
        o["price"] = Decimal("1E+2")
    return o


def keys(i: int) -> bytes | None:
    """Message keys: some null, some unicode."""
    return None if i % 5 == 0 else f"k-{i}-é☃".encode()


def mix(
    valid: Iterable[bytes],
    bad: list[Callable[[int], bytes]],
    n_bad: int,
    seed: int,
    huge: bytes,
) -> list[tuple[bool, Message]]:
    """Valid and hostile values interleaved at random, with two "1 MB" hostile values;
    True marks a hostile one."""
    rng = random.Random(seed)
    out = [(False, v) for v in valid] + [(True, bad[i % len(bad)](i)) for i in range(n_bad)]
    out += [(True, huge), (True, huge)]
    rng.shuffle(out)
    return [(h, (keys(i), v)) for i, (h, v) in enumerate(out)]


async def produce_at(
    servers: str, topic: str, messages: list[tuple[bool, Message]]
) -> list[tuple[bool, int, int]]:
    """Send in batches (lingering: Tansu stops serving a partition of ~10k tiny batches);
    (hostile, partition, offset) of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, linger_ms=50, acks="all", max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for _, (k, v) in messages]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(h, m.partition, m.offset) for (h, _), m in zip(messages, metas, strict=True)]


def web_rows(worker: Worker, table: str) -> dict[str, Any]:
    """Every row of ``table`` through the paged web view, numbers read exactly."""
    rows: dict[str, Any] = {}
    after = ""
    while True:
        url = f"{worker.web}/tables/{table}/?limit=10000" + (f"&after={after}" if after else "")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            body = json.loads(resp.read(), parse_float=Decimal)
        rows.update((r["key"], r["value"]) for r in body["rows"])
        if not body.get("next"):
            return rows
        after = body["next"]


async def test_hostile_records_never_stop_the_worker_nor_change_a_valid_result(
    broker: EmbeddedBroker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = {n: unique(n) for n in ("users", "notes", "orders", "checked", "totals", "dlq")}
    await ensure_topics(broker.url, [TopicSpec(names[t], 1) for t in ("users", "notes")])
    n_users = 300
    huge_user = j({**user(1), "credit": "9" * MB})  # over DECIMAL(10,2), by far
    users = mix((j(user(i)) for i in range(n_users)), hostile_users(), 700, 1, huge_user)
    huge_note = b'{"id": "n1", "text": "' + b"\xff" * MB + b'"}'  # 1 MB, not UTF-8
    notes = mix((j(note(i)) for i in range(200)), hostile_notes(), 500, 2, huge_note)
    n_orders = 2400
    huge_order = j({**order(1, n_users), "price": "9" * MB + ".5"})
    orders = mix(
        (j(valid_orders(i, n_users)) for i in range(n_orders)),
        hostile_orders(n_users),
        2400,
        3,
        huge_order,
    )
    sent = {
        names["users"]: await produce_at(broker.url, names["users"], users),
        names["notes"]: await produce_at(broker.url, names["notes"], notes),
    }

    pipeline = tmp_path / "pipeline.sql"
    pipeline.write_text(PIPELINE.format(**names))
    worker = Worker(tmp_path / "w", worker_env(broker.url, pipeline, names)).start()
    workers.append(worker)
    for t, records in (("users", users), ("notes", notes)):
        stats = await asyncio.to_thread(worker.table, t)
        assert stats["records_read"] == len(records)
    # The tables are complete before any order is read: each order's result is determined.
    sent[names["orders"]] = await produce_at(broker.url, names["orders"], orders)
    await until(processed(worker, "checked", len(orders)), "checked to read every order", worker)
    await until(processed(worker, "totals-repartition", len(orders)), "totals stage 1", worker)
    await until(processed(worker, "totals", n_orders), "totals to aggregate", worker)
    assert _running(worker), worker.tail()

    # Tables: exactly the valid rows (a hostile row for a known key left its row as it was).
    users_rows = await asyncio.to_thread(web_rows, worker, "users")
    assert users_rows == {str(i): _exact(user(i)) for i in range(n_users)}
    notes_rows = await asyncio.to_thread(web_rows, worker, "notes")
    assert notes_rows == {f"n{i}": note(i) for i in range(200)}  # 2^64 * i: exact JSON numbers

    # Outputs: exact, from the valid orders only.
    valid = [valid_orders(i, n_users) for i in range(n_orders)]
    expected_checked = {
        o["order_id"]: {
            "order_id": o["order_id"],
            "name": user(o["user_id"])["name"],
            "notional": _notional(o),
            "note": str(o["note"]),
        }
        for o in valid
        if user(o["user_id"])["tier"] == "gold"
    }
    out = {}
    for r in await read_all(broker.url, names["checked"]):
        row = codec.loads_exact(r.value)
        assert row["order_id"] not in out
        out[row["order_id"]] = row
    assert out == expected_checked
    assert [str(out[o]["notional"]) for o in sorted(out)] == [
        str(expected_checked[o]["notional"]) for o in sorted(out)
    ]
    totals: dict[int, tuple[int, Decimal | None]] = {}
    for o in valid:
        n, total = totals.get(o["user_id"], (0, None))
        amount = _notional(o)
        totals[o["user_id"]] = (
            n + 1,
            total if amount is None else (total or Decimal(0)) + amount,
        )
    final = {}
    for r in await read_all(broker.url, names["totals"]):
        row = codec.loads_exact(r.value)
        final[row["user_id"]] = (row["n"], row["total"])
    assert final == totals

    # Dead letters: every hostile record, from each reader, with a reason; nothing valid.
    readers = {
        names["users"]: ["table:users"],
        names["notes"]: ["table:notes"],
        names["orders"]: ["query:checked", "query:totals"],
    }
    expected_dead = {
        (source, topic, p, off)
        for topic, records in sent.items()
        for is_hostile, p, off in records
        if is_hostile
        for source in readers[topic]
    }
    dead: dict[tuple[str, str, int, int], str] = {}
    for r in await read_all(broker.url, names["dlq"], timeout=30):
        h = {k: v.decode() for k, v in r.headers}
        where = (h[H_SOURCE], h[H_TOPIC], int(h[H_PARTITION]), int(h[H_OFFSET]))
        assert where not in dead, f"dead-lettered twice: {where}"
        dead[where] = h[H_REASON]
    assert set(dead) == expected_dead
    assert all(reason.strip() for reason in dead.values())
    assert max(len(reason) for reason in dead.values()) <= 1000
    reasons = " | ".join(sorted(set(dead.values())))
    for part in ("not valid JSON", "nested deeper than 256", "not an object", "BIGINT"):
        assert part in reasons
    stats = queries(worker)
    hostile_orders_sent = sum(1 for h, _, _ in sent[names["orders"]] if h)
    assert stats["checked"]["dead_letters"] == hostile_orders_sent
    assert stats["checked"]["records_out"] == len(expected_checked)
    assert _running(worker), worker.tail()


def _running(worker: Worker) -> bool:
    return worker.proc is not None and worker.proc.poll() is None


def _notional(o: dict[str, Any]) -> Decimal | None:
    if o.get("price") is None or o.get("qty") is None:
        return None
    price = Decimal(str(o["price"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return price * int(o["qty"])


def _exact(row: dict[str, Any]) -> Any:
    return json.loads(codec.dumps(row), parse_float=Decimal)
