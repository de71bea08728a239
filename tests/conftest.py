"""Shared fixtures. Brokers are real: every integration test runs on Tansu and on Apache Kafka.

``broker_kind`` is parametrized (ids ``tansu``, ``kafka``) at session scope, so pytest orders the
tests to start each session broker once; ``broker`` (shared, tests use unique topic names) and
``fresh_broker`` (a broker of one's own) follow it. A test about Apache Kafka only is marked
``pytest.mark.kafka_only`` (its Tansu half is deselected), one about Tansu's limits
``pytest.mark.tansu_only``.

Without Java/Maven the Kafka half is skipped, and the terminal summary says why; under ``CI=true``
it fails instead. ``TABLESTREAM_BROKER`` set for the session runs the Kafka half against that
cluster (see tests/support/brokers.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import Broker, make_broker, stop_all_on_signals
from tests.support.brokers import EXTERNAL, IN_CI, SKIP_EXTERNAL, ExternalBroker, kafka_missing
from tests.support.postgres import E_NO_POSTGRES, PostgresCluster, postgres_cluster
from tests.support.postgres import available as pg_available

KINDS = ("tansu", "kafka")
#: The test brokers' log cleaner and retention check run every fraction of a second (defaults:
#: 15 s and 5 min), so that compaction and retention tests see them act within seconds.
KAFKA_TEST_CONFIG = {
    "log.cleaner.backoff.ms": "200",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    "log.retention.check.interval.ms": "500",
    "log.initial.task.delay.ms": "0",
    # Consumer groups may use 2 s sessions (the exactly-once crash tests: a SIGKILLed worker's
    # member is dropped in 2 s, not the broker default minimum's 6).
    "group.min.session.timeout.ms": "1000",
}


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM/SIGHUP stop the brokers first (SIGINT unwinds the fixtures; SIGKILL is covered by
    # the brokers' parent-death signal).
    stop_all_on_signals()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.kafka_only`` tests (what only Apache Kafka does) are not run on Tansu,
    ``@pytest.mark.tansu_only`` ones (Tansu's own limits) not on Kafka."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("broker_kind") if callspec is not None else None
        other = {"tansu": "kafka_only", "kafka": "tansu_only"}.get(str(kind))
        (drop if other and item.get_closest_marker(other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = kafka_missing()
    if reason and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(reason, yellow=True, bold=True)
    if EXTERNAL:
        terminalreporter.write_line(f"Apache Kafka half ran against TABLESTREAM_BROKER={EXTERNAL}")


@pytest.fixture(scope="session", params=KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind = str(request.param)
    reason = kafka_missing() if kind == "kafka" else None
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return kind


@pytest.fixture(scope="session")
def broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker of the kind for the test session (tests use unique topic names)."""
    os.environ.pop("TABLESTREAM_BROKER", None)  # workers get the test's broker, never the shell's
    if broker_kind == "kafka" and EXTERNAL:
        yield ExternalBroker(EXTERNAL)  # type: ignore[misc]
        return
    log = tmp_path_factory.mktemp("broker") / f"{broker_kind}.log"
    b = make_broker(broker_kind, log_path=log, kafka_config=KAFKA_TEST_CONFIG)
    try:
        yield b.start()
    finally:
        b.close()


@pytest.fixture
def fresh_broker(broker_kind: str, tmp_path: Path) -> Iterator[Broker]:
    """A broker of one's own, for tests that need an empty cluster, to replace it or restart it."""
    if broker_kind == "kafka" and EXTERNAL:
        pytest.skip(SKIP_EXTERNAL)
    b = make_broker(
        broker_kind, log_path=tmp_path / f"{broker_kind}.log", kafka_config=KAFKA_TEST_CONFIG
    )
    try:
        yield b.start()
    finally:
        b.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the test session (tests use their own tables)."""
    if not pg_available():
        pytest.fail(E_NO_POSTGRES)
    with postgres_cluster() as cluster:
        yield cluster
