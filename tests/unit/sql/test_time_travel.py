"""The time-travel forms of a table reference: what the dialect parses, the positioned errors
of the malformed ones, and ``FOR SYSTEM_VERSION AS OF n`` / ``AT SNAPSHOT n`` on a versioned
(Kafka-kind) table, which reads its version ``n``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlglot import exp

from sql import compile_query
from sql.catalog import Catalog
from sql.errors import BindError, ParseError
from sql.parse import parse_script
from sql.time_travel import by_version, constant, label
from tables.memory import MemoryTable
from tests.support.sql_temporal import DECLS, prices, run


def version_of(sql: str) -> exp.Version:
    query = parse_script(sql).require_query()
    tables = [t for t in query.find_all(exp.Table) if t.args.get("version") is not None]
    assert len(tables) == 1
    version = tables[0].args["version"]
    assert isinstance(version, exp.Version)
    return version


@pytest.mark.parametrize(
    ("form", "text", "versioned", "value"),
    [
        ("AT SNAPSHOT 123", "AT SNAPSHOT 123", True, 123),
        ("FOR SYSTEM_VERSION AS OF 7", "FOR SYSTEM_VERSION AS OF 7", True, 7),
        ("FOR VERSION AS OF 7", "FOR SYSTEM_VERSION AS OF 7", True, 7),
        (
            "FOR SYSTEM_TIME AS OF TIMESTAMP '1970-01-01 00:00:01'",
            "FOR SYSTEM_TIME AS OF CAST('1970-01-01 00:00:01' AS TIMESTAMP)",
            False,
            1000,
        ),
        ("FOR SYSTEM_TIME AS OF o.ts", "FOR SYSTEM_TIME AS OF o.ts", False, None),
    ],
)
def test_forms(form: str, text: str, versioned: bool, value: int | None) -> None:
    for where in (
        f"SELECT 1 FROM o JOIN m {form} AS b ON b.k = o.k",
        f"SELECT (SELECT v FROM m {form} WHERE m.k = o.k) FROM o",
    ):
        version = version_of(where)
        assert (label(version), by_version(version), constant(version)) == (
            text,
            versioned,
            value,
        )


def test_a_table_aliased_at_is_no_snapshot() -> None:
    query = parse_script("SELECT 1 FROM o JOIN m at ON at.k = o.k").require_query()
    assert all(t.args.get("version") is None for t in query.find_all(exp.Table))


@pytest.mark.parametrize(
    ("sql", "column", "message"),
    [
        ("SELECT 1 FROM o JOIN m AT SNAPSHOT AS b ON b.k = o.k", 36, "a snapshot id after AT"),
        (
            "SELECT 1 FROM o JOIN m FOR SYSTEM_VERSION AS OF ON m.k = o.k",
            49,
            "a snapshot id after FOR SYSTEM_VERSION AS OF",
        ),
        (
            "SELECT 1 FROM o WHERE EXISTS (SELECT 1 FROM m FOR SYSTEM_TIME AS OF WHERE m.k = o.k)",
            69,
            "a time (a TIMESTAMP or a column) after FOR SYSTEM_TIME AS OF",
        ),
    ],
)
def test_a_form_without_its_value_is_a_parse_error(sql: str, column: int, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_script(sql)
    assert (info.value.line, info.value.column) == (1, column)
    assert message in str(info.value)


def test_system_version_reads_a_version_of_a_versioned_table() -> None:
    # prices' changes: 1 a=10.00, 2 b=5.00, 3 a=11.00, 4 b deleted, 5 a=12.00, 6 a=10.50 (late)
    orders = [{"id": 1, "sku": "a", "ts": 0}, {"id": 2, "sku": "b", "ts": 0}]
    sql = "SELECT o.id, p.price FROM orders o LEFT JOIN prices {form} AS p ON p.sku = o.sku"
    assert run(sql.format(form="FOR SYSTEM_VERSION AS OF 3"), prices(), orders) == [
        {"id": 1, "price": Decimal("11.00")},
        {"id": 2, "price": Decimal("5.00")},
    ]
    assert run(sql.format(form="AT SNAPSHOT 4"), prices(), orders) == [
        {"id": 1, "price": Decimal("11.00")},
        {"id": 2, "price": None},
    ]


def test_a_version_must_be_a_literal_and_the_table_versioned() -> None:
    with pytest.raises(BindError, match="needs a snapshot id \\(a whole number literal\\)"):
        compile_query(
            DECLS + "SELECT o.id FROM orders o JOIN prices AT SNAPSHOT o.ts p ON p.sku = o.sku",
            Catalog.of({"prices": prices()}),
        )
    plain = MemoryTable("prices", key_field="sku")  # no history
    with pytest.raises(BindError) as info:
        compile_query(
            DECLS + "SELECT o.id FROM orders o JOIN prices AT SNAPSHOT 3 p ON p.sku = o.sku",
            Catalog.of({"prices": plain}),
        )
    assert "AT SNAPSHOT needs a table with snapshots (connector='iceberg') or a versioned" in str(
        info.value
    )
    assert (info.value.line, info.value.column) == (4, 39)  # the AT
