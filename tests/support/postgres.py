"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests: initdb in a temporary directory,
``pg_ctl start`` on a free port, stopped (and the directory removed) at the end.

initdb refuses to run as root: when the tests run as root, the cluster belongs to the
``postgres`` user (``runuser -u postgres --``). Authentication is ``trust`` on 127.0.0.1, so a
DSN's password is accepted and ignored (the tests check it never shows anywhere).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

E_NO_POSTGRES = "PostgreSQL binaries (initdb, pg_ctl) are not on PATH"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str | None:
    """``name`` on PATH, else in Debian's ``/usr/lib/postgresql/<version>/bin`` (newest)."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def available() -> bool:
    return _bin("initdb") is not None and _bin("pg_ctl") is not None


class PostgresCluster:
    """One cluster; :meth:`stop` and :meth:`start` again keep its data and port."""

    def __init__(self, base: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tablestream-pg-", dir=base))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self.pid: int | None = None
        self._started = False

    def _run(self, args: Sequence[str], timeout: float = 120) -> None:
        cmd = list(args)
        cmd[0] = _bin(cmd[0]) or cmd[0]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            ["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--locale=C",
             "-E", "UTF8", "--no-sync"]
        )  # fmt: skip

    def start(self) -> None:
        """Started and accepting connections. A first start whose port was taken meanwhile (the
        free port is only free when asked: another test process's broker may bind it first)
        tries new ports; a restart keeps its port, as the tests that restart expect."""
        for attempt in range(3):
            opts = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            cmd = ["pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start"]
            try:
                self._run(cmd)
                break
            except subprocess.CalledProcessError as exc:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if self._started or attempt == 2 or "in use" not in log:
                    tail = "\n".join(log.splitlines()[-15:])
                    raise RuntimeError(
                        f"PostgreSQL did not start on port {self.port}:\n{tail}"
                    ) from exc
                self.port = _free_port()
        self._started = True
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Fast shutdown (clients disconnected), by the cluster's own pg_ctl; then its pid."""
        if self.pid is None:
            return
        try:
            self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60)
        except (subprocess.SubprocessError, OSError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, db: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def execute(self, sql: str, params: Sequence[Any] | None = None, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(db), autocommit=True) as conn:
            conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(db), autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(sql, rows)

    def wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@contextlib.contextmanager
def postgres_cluster(base: Path | None = None) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(base)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
