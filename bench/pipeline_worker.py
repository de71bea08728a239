"""The worker a pipeline bench measures: a real ``faust -A app worker`` started on a pipeline
file, its CPU time and ``/queries/`` statistics polled, its throughput from the first record it
reads to the ack of its last output, py-spy sampling it in between (used by
:mod:`bench.pipeline` and the other pipeline benches).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.kafka import read_all
from tests.support.worker import Worker


def worker_env(
    servers: str, work: Path, sql: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The settings of a bench's workers: the pipeline ``sql`` (written to ``work``), the app
    ``bench`` on the broker ``servers``, warnings logged; ``extra`` adds or overrides."""
    pipeline = work / "pipeline.sql"
    pipeline.write_text(sql)
    return {
        "TABLESTREAM_BROKER": servers,
        "TABLESTREAM_APP_ID": "bench",
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_LOG_LEVEL": "warning",
        **(extra or {}),
    }


def start_worker(
    servers: str,
    work: Path,
    sql: str,
    extra: dict[str, str] | None = None,
    tree: Path | None = None,
) -> Worker:
    """A real ``faust -A app worker`` running the pipeline ``sql``, its files under ``work``
    (``extra``: more ``TABLESTREAM_*`` settings, e.g. another app id or codegen off; ``tree``:
    another checkout to run, first on the path and the working directory)."""
    env = worker_env(servers, work, sql, extra)
    if tree is None:
        return Worker(work / "worker", env).start()
    env["PYTHONPATH"] = str(tree)
    return Worker(work / "worker", env, cwd=tree).start()


class Spy:
    """py-spy (if on PATH, or beside this Python) sampling the worker from :meth:`start` until
    :meth:`stop`: where the per-event time goes."""

    def __init__(self, worker: Worker, out: str | None) -> None:
        self.worker, self.out = worker, out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.out is None or self.proc is not None:
            return
        assert self.worker.proc is not None
        spy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if spy is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        cmd = [spy, "record", "--pid", str(self.worker.proc.pid), "-o", self.out, "--rate", "250"]
        if self.out.endswith(".txt"):
            cmd += ["--format", "raw"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            self.proc.wait(60)
            self.proc = None


@contextlib.contextmanager
def profiled(worker: Worker, out: str | None) -> Iterator[None]:
    """py-spy sampling the worker inside the block (its start-up included)."""
    spy = Spy(worker, out)
    spy.start()
    try:
        yield
    finally:
        spy.stop()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def query_stats(worker: Worker) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{worker.web}/queries/", timeout=2) as resp:
            body = json.loads(resp.read())
    except OSError:
        return {}
    return {q["name"]: q for q in body["queries"]}


async def sink_rate(servers: str, sink: str = "bench-checked") -> float:
    """Outputs per second from the first to the last output's timestamp (set when appended)."""
    out = await read_all(servers, sink, timeout=120)
    stamps: list[int] = sorted(r.timestamp for r in out)
    return (len(stamps) - 1) / max((stamps[-1] - stamps[0]) / 1000, 1e-3)


def pipeline_throughput(
    worker: Worker,
    expect: int,
    name: str = "checked",
    on_first: Callable[[], None] | None = None,
) -> dict[str, float]:
    """From the first record the query reads to the ack of the last output, by polling
    (``on_first``: called when the first records were read, e.g. to start a profiler)."""
    assert worker.proc is not None
    first = cpu0 = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        q = query_stats(worker).get(name, {})
        n = q.get("records_in", 0)
        if n and first is None:
            if on_first is not None:
                on_first()
            first, cpu0 = time.perf_counter(), proc_cpu(worker.proc.pid)
            n0 = n
        if n >= expect and q.get("records_out", 0) >= expect and q.get("lag") == 0:
            assert first is not None
            assert cpu0 is not None
            if n0 >= expect:  # nothing left to time after the first poll
                raise RuntimeError(
                    f"query {name!r} read all {expect} records before the first poll"
                    " (0.1 s): too few records to time; give more (--orders)"
                )
            return {
                "seconds": time.perf_counter() - first,
                "events": expect - n0,
                "cpu": proc_cpu(worker.proc.pid) - cpu0,
                "p99_batch_ms": q["batch_latency_ms"]["p99"],
            }
        if worker.proc.poll() is not None:
            raise RuntimeError(worker.tail())
        # Polled 10 times a second: each poll is an HTTP request the worker serves (at 50/s
        # they were ~2% of its CPU in a profile), and an idle worker spends no CPU meanwhile.
        time.sleep(0.1)
    raise RuntimeError("pipeline did not finish")
