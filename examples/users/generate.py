"""The demo's live source: seeds a ``users`` topic, then keeps changing it while the worker runs.

Every change is printed next to what the worker's web view answers for the same key a moment
later, so you see the table follow the topic: updates, deletes (tombstones) and, now and then, a
malformed record that ends in the dead-letter topic instead of stopping anything.

    python -m examples.users.generate --broker 127.0.0.1:9092 --web http://127.0.0.1:6066
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from typing import Any

from aiokafka import AIOKafkaProducer

from core import codec
from tables.topics import TopicSpec, ensure_topics

TIERS = ("basic", "silver", "gold", "platinum")
CITIES = ("Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Tunis")


def user(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"user-{i}",
        "tier": rng.choice(TIERS),
        "city": rng.choice(CITIES),
        "credit": rng.randrange(0, 10_000),
    }


def fetch(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


async def wait_for_web(web: str, deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(fetch, f"{web}/tables/users/")
        if status == 200 and body["table"]["ready"]:
            return dict(body["table"])
        await asyncio.sleep(0.5)
    return None


async def run(broker: str, web: str, topic: str, users: int, duration: float, rate: float) -> int:
    rng = random.Random(7)
    await ensure_topics(broker, [TopicSpec(topic, 3, configs={"cleanup.policy": "compact"})])
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=20, acks="all")
    await producer.start()
    try:
        for i in range(users):
            await producer.send(topic, codec.dumps(user(i, rng)), key=str(i).encode())
        await producer.flush()
        print(f"seeded {users} users into topic {topic!r}", flush=True)
        stop_at = time.monotonic() + duration if duration > 0 else float("inf")
        table = await wait_for_web(web, min(stop_at, time.monotonic() + 120))
        if table is None:
            print(f"web view {web}/tables/users/ never reported the table ready", flush=True)
            return 1
        print(f"worker table ready: {table['size']} rows; web view {web}/tables/", flush=True)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            key = str(rng.randrange(users))
            roll = rng.random()
            if roll < 0.1:
                await producer.send_and_wait(topic, None, key=key.encode())
                change = f"deleted user {key}"
                expect: Any = None
            elif roll < 0.15:
                await producer.send_and_wait(topic, b"{oops", key=key.encode())
                change = f"sent a malformed record for user {key}"
                expect = "unchanged"
            else:
                row = user(int(key), rng)
                await producer.send_and_wait(topic, codec.dumps(row), key=key.encode())
                change = f"user {key}: tier={row['tier']} credit={row['credit']}"
                expect = row
            await asyncio.sleep(0.3)
            status, body = await asyncio.to_thread(fetch, f"{web}/tables/users/{key}")
            seen = body.get("value") if status == 200 else None
            if expect == "unchanged":
                verdict = "table unchanged, record in the dead-letter topic"
            elif seen == expect:
                verdict = "web view agrees"
            else:
                verdict = f"web view says {seen!r}"
            shown = "absent" if seen is None else f"tier={seen['tier']} credit={seen['credit']}"
            print(
                f"[{n:4d}] {change:<45} -> GET /tables/users/{key}: {shown} ({verdict})", flush=True
            )
            await asyncio.sleep(max(0.0, 1.0 / rate - 0.3))
        status, body = await asyncio.to_thread(fetch, f"{web}/tables/")
        stats = body["tables"][0] if status == 200 else {}
        print(f"final table stats: {json.dumps(stats)}", flush=True)
        return 0
    finally:
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--web", default="http://127.0.0.1:6066")
    parser.add_argument("--topic", default="users")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    args = parser.parse_args()
    try:
        return asyncio.run(
            run(args.broker, args.web, args.topic, args.users, args.duration, args.rate)
        )
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
