"""``processing_guarantee=exactly_once`` on a broker without transactions (Tansu) stops the worker
at start with one line naming the setting, the broker and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.broker import Broker
from app.factory import EXIT_CONFIG
from tests.integration.agents.support import topics, until, worker_env, write_pipeline
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.tansu_only]


async def test_tansu_refuses_exactly_once(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = topics()
    env = worker_env(broker.url, write_pipeline(tmp_path, names), names)
    env["TABLESTREAM_PROCESSING_GUARANTEE"] = "exactly_once"
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    proc = worker.proc
    assert proc is not None
    await until(lambda: proc.poll() is not None, "the worker to stop", timeout=60)
    assert proc.returncode == EXIT_CONFIG
    log = worker.log.read_text(errors="replace")
    expected = (
        f"error: processing_guarantee=exactly_once: the broker at"
        f" {broker.url.removeprefix('kafka://')} does not support transactions"
        " (InitProducerId for a transactional producer failed:"
    )
    lines = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, worker.tail()
    assert lines[0].startswith(expected), lines[0]
    # Stopped before anything started: no traceback, no query.
    assert "Traceback" not in log
    assert "running (" not in log
