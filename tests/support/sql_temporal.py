"""A versioned ``prices`` table and an ``orders`` stream, shared by the temporal-join tests and
the time-travel tests (a test module is no library: both import these from here)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sql import Catalog, compile_query
from tables.memory import MemoryTable

DECLS = """CREATE TABLE prices (sku VARCHAR, price DECIMAL(10,2), PRIMARY KEY (sku))
WITH (topic='prices', versions='10');
CREATE STREAM orders (id BIGINT, sku VARCHAR, ts BIGINT) WITH (topic='orders', timestamp='ts');
"""
# (sku, price or None for a delete, event time) in arrival order; the last one is late.
TIMELINE = [
    ("a", "10.00", 1000),
    ("b", "5.00", 1000),
    ("a", "11.00", 2000),
    ("b", None, 2500),
    ("a", "12.00", 3000),
    ("a", "10.50", 1500),  # out of order: between 1000 and 2000
]


def prices(**options: Any) -> MemoryTable:
    """The ``prices`` table after :data:`TIMELINE` (10 versions per key unless ``options``)."""
    t = MemoryTable("prices", key_field="sku", **({"versions": 10} | options))
    for sku, price, ts in TIMELINE:
        t.put(sku, None if price is None else {"sku": sku, "price": Decimal(price)}, ts)
    return t


def run(sql: str, table: MemoryTable, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``DECLS + sql`` over ``table``: the rows of each order in turn (event time = ``ts``)."""
    q = compile_query(DECLS + sql, Catalog.of({"prices": table}))
    try:
        return [row for o in orders for row in q.process(o, timestamp=o["ts"])]
    finally:
        q.close()
