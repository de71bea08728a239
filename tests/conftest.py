"""Shared fixtures. Brokers are real: every integration test runs on Tansu and on Apache Kafka.

``broker_kind`` is parametrized (ids ``tansu``, ``kafka``) at session scope, so pytest orders the
tests to start each session broker once; ``broker`` (shared, tests use unique topic names),
``other_broker`` (a second cluster of the kind, shared too: for tests about state that meets a
different cluster) and ``fresh_broker`` (a broker of one's own, to restart or replace) follow it.
A test about Apache Kafka only is marked ``pytest.mark.kafka_only`` (its Tansu half is
deselected), one about Tansu's limits ``pytest.mark.tansu_only``. A test that needs a live
broker but whose behaviour does not depend on which (a page in a browser, an HTTP parameter's
validation) is marked ``pytest.mark.one_broker``: it runs on Tansu only, which every machine has.

``scripts/test.sh`` runs the suite in two pytest-xdist processes (``--dist loadgroup``): every
test on one broker kind is in one xdist group (``broker-tansu``, ``broker-kafka``), so each
session broker starts once in the whole run, in the process that runs that kind; the other
tests of a module with module-scoped fixtures are grouped by module (the fixtures start once),
the rest are scheduled one by one. Each process has its
own temporary directories and ports; nothing else is shared but the Kafka jar cache (resolved
atomically, see app/broker/kafka.py).

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
from tests.support import xdist
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
    # Lets a test's consumer group use sessions down to 1 s (the broker's default floor is 6 s),
    # so a SIGKILLed worker's member is dropped quickly; the default session stays as it was.
    "group.min.session.timeout.ms": "1000",
}


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM/SIGHUP stop the brokers first (SIGINT unwinds the fixtures; SIGKILL is covered by
    # the brokers' parent-death signal).
    stop_all_on_signals()
    xdist.register(config)


#: Marks that keep a test off a broker kind.
NOT_ON = {"tansu": ("kafka_only",), "kafka": ("tansu_only", "one_broker")}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.kafka_only`` tests (what only Apache Kafka does) are not run on Tansu,
    ``@pytest.mark.tansu_only`` ones (Tansu's own limits) and ``@pytest.mark.one_broker`` ones
    (the same on any broker) not on Kafka. Each test kept gets its xdist group (see
    :func:`xdist_group` and the module docstring)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        kind = item_broker_kind(item)
        if kind is not None and any(item.get_closest_marker(m) for m in NOT_ON.get(kind, ())):
            drop.append(item)
            continue
        keep.append(item)
        group = xdist_group(item, kind)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def xdist_group(item: pytest.Item, kind: str | None) -> str | None:
    """The broker kind's group; else the module's when the test uses a module or class fixture
    (it starts once); else none: the test is scheduled on its own, wherever there is room."""
    if kind is not None:
        return f"broker-{kind}"
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    if any(d.scope in ("module", "package", "class") for seq in defs for d in seq):
        return item.nodeid.split("::", 1)[0]
    return None


def item_broker_kind(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    kind = callspec.params.get("broker_kind") if callspec is not None else None
    return None if kind is None else str(kind)


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
    yield from _running(broker_kind, tmp_path_factory.mktemp("broker") / f"{broker_kind}.log")


@pytest.fixture(scope="session")
def other_broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A second broker of the kind for the session: another cluster, where the same topic names
    hold other records (state kept from ``broker`` must be noticed as foreign). Shared: tests use
    unique topic names and must not stop it; ``fresh_broker`` is the one to restart."""
    if broker_kind == "kafka" and EXTERNAL:
        pytest.skip(SKIP_EXTERNAL)
    yield from _running(broker_kind, tmp_path_factory.mktemp("broker") / f"{broker_kind}-other.log")


@pytest.fixture
def fresh_broker(broker_kind: str, tmp_path: Path) -> Iterator[Broker]:
    """A broker of one's own, for tests that need an empty cluster, to replace it or restart it."""
    if broker_kind == "kafka" and EXTERNAL:
        pytest.skip(SKIP_EXTERNAL)
    yield from _running(broker_kind, tmp_path / f"{broker_kind}.log")


def _running(kind: str, log: Path) -> Iterator[Broker]:
    """A broker of ``kind`` (its log at ``log``), started for a fixture and closed after it."""
    b = make_broker(kind, log_path=log, kafka_config=KAFKA_TEST_CONFIG)
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
