"""`faust -A app tables` against a running worker, and faust's own variables not winning over
ours: the worker listens where TABLESTREAM_WEB_PORT says even with WEB_PORT set."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker, free_port
from tests.support.kafka import create_topic, produce, rows, unique
from tests.support.worker import FAUST, ROOT, Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def worker() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def tables_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TABLESTREAM_")}
    return subprocess.run(
        [FAUST, "-A", "app", "tables", *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_tables_lists_the_running_workers_tables(
    broker: EmbeddedBroker, tmp_path: Path, worker: list[Worker]
) -> None:
    topic = await create_topic(broker.url, unique("users"), partitions=2)
    await produce(broker.url, topic, rows((str(i), {"id": i}) for i in range(300)))
    faust_port = free_port()
    env = {
        "TABLESTREAM_BROKER": broker.url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_TABLES": f"users:{topic}:id",
        # faust's own names for the web port and data dir: not read (ours win, with a warning).
        "WEB_PORT": str(faust_port),
        "APP_DATADIR": str(tmp_path / "faust-datadir"),
    }
    w = Worker(tmp_path / "w", env).start()
    worker.append(w)
    stats = await asyncio.to_thread(w.table, "users")
    assert stats["size"] == 300
    assert not (tmp_path / "faust-datadir").exists()
    assert "WEB_PORT='" + str(faust_port) + "' is faust's variable and is not read" in w.tail(400)

    # Only the web port is known to the shell: no pipeline, no table variables.
    done = tables_cli(env={"TABLESTREAM_WEB_PORT": str(w.port)})
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["name", "topic", "ready", "rows", "lag", "malformed", "on", "disk"]
    assert lines[0].split()[:6] == ["users", topic, "true", "300", "0", "0"]

    as_json = tables_cli("--json", "--web", w.web, env={})
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["live"] is True
    assert body["worker"] == w.web
    (users,) = body["tables"]
    assert (users["name"], users["size"], users["ready"]) == ("users", 300, True)
