"""The demo's live source and viewer for ``examples/orders/pipeline.sql``.

Seeds the ``users`` and ``limits`` reference topics, waits until the worker holds them, then
produces orders and, every few seconds, changes a table row — a symbol's limit, a user blocked
or unblocked, a user promoted to gold — and sends a *probe* order that the change must decide.
It reads the pipeline's output topics and prints every row, and for each probe whether the
output followed the table change. Now and then it sends a malformed order, which the worker
puts in the dead-letter topic while the rest flows.

    python -m examples.orders.generate --broker 127.0.0.1:9092 --web http://127.0.0.1:6066

At the end it prints the dead letters by source and reason. Exit status 1 when a probe's output did
not follow its table change, no output came, or a valid order was dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer

from core import codec
from examples.orders.outputs import Outputs, fetch, wait_for
from tables.deadletter import read_dead_letters
from tables.topics import TopicSpec, ensure_topics

COMPACT = {"cleanup.policy": "compact"}
#: The worker's dead-letter topic with the default settings.
DLQ = "tablestream-dlq"
LIMITS = {"AAPL": "190.00", "MSFT": "420.00", "NVDA": "130.00", "TSLA": "250.00"}
TIERS = ("basic", "silver", "gold")
COUNTRIES = ("PT", "NO", "KE", "PE", "JP")
#: (topic, partitions, configs): as declared in pipeline.sql.
TOPICS: tuple[tuple[str, int, dict[str, str]], ...] = (
    ("users", 3, COMPACT),
    ("limits", 1, COMPACT),
    ("orders", 3, {}),
)


def user_row(i: int, rng: random.Random, **changes: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "name": f"user-{i}",
        "tier": rng.choice(TIERS[:2]),
        "country": rng.choice(COUNTRIES),
        "blocked": False,
    }
    return {**row, **changes}


class Demo:
    def __init__(
        self, broker: str, web: str, users: int, rng: random.Random, dlq: str = DLQ
    ) -> None:
        self.broker, self.web, self.users, self.rng, self.dlq = broker, web, users, rng, dlq
        self.producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5, acks="all")
        self.outputs = Outputs(broker)
        self.limits = {s: Decimal(v) for s, v in LIMITS.items()}
        self.user_rows: dict[int, dict[str, Any]] = {}
        self.next_order = 1
        self.probes_ok = 0
        self.probes_failed = 0
        self.malformed = 0

    async def put(self, topic: str, key: str, value: Any) -> None:
        await self.producer.send_and_wait(topic, codec.dumps(value), key=key.encode())

    async def seed(self) -> None:
        await ensure_topics(self.broker, [TopicSpec(t, p, configs=c) for t, p, c in TOPICS])
        await self.producer.start()
        for i in range(self.users):
            self.user_rows[i] = user_row(i, self.rng)
            await self.producer.send("users", codec.dumps(self.user_rows[i]), key=str(i).encode())
        for symbol, price in self.limits.items():
            await self.producer.send(
                "limits", codec.dumps({"symbol": symbol, "max_price": price}), key=symbol.encode()
            )
        await self.producer.flush()
        print(f"seeded {self.users} users and {len(self.limits)} limits", flush=True)

    async def order(self, user_id: int, symbol: str, price: Decimal) -> int:
        order_id = self.next_order
        self.next_order += 1
        qty = self.rng.randrange(1, 10)
        value = {
            "order_id": order_id,
            "user_id": user_id,
            "symbol": symbol,
            "price": price,
            "qty": qty,
            "ts": int(time.time() * 1000),
        }
        await self.producer.send("orders", codec.dumps(value), key=str(user_id).encode())
        return order_id

    async def random_order(self) -> None:
        symbol = self.rng.choice([*self.limits, "GME"])  # GME has no limit: 'unknown symbol'
        base = self.limits.get(symbol, Decimal("20.00"))
        price = (base * Decimal(self.rng.uniform(0.8, 1.1))).quantize(Decimal("0.01"))
        await self.order(self.rng.randrange(self.users), symbol, price)

    async def change_and_probe(self, step: int) -> None:
        """One table change, then an order whose output must reflect it."""
        kind = ("limit", "block", "gold", "unblock", "malformed")[step % 5]
        if kind == "malformed":
            await self.producer.send_and_wait("orders", b'{"order_id": oops', key=b"0")
            self.malformed += 1
            print("[change] sent a malformed order -> the worker's dead-letter topic", flush=True)
            return
        if kind == "limit":
            symbol = self.rng.choice(list(self.limits))
            old = self.limits[symbol]
            new = (old * Decimal("0.9")).quantize(Decimal("0.01"))
            self.limits[symbol] = new
            await self.put("limits", symbol, {"symbol": symbol, "max_price": new})
            print(f"[change] limits {symbol}: max_price {old} -> {new}", flush=True)
            await self.until_web("limits", symbol, "max_price", new)
            # Priced between the new and the old limit: accepted before, over the limit now.
            price = ((old + new) / 2).quantize(Decimal("0.01"))
            order_id = await self.order(self.unblocked_user(), symbol, price)
            await self.check(order_id, "checked_orders", "status", "over limit")
            return
        uid = self.unblocked_user() if kind != "unblock" else self.blocked_user()
        if uid is None:
            return
        changes = {"blocked": kind == "block"} if kind != "gold" else {"tier": "gold"}
        row = self.user_rows[uid] = {**self.user_rows[uid], **changes}
        await self.put("users", str(uid), row)
        print(f"[change] users {uid}: {changes}", flush=True)
        field, want = next(iter(changes.items()))
        await self.until_web("users", str(uid), field, want)
        order_id = await self.order(uid, "AAPL", Decimal("1.00"))
        status = "blocked user" if row["blocked"] else "accepted"
        await self.check(order_id, "checked_orders", "status", status)
        if row["tier"] == "gold" and not row["blocked"]:
            await self.check(order_id, "gold_orders", "user_id", uid)

    def unblocked_user(self) -> int:
        while True:
            uid = self.rng.randrange(self.users)
            if not self.user_rows[uid]["blocked"]:
                return uid

    def blocked_user(self) -> int | None:
        blocked = [u for u, r in self.user_rows.items() if r["blocked"]]
        return self.rng.choice(blocked) if blocked else None

    async def until_web(self, table: str, key: str, field: str, want: Any) -> None:
        url = f"{self.web}/tables/{table}/{key}"

        async def seen() -> bool:
            status, body = await asyncio.to_thread(fetch, url)
            return status == 200 and _same(body["value"].get(field), want)

        if not await wait_for(seen, 15):
            print(f"  web view {url} never showed {field}={want}", flush=True)

    async def check(self, order_id: int, topic: str, field: str, want: Any) -> None:
        row = await self.outputs.wait_row(topic, order_id, timeout=15)
        got = None if row is None else row.get(field)
        if row is not None and _same(got, want):
            self.probes_ok += 1
            print(f"  probe order {order_id}: {topic}.{field} = {got!r}  (follows the change)")
        else:
            self.probes_failed += 1
            print(f"  PROBE FAILED order {order_id}: {topic}.{field} = {got!r}, wanted {want!r}")

    async def run(self, duration: float, rate: float, every: float) -> int:
        await self.seed()
        ready = await wait_for(self.tables_loaded, 120)
        if not ready:
            print(f"the worker at {self.web} never loaded the tables", flush=True)
            return 1
        # Orders sent before a query consumes pile up per partition; read partition after
        # partition they arrive out of event-time order (the window's out_of_orderness covers
        # a backlog, but none is needed at the start).
        if not await wait_for(self.queries_consuming, 120):
            print(f"the queries of the worker at {self.web} never got partitions", flush=True)
            return 1
        print(
            f"worker ready; inspector: {self.web}/  (JSON: {self.web}/tables/ {self.web}/queries/)",
            flush=True,
        )
        viewer = asyncio.create_task(self.outputs.run(print_rows=True))
        try:
            stop_at = time.monotonic() + duration if duration > 0 else float("inf")
            next_change, step = time.monotonic() + every, 0
            while time.monotonic() < stop_at:
                await self.random_order()
                if time.monotonic() >= next_change:
                    await self.change_and_probe(step)
                    step, next_change = step + 1, time.monotonic() + every
                await asyncio.sleep(1.0 / rate)
            await self.producer.flush()
            await asyncio.sleep(2)  # let the last outputs arrive
        finally:
            viewer.cancel()
            await self.producer.stop()
            await self.outputs.stop()
        counts = ", ".join(f"{t}={n}" for t, n in sorted(self.outputs.counts.items()))
        valid_dead = await self.dead_letters()
        print(
            f"summary: orders={self.next_order - 1} outputs: {counts or 'none'}; "
            f"probes ok={self.probes_ok} failed={self.probes_failed}; malformed={self.malformed}; "
            f"valid orders dead-lettered={valid_dead}",
            flush=True,
        )
        return 1 if self.probes_failed or valid_dead or not self.outputs.counts else 0

    async def dead_letters(self) -> int:
        """Prints the dead letters by reason; returns how many hold a valid order (none should:
        only the malformed orders this demo sends belong there)."""
        letters = await read_dead_letters(self.broker, self.dlq, limit=10_000)
        reasons = Counter(f"{d.source} {d.reason.split(':')[0]}" for d in letters)
        for what, n in sorted(reasons.items()):
            print(f"dead letters: {what}: {n}", flush=True)
        valid = 0
        for d in letters:
            try:
                order = codec.loads(d.value or b"")
            except ValueError:
                continue
            valid += 1
            print(f"  VALID ORDER DEAD-LETTERED ({d.source}, {d.reason}): {order}", flush=True)
        return valid

    async def queries_consuming(self) -> bool:
        """Every query (both stages of a stateful one) has source partitions assigned."""
        status, body = await asyncio.to_thread(fetch, f"{self.web}/queries/")
        queries = body.get("queries", []) if status == 200 else []
        return len(queries) >= 3 and all(q["partitions"] for q in queries)

    async def tables_loaded(self) -> bool:
        for name, size in (("users", self.users), ("limits", len(self.limits))):
            status, body = await asyncio.to_thread(fetch, f"{self.web}/tables/{name}/?limit=1")
            if status != 200 or body["table"]["size"] < size or not body["table"]["ready"]:
                return False
        status, _ = await asyncio.to_thread(fetch, f"{self.web}/ready")
        return status == 200


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, Decimal) and got is not None:
        return Decimal(str(got)) == want
    return bool(got == want)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--web", default="http://127.0.0.1:6066")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")
    parser.add_argument("--rate", type=float, default=5.0, help="random orders per second")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between table changes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dlq", default=DLQ, help="the worker's dead-letter topic")
    args = parser.parse_args()

    async def run() -> int:
        # aiokafka clients must be created inside the running loop.
        demo = Demo(args.broker, args.web, args.users, random.Random(args.seed), args.dlq)
        return await demo.run(args.duration, args.rate, args.every)

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
