"""/live and /ready of a real worker running a pipeline: ready and live with its queries running;
a stopped event loop answers no probe, and the worker is live again when it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker
from tests.integration.agents.support import queries, topics, until, worker_env, write_pipeline
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def test_live_follows_the_event_loop(
    broker: EmbeddedBroker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = topics()
    env = worker_env(broker.url, write_pipeline(tmp_path, names), names)
    worker = Worker(tmp_path / "w", {**env, "TABLESTREAM_LIVE_MAX_AGE": "5"}).start()
    workers.append(worker)
    running = await until(
        lambda: (
            all(q["state"] == "running" for q in queries(worker).values())
            and len(queries(worker)) == 3
        ),
        "every query running",
        worker,
        timeout=120,
    )
    assert running
    # Ready: the tables caught up and every query (both stages of the stateful one) runs. The
    # queries may run before the aggregate's result table ("totals") has caught up with its
    # topic: ready follows within seconds.
    ready = (200, {"ready": True, "waiting_for": [], "queries_not_running": {}})
    await until(lambda: get_json(f"{worker.web}/ready") == ready, "/ready", worker, timeout=30)
    status, live = await asyncio.to_thread(get_json, f"{worker.web}/live")
    assert status == 200
    assert live["live"] is True
    assert live["problems"] == []
    assert 0 <= live["heartbeat_age_s"] < 5
    assert live["heartbeats"] >= 1  # the timer runs: the age is measured, not assumed

    # A stopped loop (SIGSTOP) answers nothing: the kubelet's probe times out.
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises((urllib.error.URLError, TimeoutError, OSError)):
            await asyncio.to_thread(urllib.request.urlopen, f"{worker.web}/live", None, 2)
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    for _ in range(50):
        status, live = await asyncio.to_thread(get_json, f"{worker.web}/live")
        if status == 200:
            break
        await asyncio.sleep(0.2)
    assert status == 200, live
