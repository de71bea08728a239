"""The orders every pipeline bench sends: one seeded generator, prices as JSON numbers."""

from __future__ import annotations

import random
from typing import Any

import orjson

SYMBOLS = [f"S{i:03d}" for i in range(50)]


def order(i: int, users: int, rng: random.Random, sent: int = 0) -> dict[str, Any]:
    return {
        "order_id": i,
        "user_id": rng.randrange(users),
        "symbol": rng.choice(SYMBOLS),
        "price": f"{rng.randrange(100, 50_000) / 100:.2f}",
        "qty": rng.randrange(1, 100),
        "sent": sent,
    }


def encode_order(o: dict[str, Any]) -> bytes:
    # Prices as JSON numbers with two decimals, as a real producer would write them.
    return orjson.dumps(o).replace(b'"price":"', b'"price":').replace(b'","qty"', b',"qty"')
