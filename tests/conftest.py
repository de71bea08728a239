"""Shared fixtures. Brokers are real: every integration test runs on Tansu and on Apache Kafka.

``broker_kind`` is parametrized (ids ``tansu``, ``kafka``) at session scope, so pytest orders the
tests to start each session broker once; ``broker`` (shared, tests use unique topic names) and
``fresh_broker`` (a broker of one's own) follow it. A module that is about one broker only
parametrizes ``broker_kind`` itself (``pytest.mark.parametrize("broker_kind", ["kafka"],
indirect=True)``).

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

KINDS = ("tansu", "kafka")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM/SIGHUP stop the brokers first (SIGINT unwinds the fixtures; SIGKILL is covered by
    # the brokers' parent-death signal).
    stop_all_on_signals()


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
    b = make_broker(broker_kind, log_path=tmp_path_factory.mktemp("broker") / f"{broker_kind}.log")
    try:
        yield b.start()
    finally:
        b.close()


@pytest.fixture
def fresh_broker(broker_kind: str, tmp_path: Path) -> Iterator[Broker]:
    """A broker of one's own, for tests that need an empty cluster, to replace it or restart it."""
    if broker_kind == "kafka" and EXTERNAL:
        pytest.skip(SKIP_EXTERNAL)
    b = make_broker(broker_kind, log_path=tmp_path / f"{broker_kind}.log")
    try:
        yield b.start()
    finally:
        b.close()
