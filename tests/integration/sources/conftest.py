"""The ClickHouse server and the chdb session path of the sources tests (one each per run).

A missing server binary is installed by ``scripts/ensure_clickhouse.sh`` when we are root; when
it still cannot run, the server tests are skipped, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import IN_CI
from tests.support.clickhouse import ClickHouseServer, clickhouse_server, ensure_installed
from tests.support.federation import CUSTOMERS, pg_table
from tests.support.postgres import PostgresCluster, postgres_cluster


@pytest.fixture(scope="session")
def clickhouse() -> Iterator[ClickHouseServer]:
    """One throwaway ClickHouse server for the run (tests make their own tables)."""
    try:
        ensure_installed()
        server = clickhouse_server()
        started = server.__enter__()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"no ClickHouse server can run here: {exc}")
        pytest.skip(f"no ClickHouse server can run here: {exc}")
    try:
        yield started
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chdb session path of the run (chdb holds one per process)."""
    return tmp_path_factory.mktemp("chdb") / "session"


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of the test's own with the customers: the test stops and starts it."""
    with postgres_cluster() as cluster:
        pg_table(cluster, "customers", CUSTOMERS)
        yield cluster
