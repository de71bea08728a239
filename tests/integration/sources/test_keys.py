"""Keys sent to PostgreSQL as one array literal (``sources.postgres.array_literal``): text keys
with quotes, backslashes, commas, braces, spaces and the word NULL find their rows, integer keys
theirs, in one round trip per batch."""

from __future__ import annotations

from sources.postgres import array_literal
from tests.support.federation import lookup_table, unique_table
from tests.support.postgres import PostgresCluster

TRICKY = ['a"b', "c\\d", "NULL", "x,y", "{z}", " lead", "trail ", "é ü", "", "'q'"]


async def test_text_keys_with_array_syntax_in_them_find_their_rows(
    postgres: PostgresCluster,
) -> None:
    name = unique_table("codes")
    postgres.execute(f"CREATE TABLE {name} (code text primary key, n bigint)")
    postgres.executemany(
        f"INSERT INTO {name} VALUES (%s, %s)", [(c, i) for i, c in enumerate(TRICKY)]
    )
    opts = f"connector='postgres', dsn='{postgres.dsn()}', table='public.{name}'"
    table = lookup_table(
        f"CREATE TABLE codes (code VARCHAR, n BIGINT, PRIMARY KEY (code)) WITH ({opts});\n", "codes"
    )
    try:
        await table.prefetch(None, [*TRICKY, "absent", 'a"b'])
        for i, code in enumerate(TRICKY):
            assert table.get(code) == {"code": code, "n": i}, code
        assert table.get("absent") is None
        stats = table.stats().as_dict()
        assert (stats["round_trips"], stats["single_fetches"]) == (1, 0)
        # A probe on the BIGINT column: the same literal form, read as the column's type.
        await table.prefetch("n", [0, 3, 42])
        assert [k for k, _ in table.probe("n", 3)] == ["x,y"]
        assert table.probe("n", 42) == []
        assert table.stats().as_dict()["round_trips"] == 2
    finally:
        table.close_sync()


def test_the_literal_is_built_only_for_int_or_text_keys() -> None:
    assert array_literal([3, -1, 10**12]) == "{3,-1,1000000000000}"
    assert array_literal(['a"b', "c\\d"]) == '{"a\\"b","c\\\\d"}'
    assert array_literal([1.5, 2.5]) == [1.5, 2.5]  # psycopg adapts the rest
    assert array_literal([True]) == [True]  # bool is not int here: no "{True}"
