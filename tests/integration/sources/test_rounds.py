"""Stream-table joins on external tables go through the planner's access paths and the
prefetcher, against a real PostgreSQL: a key that reads another joined table's row
(``JOIN users u ON u.id = o.user_id JOIN accounts a ON a.id = u.account_id``) is fetched in a
second round per batch — one round trip per table and batch, none per record — and EXPLAIN says
in which round each table is fetched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.codec import make_decoder, make_encoder
from agents.process import BatchProcessor
from core import codec
from sources.lookup import LookupTable
from sql import compile_query
from tables.memory import MemoryTable
from tables.protocol import Table
from tests.support.federation import external, unique_table
from tests.support.postgres import PostgresCluster
from tests.support.records import Collect, Rec

USERS = "CREATE TABLE users (id BIGINT, name VARCHAR, account_id BIGINT, PRIMARY KEY (id))"
ACCOUNTS = "CREATE TABLE accounts (id BIGINT, tier VARCHAR, PRIMARY KEY (id))"
STREAM = "CREATE STREAM orders (order_id BIGINT, user_id BIGINT) WITH (topic='orders');\n"
QUERY = (
    "CREATE STREAM out WITH (topic='out') AS SELECT o.order_id, u.name, a.tier,"
    " (SELECT tier FROM accounts x WHERE x.id = a.id + 1) AS next_tier"
    " FROM orders o JOIN users u ON u.id = o.user_id"
    " LEFT JOIN accounts a ON a.id = u.account_id EMIT CHANGES;"
)
#: user id -> (name, account id); user 4's account has no row (LEFT JOIN: tier NULL).
USER_ROWS = {1: ("ann", 10), 2: ("bob", 11), 3: ("cid", 10), 4: ("dan", 99), 5: ("eve", None)}
ACCOUNT_ROWS = {10: "gold", 11: "basic", 12: "silver"}


@pytest.fixture(scope="module")
def names(postgres: PostgresCluster) -> Iterator[tuple[str, str]]:
    users, accounts = unique_table("users"), unique_table("accounts")
    postgres.execute(f"CREATE TABLE {users} (id bigint primary key, name text, account_id bigint)")
    postgres.execute(f"CREATE TABLE {accounts} (id bigint primary key, tier text)")
    postgres.executemany(
        f"INSERT INTO {users} VALUES (%s, %s, %s)", [(k, *v) for k, v in USER_ROWS.items()]
    )
    postgres.executemany(f"INSERT INTO {accounts} VALUES (%s, %s)", list(ACCOUNT_ROWS.items()))
    yield users, accounts
    postgres.execute(f"DROP TABLE {users}, {accounts}")


def pg(postgres: PostgresCluster, ddl: str, remote: str, name: str) -> LookupTable:
    opts = f"connector='postgres', dsn='{postgres.dsn()}', table='public.{remote}'"
    table = external(f"{ddl} WITH ({opts}, cache='partial');\n", name)
    assert isinstance(table, LookupTable)
    return table


def processor(
    tables: dict[str, Table], declarations: str, decode: Any = None
) -> tuple[BatchProcessor, str]:
    """The batch processor of the query, and its EXPLAIN."""
    query = compile_query(declarations + STREAM + QUERY, tables)
    return BatchProcessor(
        query,
        decode or make_decoder(None),
        name="q",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        encode=make_encoder(query.output_columns, query.output_types),
    ), query.explain()


class _Tp:
    topic, partition = "orders", 0


async def run(p: BatchProcessor, user_ids: list[int]) -> list[dict[str, Any]]:
    recs = [
        Rec(0, i, None, codec.dumps({"order_id": i, "user_id": uid}))
        for i, uid in enumerate(user_ids)
    ]
    assert p.prefetch is not None
    await p.prefetch({_TP: recs})
    out = Collect()
    p.run(recs, out)
    assert not [r for r in out.records if r[0] == "dlq"]
    return [codec.loads(v) for t, _, v, _ in out.records if t == "out" and v is not None]


_TP = _Tp()


def expected(user_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for i, uid in enumerate(user_ids):
        if uid not in USER_ROWS:
            continue
        name, account = USER_ROWS[uid]
        tier = ACCOUNT_ROWS.get(account) if account is not None else None
        nxt = ACCOUNT_ROWS.get(account + 1) if tier is not None and account is not None else None
        out.append({"order_id": i, "name": name, "tier": tier, "next_tier": nxt})
    return out


async def test_a_key_read_from_another_joined_row_is_fetched_in_a_second_round(
    postgres: PostgresCluster, names: tuple[str, str]
) -> None:
    users = pg(postgres, USERS, names[0], "users")
    accounts = pg(postgres, ACCOUNTS, names[1], "accounts")
    try:
        p, plan = processor({"users": users, "accounts": accounts}, f"{USERS};\n{ACCOUNTS};\n")
        assert "LeftLookupJoin accounts AS a ON a.id = u.account_id: key lookup" in plan
        assert plan.count("fetched per batch, round 2") == 1, plan  # the join on a
        assert "fetched per batch, round 3" in plan  # the subquery reads a's row
        ids = [1, 2, 3, 4, 5, 6, 1, 2]
        assert await run(p, ids) == expected(ids)
        u, a = users.stats().as_dict(), accounts.stats().as_dict()
        # One round trip per table and round: users in round 1; accounts for the join's keys
        # (10, 11, 99) in round 2, and the subquery's (11, 12; 99 + 1 is not asked: no row)
        # in round 3. Nothing per record.
        assert (u["round_trips"], u["single_fetches"]) == (1, 0)
        assert (a["round_trips"], a["single_fetches"]) == (2, 0)
        # The next batch: its new keys in the same rounds, the cached ones not asked again.
        more = [5, 2, 1]
        assert await run(p, more) == expected(more)
        assert users.stats().as_dict()["round_trips"] == 1  # 5, 2, 1: all cached
        assert accounts.stats().as_dict()["round_trips"] == 2
    finally:
        users.close_sync()
        accounts.close_sync()


async def test_a_key_read_from_a_local_tables_row_is_fetched_in_the_first_round(
    postgres: PostgresCluster, names: tuple[str, str]
) -> None:
    users = MemoryTable("users", "id")
    for k, (name, account) in USER_ROWS.items():
        users.put(k, {"id": k, "name": name, "account_id": account})
    accounts = pg(postgres, ACCOUNTS, names[1], "accounts")
    try:
        p, plan = processor({"users": users, "accounts": accounts}, f"{USERS};\n{ACCOUNTS};\n")
        assert "ON a.id = u.account_id: key lookup" in plan
        assert "fetched per batch, round 2" in plan  # the subquery reads a's row
        ids = [4, 3, 2, 1]
        assert await run(p, ids) == expected(ids)
        a = accounts.stats().as_dict()
        assert (a["round_trips"], a["single_fetches"]) == (2, 0)
    finally:
        accounts.close_sync()


async def test_a_record_is_decoded_once_for_its_prefetch_and_its_run(
    postgres: PostgresCluster, names: tuple[str, str]
) -> None:
    users = pg(postgres, USERS, names[0], "users")
    accounts = pg(postgres, ACCOUNTS, names[1], "accounts")
    plain = make_decoder(None)
    decoded: list[bytes] = []

    def counting(raw: bytes) -> Any:
        decoded.append(raw)
        return plain(raw)

    try:
        decls = f"{USERS};\n{ACCOUNTS};\n"
        p, _ = processor({"users": users, "accounts": accounts}, decls, counting)
        ids = [3, 1, 4, 1]
        assert await run(p, ids) == expected(ids)
        assert len(decoded) == len(ids)  # by the prefetch; the run took its values
        out = Collect()
        p.run([Rec(0, 9, None, codec.dumps({"order_id": 9, "user_id": 2}))], out)
        assert len(decoded) == len(ids) + 1  # a batch run without a prefetch decodes itself
    finally:
        users.close_sync()
        accounts.close_sync()
