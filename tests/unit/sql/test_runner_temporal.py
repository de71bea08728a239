"""Temporal queries offline: a price table given as a timed changelog, orders joined as of their
time get the historical price, not the latest (``python -m sql run``, in-process and subprocess).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.codec import loads_exact
from sql.runner import main

ROOT = Path(__file__).resolve().parents[3]
DECLS = """CREATE TABLE prices (sku STRING, price DECIMAL(10,2), PRIMARY KEY (sku))
  WITH (topic='prices', versions='10', history_retention='1h');
CREATE STREAM orders (id BIGINT, sku STRING, qty BIGINT) WITH (topic='orders');
"""
QUERY = (
    "SELECT o.id, p.price, o.qty * p.price AS total FROM orders o\n"
    "LEFT JOIN prices FOR SYSTEM_TIME AS OF o._timestamp AS p ON p.sku = o.sku"
)
# The changelog: updates, a delete (null value), a row line and a late (out-of-order) change.
PRICES: list[dict[str, Any]] = [
    {"key": "a", "value": {"sku": "a", "price": "10.00"}, "_timestamp": 1000},
    {"sku": "b", "price": "7.25", "_timestamp": 1000},
    {"key": "a", "value": {"sku": "a", "price": "11.00"}, "_timestamp": 2000},
    {"key": "b", "value": None, "_timestamp": 2500},
    {"key": "a", "value": {"sku": "a", "price": "12.00"}, "_timestamp": 3000},
    {"key": "a", "value": {"sku": "a", "price": "10.50"}, "_timestamp": 1500},
]
ORDERS: list[dict[str, Any]] = [
    {"id": 1, "sku": "a", "qty": 2, "_timestamp": 900},
    {"id": 2, "sku": "a", "qty": 2, "_timestamp": 1200},
    {"id": 3, "sku": "a", "qty": 2, "_timestamp": 1600},
    {"id": 4, "sku": "a", "qty": 2, "_timestamp": 2500},
    {"id": 5, "sku": "a", "qty": 2, "_timestamp": 9000},
    {"id": 6, "sku": "b", "qty": 1, "_timestamp": 2400},
    {"id": 7, "sku": "b", "qty": 1, "_timestamp": 2600},
]


def model_price(sku: str, ts: int) -> Decimal | None:
    """The price the changelog gave ``sku`` at ``ts``, by event time (later arrival wins a tie)."""
    best: tuple[int, int] | None = None
    price = None
    for arrival, line in enumerate(PRICES):
        key = line.get("key", line.get("sku"))
        value = line.get("value", line)
        t = int(line["_timestamp"])
        if key == sku and t <= ts and (best is None or (t, arrival) > best):
            best, price = (t, arrival), None if value is None else Decimal(value["price"])
    return price


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def jsonl(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(i) + "\n" for i in items)


def test_orders_get_the_price_as_of_their_time(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", DECLS + QUERY + ";\n")
    prices = write(tmp_path, "prices.jsonl", jsonl(PRICES))
    orders = write(tmp_path, "orders.jsonl", jsonl(ORDERS))
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["run", query, "--table", f"prices={prices}", "--stream", f"orders={orders}"], out, err
    )
    assert code == 0, err.getvalue()
    rows = [loads_exact(line) for line in out.getvalue().splitlines()]
    expected = []
    for o in ORDERS:
        price = model_price(str(o["sku"]), int(o["_timestamp"]))
        total = None if price is None else price * int(o["qty"])
        expected.append({"id": o["id"], "price": price, "total": total})
    assert rows == expected
    latest = {"a": Decimal("12.00")}
    assert rows[1]["price"] != latest["a"]  # the historical price, not the latest

    explained = subprocess.run(
        [
            sys.executable,
            "-m",
            "sql",
            "run",
            query,
            "--table",
            f"prices={prices}",
            "--stream",
            f"orders={orders}",
            "--explain",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert explained.returncode == 0, explained.stderr
    assert "as-of key lookup FOR SYSTEM_TIME AS OF o._timestamp" in explained.stdout


def test_events_timeline_changes_the_table_between_orders(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", DECLS + QUERY + ";\n")
    events = write(
        tmp_path,
        "events.jsonl",
        jsonl(
            [
                {
                    "table": "prices",
                    "key": "a",
                    "value": {"sku": "a", "price": "1.00"},
                    "_timestamp": 100,
                },
                {"stream": "orders", "value": {"id": 1, "sku": "a", "qty": 1}, "_timestamp": 150},
                {
                    "table": "prices",
                    "key": "a",
                    "value": {"sku": "a", "price": "2.00"},
                    "_timestamp": 200,
                },
                # an order that arrives after the change but happened before it
                {"stream": "orders", "value": {"id": 2, "sku": "a", "qty": 1}, "_timestamp": 199},
                {"table": "prices", "key": "a", "value": None, "_timestamp": 300},
                {"stream": "orders", "value": {"id": 3, "sku": "a", "qty": 1}, "_timestamp": 301},
            ]
        ),
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", query, "--stream", "orders", "--events", events], out, err)
    assert code == 0, err.getvalue()
    prices = [loads_exact(line)["price"] for line in out.getvalue().splitlines()]
    assert prices == [Decimal("1.00"), Decimal("1.00"), None]


def test_bad_history_option_is_an_input_error(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", DECLS.replace("'1h'", "'soon'") + QUERY + ";\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", query, "--stream", "orders"], out, err)
    assert code == 2
    assert "history_retention='soon' is not a duration" in err.getvalue()
