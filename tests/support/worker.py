"""Runs real ``faust -A app worker`` processes for tests, and stops what it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.broker import free_port
from app.webclient import get_json, try_get_json

ROOT = Path(__file__).resolve().parents[2]
FAUST = str(Path(sys.executable).parent / "faust")

__all__ = ["FAUST", "ROOT", "Worker", "get_json"]


class Worker:
    """One worker process with its own data dir and web port."""

    def __init__(self, data_dir: Path, env: dict[str, str], cwd: Path = ROOT) -> None:
        self.data_dir = data_dir
        #: The checkout the worker runs from (faust imports the app from the working directory).
        self.cwd = cwd
        self.port = free_port()
        self.log = data_dir.parent / f"{data_dir.name}-worker.log"
        self.env = {
            **os.environ,
            "TABLESTREAM_DATA_DIR": str(data_dir),
            "TABLESTREAM_WEB_PORT": str(self.port),
            "TABLESTREAM_SESSION_TIMEOUT": "6",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [FAUST, "-A", "app", "worker", "-l", "info"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def table(self, name: str, timeout: float = 90.0) -> dict[str, Any]:
        """The table's stats from the web view, once it reports ready."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}: {self.tail()}")
            status, body = try_get_json(f"{self.web}/tables/{name}/?limit=1")
            last = body
            if status == 200 and body["table"]["ready"]:
                return dict(body["table"])
            time.sleep(0.3)
        raise AssertionError(f"table {name} not ready after {timeout}s: {last}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
