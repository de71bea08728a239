"""The same customer rows in a PostgreSQL table, a DuckDB file and an in-memory (Kafka-kind)
table, and external tables built the way the worker builds them (spec → kind → table)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from agents.codec import make_decoder, make_encoder
from agents.process import BatchProcessor
from core import codec
from sources.lookup import LookupTable
from sources.snapshot import SnapshotTable
from sources.table import ExternalTable
from sql import compile_query
from sql.parse import parse_script
from tables.deadletter import H_REASON
from tables.kinds import TableEnv, table_kind
from tables.memory import MemoryTable
from tables.protocol import ConnectedTable, Table
from tables.spec import TableSpec
from tests.support.postgres import PostgresCluster
from tests.support.records import Collect, Rec
from tests.support.worker import Worker

COLUMNS = "id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR, PRIMARY KEY (id)"
PG_DDL = "id bigint primary key, tier text, credit numeric(12,2), country text"
DUCK_DDL = "id BIGINT PRIMARY KEY, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR"
#: id -> (tier, credit, country); NULLs in every column but the key.
CUSTOMERS: dict[int, tuple[str | None, Decimal | None, str | None]] = {
    1: ("gold", Decimal("100.50"), "FR"),
    2: ("basic", Decimal("0.00"), "DE"),
    3: (None, Decimal("12.34"), "FR"),
    4: ("gold", None, None),
    5: ("blocked", Decimal("-5.25"), "US"),
    6: ("basic", Decimal("99999.99"), "DE"),
}


def unique_table(prefix: str = "customers") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def rows_of(data: Mapping[int, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(k, *v) for k, v in sorted(data.items())]


def pg_table(pg: PostgresCluster, name: str, data: Mapping[int, tuple[Any, ...]]) -> None:
    pg.execute(f"CREATE TABLE {name} ({PG_DDL})")
    if data:
        pg.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s)", rows_of(data))


def duck_file(path: Path, name: str, data: Mapping[int, tuple[Any, ...]]) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE TABLE {name} ({DUCK_DDL})")
        if data:
            con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?)", rows_of(data))
    finally:
        con.close()


def memory_table(name: str, data: Mapping[int, tuple[Any, ...]]) -> MemoryTable:
    t = MemoryTable(name, "id")
    for k, (tier, credit, country) in data.items():
        t.put(k, {"id": k, "tier": tier, "credit": credit, "country": country})
    return t


def declaration(name: str, options: str) -> str:
    return f"CREATE TABLE {name} ({COLUMNS}) WITH ({options});\n"


def connected(
    sql_declaration: str,
    name: str,
    *,
    open_now: bool = True,
    secrets: Mapping[str, str] | None = None,
) -> ConnectedTable:
    """The table ``name`` of a ``CREATE TABLE`` text, built by its kind (and opened), given
    ``secrets`` as the worker gives its environment."""
    decl = parse_script(sql_declaration + "SELECT 1 FROM s").declarations[name.lower()]
    topic = decl.options.get("topic", decl.name)
    spec = TableSpec.from_options(decl.name, topic, decl.primary_key, decl.options, decl.columns)
    table = table_kind(spec.name, spec.kind).create(spec, TableEnv(secrets=secrets or {}))
    assert isinstance(table, ConnectedTable)
    if open_now:
        table.open_sync()
    return table


def external(
    sql_declaration: str,
    name: str,
    *,
    open_now: bool = True,
    secrets: Mapping[str, str] | None = None,
) -> ExternalTable:
    """The external (SQL database) table ``name`` of a ``CREATE TABLE`` text (opened)."""
    table = connected(sql_declaration, name, open_now=open_now, secrets=secrets)
    assert isinstance(table, ExternalTable)
    return table


def lookup_table(sql_declaration: str, name: str) -> LookupTable:
    table = external(sql_declaration, name)
    assert isinstance(table, LookupTable)
    return table


def snapshot_table(sql_declaration: str, name: str, *, open_now: bool = True) -> SnapshotTable:
    table = external(sql_declaration, name, open_now=open_now)
    assert isinstance(table, SnapshotTable)
    return table


def catalog_customers(pipeline_file: Path, qualified: str, kind: str) -> tuple[Any, ExternalTable]:
    """The pipeline of ``pipeline_file`` (its ``CREATE CATALOG`` reads the customer table
    ``qualified`` from the database: columns and key checked here) and that table, built by its
    kind and opened as the worker does; (pipeline, table)."""
    from agents.pipeline import load_pipeline

    pipeline = load_pipeline([pipeline_file])
    spec = pipeline.tables[qualified]
    assert (spec.kind, spec.key_field) == (kind, "id")
    assert dict(spec.columns) == {
        "id": "BIGINT",
        "tier": "STRING",
        "credit": "DECIMAL(12,2)",
        "country": "STRING",
    }
    table = table_kind(spec.name, spec.kind).create(spec, TableEnv())
    assert isinstance(table, ExternalTable)
    table.open_sync()
    return pipeline, table


def column(table: Table, key: Any, name: str) -> Any:
    """``table.get(key)[name]`` (the test fails if the key has no row)."""
    row = table.get(key)
    assert isinstance(row, dict), (key, row)
    return row[name]


# -- a worker's batch, for the outage tests -------------------------------------------------
#: The orders → customers join the outage tests run batch by batch, as the agent does.
ORDERS_QUERY = (
    "CREATE STREAM orders (order_id BIGINT, customer_id BIGINT) WITH (topic='orders');\n"
    "CREATE STREAM out WITH (topic='out') AS SELECT o.order_id, c.tier"
    " FROM orders o LEFT JOIN customers c ON c.id = o.customer_id EMIT CHANGES;"
)
#: Short cache, timeout and breaker: an outage shows within a second or two.
OUTAGE_OPTIONS = (
    "cache='partial', cache_ttl='1s', timeout='2s', retries='1', breaker_failures='2',"
    " breaker_reset='300ms'"
)


def outage_table(pg: PostgresCluster, policy: str) -> ExternalTable:
    """The customers of ``pg`` as an external table with :data:`OUTAGE_OPTIONS` and
    ``on_error=policy``."""
    opts = f"connector='postgres', dsn='{pg.dsn()}', table='public.customers', {OUTAGE_OPTIONS}"
    return external(declaration("customers", f"{opts}, on_error='{policy}'"), "customers")


def outage_processor(table: ExternalTable, policy: str) -> BatchProcessor:
    """:data:`ORDERS_QUERY` over ``table`` (from :func:`outage_table`) as the worker runs it."""
    c = table.config
    opts = f"connector='postgres', dsn='{c.target}', table='{c.remote_table}'"
    sql = declaration("customers", f"{opts}, {OUTAGE_OPTIONS}, on_error='{policy}'")
    return batch_processor(sql + ORDERS_QUERY, {"customers": table})


def order_batch(start: int, ids: list[int]) -> list[Rec]:
    """Orders ``start``, ``start + 1``, ... of the customers ``ids``."""
    return [
        Rec(0, start + i, None, codec.dumps({"order_id": start + i, "customer_id": cid}))
        for i, cid in enumerate(ids)
    ]


def batch_processor(sql: str, tables: Mapping[str, Table]) -> BatchProcessor:
    """The query of ``sql`` over ``tables`` as the worker runs it (sink ``out``, dead letters
    ``dlq``)."""
    query = compile_query(sql, dict(tables))
    return BatchProcessor(
        query,
        make_decoder(None),
        name="q",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        encode=make_encoder(query.output_columns, query.output_types),
    )


class _Partition:
    def __init__(self, topic: str) -> None:
        self.topic, self.partition = topic, 0


async def run_batch(
    p: BatchProcessor, recs: list[Rec], id_field: str = "order_id", topic: str = "orders"
) -> tuple[list[Any], list[tuple[Any, str]]]:
    """One batch as the agent runs it: prefetch, then the records; (outputs, dead letters as
    (the record's ``id_field``, reason))."""
    assert p.prefetch is not None
    await p.prefetch({_Partition(topic): recs})
    out = Collect()
    p.run(recs, out)
    rows = [codec.loads(v) for t, _, v, _ in out.records if t == "out" and v is not None]
    dead = [
        (codec.loads(v)[id_field], h[H_REASON].decode())
        for t, _, v, h in out.records
        if t == "dlq" and v is not None
    ]
    return rows, dead


# -- a real worker running a federated pipeline ---------------------------------------------
async def produce_json(
    broker_url: str, topic: str, partitions: int, rows: list[dict[str, Any]], key: str | None
) -> None:
    """Create ``topic`` and write ``rows`` as JSON (keyed by the text of ``row[key]``)."""
    from tables.topics import TopicSpec, ensure_topics
    from tests.support.kafka import produce

    await ensure_topics(broker_url, [TopicSpec(topic, partitions)])
    keyed = [(None if key is None else str(r[key]).encode(), codec.dumps(r)) for r in rows]
    await produce(broker_url, topic, keyed)


def start_worker(
    broker_url: str, root: Path, pipeline: Path, dlq: str, workers: list[Worker]
) -> Worker:
    """A worker process running ``pipeline`` (put in ``workers``: the fixture stops it)."""
    from tests.support.kafka import unique

    env = {
        "TABLESTREAM_BROKER": broker_url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_DLQ_TOPIC": dlq,
    }
    worker = Worker(root / "w", env).start()
    workers.append(worker)
    return worker


async def read_json(
    broker_url: str, topic: str, count: int, order_by: str, exact: bool = False
) -> list[dict[str, Any]]:
    """The JSON rows of ``topic`` once there are ``count`` (or after ~10 s), by ``order_by``;
    ``exact``: numbers with a fraction as Decimal."""
    import asyncio

    from tests.support.kafka import read_all

    loads = codec.loads_exact if exact else codec.loads
    got: list[dict[str, Any]] = []
    for _ in range(50):
        got = [loads(r.value) for r in await read_all(broker_url, topic)]
        if len(got) >= count:
            break
        await asyncio.sleep(0.2)
    return sorted(got, key=lambda r: r[order_by])


async def enrich_orders(
    broker_url: str,
    root: Path,
    pipeline: Path,
    topics: Mapping[str, str],
    orders: list[dict[str, Any]],
    workers: list[Worker],
    expected: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> Worker:
    """The orders written to ``topics['orders']``, a worker running ``pipeline`` started; once it
    processed them all, ``topics['enriched']`` must hold ``expected(order)`` for every order it
    is not None for (exact numbers). The worker, for its stats."""
    from tests.integration.agents.support import processed, until

    await produce_json(broker_url, topics["orders"], 2, orders, "order_id")
    worker = start_worker(broker_url, root, pipeline, topics["dlq"], workers)
    await until(processed(worker, "enriched", len(orders)), "enriched to read the orders", worker)
    want = sorted(
        (e for o in orders if (e := expected(o)) is not None), key=lambda r: r["order_id"]
    )
    got = await read_json(broker_url, topics["enriched"], len(want), "order_id", exact=True)
    assert got == want
    return worker
