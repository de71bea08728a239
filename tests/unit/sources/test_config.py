"""Bad declarations of external tables: one clear error, naming the table and the option, when
the pipeline is loaded (before anything connects). No password in any message."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.pipeline import load_pipeline
from core.errors import ConfigError
from sources.cache import MISS, LookupCache
from sources.config import redact
from sources.types import fits

STREAM = "CREATE STREAM o (id BIGINT, cid BIGINT) WITH (topic='o');\n"
QUERY = (
    "CREATE STREAM out WITH (topic='out') AS SELECT o.id, c.tier FROM o"
    " JOIN c ON c.id = o.cid EMIT CHANGES;\n"
)
DSN = "postgresql://app:s3cret@127.0.0.1:1/crm"


def load(tmp_path: Path, table: str) -> ConfigError:
    path = tmp_path / "p.sql"
    path.write_text(table + STREAM + QUERY)
    with pytest.raises(ConfigError) as err:
        load_pipeline([path])
    assert "s3cret" not in str(err.value)
    return err.value


@pytest.mark.parametrize(
    ("with_", "expected"),
    [
        ("connector='mysql'", "table 'c': option connector='mysql' is not one of kafka, postgres"),
        (f"connector='postgres', dsn='{DSN}', table='t', colour='red'", "unknown option 'colour'"),
        ("connector='postgres', table='t'", "option 'dsn' is required for connector='postgres'"),
        (f"connector='postgres', dsn='{DSN}'", "option 'table' is required"),
        (f"connector='postgres', dsn='{DSN}', table='t', cache='lru'", "option cache='lru' is not"),
        (f"connector='postgres', dsn='{DSN}', table='t', cache_ttl='1y'", "option cache_ttl='1y'"),
        (f"connector='postgres', dsn='{DSN}', table='t', on_error='x'", "option on_error='x'"),
        (f"connector='postgres', dsn='{DSN}', table='t', password='p'", "option 'password'"),
        ("connector='duckdb', table='t', cache_max_rows='0'", "option 'path' is required"),
        ("connector='duckdb', path='x', table='t', cache_max_rows='0'", "cache_max_rows='0'"),
    ],
)
def test_a_bad_option_is_one_clear_error(tmp_path: Path, with_: str, expected: str) -> None:
    err = load(
        tmp_path, f"CREATE TABLE c (id BIGINT, tier VARCHAR, PRIMARY KEY (id)) WITH ({with_});\n"
    )
    assert expected in str(err)
    assert "table 'c'" in str(err)
    assert f"{tmp_path / 'p.sql'}:1:" in str(err)


def test_external_tables_need_declared_columns_and_a_key(tmp_path: Path) -> None:
    err = load(tmp_path, f"CREATE TABLE c WITH (connector='postgres', dsn='{DSN}', table='t');\n")
    assert "needs declared columns" in str(err)
    err = load(
        tmp_path,
        f"CREATE TABLE c (id BIGINT) WITH (connector='postgres', dsn='{DSN}', table='t');\n",
    )
    assert "needs a PRIMARY KEY" in str(err)


def test_a_scan_of_a_partial_cache_table_is_rejected_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(
        f"CREATE TABLE c (id BIGINT, tier VARCHAR, PRIMARY KEY (id))"
        f" WITH (connector='postgres', dsn='{DSN}', table='t');\n"
        + STREAM
        + "CREATE STREAM out WITH (topic='out') AS SELECT o.id FROM o"
        " WHERE o.cid IN (SELECT id FROM c WHERE tier <> 'gold') EMIT CHANGES;\n"
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline([path])
    assert "table 'c' (postgres 127.0.0.1:1/crm" in str(err.value)
    assert "cannot be scanned" in str(err.value)
    assert "cache='full'" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_redact_removes_passwords() -> None:
    assert redact(DSN) == "postgresql://app:***@127.0.0.1:1/crm"
    assert redact("host=x password=abc dbname=y") == "host=x password=*** dbname=y"
    assert redact("postgresql://app@h/db") == "postgresql://app@h/db"


def test_declared_types_against_database_types() -> None:
    assert fits("BIGINT", "integer")
    assert fits("DECIMAL(12,2)", "numeric(12,2)")
    assert fits("DECIMAL(12,2)", "DECIMAL(10,2)")
    assert not fits("DECIMAL(12,2)", "numeric(12,3)")
    assert not fits("DECIMAL(12,2)", "double precision")
    assert fits("TIMESTAMP", "timestamp with time zone")
    assert fits("STRING", "character varying(20)")
    assert not fits("BIGINT", "text")


def test_lookup_cache_ttls_lru_and_stale() -> None:
    now = [0.0]
    c = LookupCache(max_rows=2, ttl=10, missing_ttl=1, clock=lambda: now[0])
    c.put({1: "a", 2: "b"}, [3])  # 3 is cached as missing; 1 is evicted (max 2 rows)
    assert c.lookup(1) is MISS
    assert c.lookup(2) == "b"
    assert c.lookup(3) is None
    now[0] = 2.0
    assert c.lookup(3) is MISS  # the negative entry expired; the row did not
    assert c.lookup(2) == "b"
    now[0] = 11.0
    assert c.lookup(2) is MISS
    assert c.stale(2) == "b"
    assert c.counts() == {
        "hits": 2,
        "misses": 3,
        "negative_hits": 1,
        "stale_serves": 1,
        "cached_rows": 2,
    }
