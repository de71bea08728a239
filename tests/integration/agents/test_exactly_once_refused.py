"""``processing_guarantee=exactly_once`` on a broker without transactions (Tansu) stops the worker
at start with one line naming the setting, the broker and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.broker import Broker
from tests.integration.agents.support import topics, until, worker_env, write_pipeline
from tests.support.worker import Worker

pytestmark = [
    pytest.mark.broker,
    pytest.mark.parametrize("broker_kind", ["tansu"], indirect=True),
]


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
    assert proc.returncode != 0
    log = worker.log.read_text(errors="replace")
    expected = (
        f"processing_guarantee=exactly_once: the broker at {broker.url.removeprefix('kafka://')}"
        " does not support transactions (InitProducerId for a transactional producer failed:"
    )
    assert expected in log, worker.tail()
    # Nothing was started: no query ran.
    assert "running (" not in log
