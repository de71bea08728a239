"""The offline runner (``python -m sql run``) with external tables: the declaration carries the
connector (no ``--table``), and the output equals the same query over a ``--table`` file."""

from __future__ import annotations

import io
from pathlib import Path

from core.codec import dumps
from sql.runner import main
from tests.support.federation import (
    CUSTOMERS,
    declaration,
    duck_file,
    pg_table,
    unique_table,
)
from tests.support.postgres import PostgresCluster

QUERY = """
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT, amount DECIMAL(10,2)) WITH (topic='o');
SELECT o.order_id, c.tier, c.credit, o.amount * 2 AS twice,
       (SELECT country FROM customers k WHERE k.id = o.customer_id + 1) AS next_country
FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
WHERE NOT EXISTS (SELECT 1 FROM customers b WHERE b.id = o.customer_id AND b.tier = 'blocked')
"""


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, out, err)
    return code, out.getvalue(), err.getvalue()


def kafka_run(tmp_path: Path) -> tuple[Path, str]:
    """The stream file, and the query's output over a ``--table`` file of the same rows."""
    stream = tmp_path / "orders.jsonl"
    stream.write_text(
        "".join(
            dumps({"order_id": n, "customer_id": cid, "amount": "1.25"}).decode() + "\n"
            for n, cid in enumerate([1, 2, 5, 7, None, 3, 4, 1])
        )
    )
    rows = tmp_path / "customers.jsonl"
    rows.write_text(
        "".join(
            dumps({"id": k, "tier": t, "credit": c, "country": co}).decode() + "\n"
            for k, (t, c, co) in CUSTOMERS.items()
        )
    )
    kafka = tmp_path / "kafka.sql"
    kafka.write_text(declaration("customers", "topic='customers'") + QUERY)
    code, expected, err = run(
        ["run", str(kafka), "--table", f"customers={rows}", "--stream", f"orders={stream}"]
    )
    assert code == 0, err
    assert expected.count("\n") == 7
    return stream, expected


def test_runner_reads_postgres_and_duckdb_tables(postgres: PostgresCluster, tmp_path: Path) -> None:
    stream, expected = kafka_run(tmp_path)
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    duck = tmp_path / "crm.duckdb"
    duck_file(duck, "customers", CUSTOMERS)
    for options in (
        f"connector='postgres', dsn='{postgres.dsn(password='s3cret')}', table='{name}'",
        f"connector='duckdb', path='{duck}', table='customers', cache='full'",
    ):
        pipeline = tmp_path / "external.sql"
        pipeline.write_text(declaration("customers", options) + QUERY)
        code, out, err = run(["run", str(pipeline), "--stream", f"orders={stream}"])
        assert (code, err) == (0, "")
        assert out == expected
        code, plan, _ = run(["run", str(pipeline), "--stream", "orders", "--explain"])
        assert code == 0
        assert "[source: " in plan
        assert "s3cret" not in plan


def test_runner_reports_a_bad_external_table(tmp_path: Path) -> None:
    pipeline = tmp_path / "bad.sql"
    pipeline.write_text(
        declaration("customers", f"connector='duckdb', path='{tmp_path / 'no.duckdb'}', table='t'")
        + QUERY
    )
    code, out, err = run(["run", str(pipeline), "--stream", "orders"])
    assert code == 2
    assert out == ""
    assert err.startswith("error: table 'customers': cannot connect to duckdb (path=")


def test_runner_reads_the_tables_of_a_catalog(postgres: PostgresCluster, tmp_path: Path) -> None:
    """``CREATE CATALOG pg WITH (connector='postgres', ...)`` and ``pg.public.<table>`` in the
    query: columns and key read from PostgreSQL, the same output as over a ``--table`` file; a
    table the database does not have is exit status 2 naming catalog and table."""
    stream, expected = kafka_run(tmp_path)
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    dsn = postgres.dsn(password="s3cret")
    pipeline = tmp_path / "catalog.sql"
    catalog = f"CREATE CATALOG pg WITH (connector='postgres', dsn='{dsn}', cache='partial');\n"
    pipeline.write_text(catalog + QUERY.replace(" customers ", f" pg.public.{name} "))
    code, out, err = run(["run", str(pipeline), "--stream", f"orders={stream}"])
    assert (code, err) == (0, "")
    assert out == expected
    code, plan, _ = run(["run", str(pipeline), "--stream", "orders", "--explain"])
    assert code == 0
    assert f"LeftLookupJoin pg.public.{name} AS c" in plan
    assert "fetched per batch" in plan
    assert "s3cret" not in plan
    pipeline.write_text(catalog + QUERY.replace(" customers ", " pg.public.nope "))
    code, out, err = run(["run", str(pipeline), "--stream", f"orders={stream}"])
    assert (code, out) == (2, "")
    assert "catalog 'pg': table 'public.nope': no such table" in err
    assert "s3cret" not in err
