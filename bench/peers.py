"""Peers in the same run (issue 15, item 6): one broker, one data set, every system's output
checked exactly against the expected set.

Jobs: ``enrich`` — a 10k-user table and JSON orders → lookup, filter tier = 'gold' AND amount >
500 → sink; ``window`` — a 10-second tumbling COUNT and SUM(amount) per user. Systems: a raw
aiokafka + orjson loop (the floor), tablestream (a real ``faust -A app worker``), Bytewax (tuned:
Kafka batches of 10k, orjson, batch operators) and Quix Streams. The peers and the raw loop run
from their own virtualenv (``~/.cache/tablestream/peers-venv``, created here on first use; never
the project's). The clock starts at a system's first order (startup and the peers' table preload
excluded) and stops when the checker, reading the sink live, has seen every expected output; CPU
is the system process's own over the same span.

    .venv/bin/python -m bench.peers [--orders 200000] [--users 10000] [--partitions 2]
        [--jobs enrich,window]
        [--systems raw,tablestream,tablestream-closures,tablestream-stream,bytewax,quix]
        [--rounds 3] [--broker tansu|kafka] [--profile PREFIX]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.brokers import add_broker_option, bench_broker
from bench.peers_data import ORDERS, USERS, Checker, Data, seed
from bench.pipeline_worker import Spy, proc_cpu, query_stats, start_worker
from tables.topics import TopicSpec, ensure_topics

PEERS_VENV = Path.home() / ".cache" / "tablestream" / "peers-venv"
PEERS_REQUIREMENTS = [
    "bytewax>=0.21,<0.22",
    "quixstreams>=3.20,<4",
    "orjson>=3.9,<4",
    "aiokafka>=0.10,<0.15",
]
JOBS_DIR = Path(__file__).parent / "peers_jobs"
SYSTEMS = ("raw", "tablestream", "tablestream-closures", "tablestream-stream", "bytewax", "quix")
#: tablestream with its stateless queries run by closures instead of generated code (A/B).
CLOSURES = {"TABLESTREAM_CODEGEN": "false"}

# The orders are keyed by their user (``seed``), so the stream says so (``key='user_id'``): the
# window job's GROUP BY user_id is then co-partitioned, aggregated where it is read without a
# repartition topic (agents.copartition), as a Kafka Streams or ksqlDB user's would be. The peers
# need no such declaration: Bytewax routes by key in process, Quix's group_by repartitions.
SQL_HEAD = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR)
  WITH (topic='{users}');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, amount DECIMAL(10,2), ts BIGINT)
  WITH (topic='{orders}', partitions='{partitions}', timestamp='ts', key='user_id');
"""
SQL_ENRICH = """
CREATE STREAM enriched WITH (topic='{sink}', partitions='{partitions}') AS
SELECT o.order_id, o.user_id, u.name, o.amount
FROM orders o JOIN users u ON u.id = o.user_id
WHERE u.tier = 'gold' AND o.amount > 500
EMIT CHANGES;
"""
# EMIT CHANGES: an update per order (more work than the peers' one row per closed window); the
# checker keeps the latest row per window. ``tablestream-stream`` writes the same rows as CREATE
# STREAM: the worker does not also keep them as a queryable table (as none of the peers does).
SQL_WINDOW = """
CREATE {sink_kind} per_user WITH (topic='{sink}', partitions='{partitions}') AS
SELECT user_id, COUNT(*) AS n, SUM(amount) AS total
FROM orders
WINDOW TUMBLING(10s)
GROUP BY user_id
EMIT CHANGES;
"""


def ensure_peers_venv() -> Path:
    """The peers' own virtualenv (created once; the project's .venv is never touched)."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        PEERS_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    probe = "import bytewax, quixstreams, orjson, aiokafka"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode != 0:
        print(f"installing the peers into {PEERS_VENV} ...")
        pip = [str(python), "-m", "pip", "install", "--quiet", *PEERS_REQUIREMENTS]
        subprocess.run(pip, check=True)
    return python


@dataclass
class Result:
    system: str
    job: str
    seconds: float = float("nan")
    cpu: float = float("nan")
    records: int = 0
    verdict: str = "not run"

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.records * 1e6


class Proc:
    """A peer job: its process, its CPU, and the marker file it writes at its first order."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.exit_cpu: float | None = None

    def cpu(self) -> float:
        """Its CPU seconds so far; once it exited, from its rusage (it is reaped here only)."""
        if self.exit_cpu is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == 0:
                return proc_cpu(self.proc.pid)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.exit_cpu = usage.ru_utime + usage.ru_stime
        return self.exit_cpu

    def stop(self) -> None:
        if self.exit_cpu is None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def measure(
    system: str,
    job: str,
    servers: str,
    data: Data,
    work: Path,
    python: Path,
    partitions: int,
    timeout: float,
    round_: int = 0,
    profile: str | None = None,
) -> Result:
    sink = f"peers-out-{system}-{job}-{round_}"
    await ensure_topics(servers, [TopicSpec(sink, partitions)])
    checker = Checker(job, data)
    stop = asyncio.Event()
    check = asyncio.create_task(checker.run(servers, sink, stop))
    result = Result(system, job, records=data.orders)
    run_dir = work / f"{system}-{job}-{round_}"
    run_dir.mkdir()
    marker = run_dir / "started.json"
    worker = proc = None
    spy: Spy | None = None
    t0 = cpu0 = None
    try:
        if system.startswith("tablestream"):
            sql = SQL_HEAD + (SQL_ENRICH if job == "enrich" else SQL_WINDOW)
            sink_kind = "STREAM" if system == "tablestream-stream" else "TABLE"
            sql = sql.format(
                users=USERS, orders=ORDERS, sink=sink, partitions=partitions, sink_kind=sink_kind
            )
            extra = {"TABLESTREAM_APP_ID": f"bench-{system}-{round_}"}
            if system == "tablestream-closures":
                extra.update(CLOSURES)
            worker = start_worker(servers, run_dir, sql, extra)
            assert worker.proc is not None
            pid = worker.proc.pid
            if profile is not None:
                spy = Spy(worker, f"{profile}-{system}-{job}-{round_}.txt")
                spy.start()

            def cpu_of() -> float:
                return proc_cpu(pid)
        else:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", ""),
                "PYTHONPATH": str(JOBS_DIR),
                "PEERS_BROKER": servers,
                "PEERS_ORDERS": ORDERS,
                "PEERS_USERS": USERS,
                "PEERS_SINK": sink,
                "PEERS_JOB": job,
                "PEERS_MARKER": str(marker),
                "PEERS_GROUP": f"peers-{system}-{job}-{os.getpid()}-{round_}",
                "PEERS_STATE_DIR": str(run_dir / "state"),
            }
            script = {"raw": ["raw_loop.py"], "quix": ["quix_job.py"]}.get(system)
            args = script or ["-m", "bytewax.run", "bytewax_job:flow"]
            proc = Proc([str(python), *args], env, JOBS_DIR, run_dir / "job.log")
            cpu_of = proc.cpu
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and checker.done_at is None:
            if t0 is None:
                if worker is not None:
                    # Polled: records read before the poll saw them are not timed (n0).
                    # The first stage reads the source: the most records in.
                    n0 = max(
                        (q.get("records_in", 0) for q in query_stats(worker).values()), default=0
                    )
                    if n0:
                        t0, cpu0 = time.time(), cpu_of()
                        result.records -= n0
                elif marker.exists():
                    mark = json.loads(marker.read_text())
                    t0, cpu0 = mark["wall"], mark["cpu"]
            if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
                raise RuntimeError(worker.tail())
            if proc is not None:
                proc.cpu()  # reaps it if it exited (bytewax ends at the topic's end)
                if proc.exit_cpu is not None and proc.proc.returncode and checker.done_at is None:
                    raise RuntimeError(proc.tail())
            if check.done():
                break
            await asyncio.sleep(0.02)
        if checker.done_at is not None and t0 is not None and cpu0 is not None:
            result.seconds = checker.done_at - t0
            result.cpu = cpu_of() - cpu0
        await asyncio.sleep(0.5)  # late extras would show up here
    except RuntimeError as exc:
        result.verdict = f"FAILED: {str(exc)[-1500:]}"
        return result
    finally:
        stop.set()
        await asyncio.gather(check, return_exceptions=True)
        if spy is not None:
            spy.stop()
        if worker is not None:
            worker.stop()
        if proc is not None:
            proc.stop()
    result.verdict = checker.verdict()
    return result


def median_of(rows: list[Result]) -> Result:
    """The round with the median rate among the exact ones (else the first)."""
    ok = sorted((r for r in rows if r.verdict.startswith("exact")), key=lambda r: r.rate)
    return ok[len(ok) // 2] if ok else rows[0]


def report(results: list[Result]) -> None:
    for job in dict.fromkeys(r.job for r in results):
        systems = dict.fromkeys(r.system for r in results if r.job == job)
        rounds = {s: [r for r in results if r.job == job and r.system == s] for s in systems}
        rows = [median_of(rs) for rs in rounds.values()]
        by = {r.system: r for r in rows if r.verdict.startswith("exact")}
        n = max(len(rs) for rs in rounds.values())
        print(f"\njob {job} (median of {n} round(s); rates of every round in brackets):")
        print(f"  {'system':<21} {'records/s':>10} {'CPU µs/rec':>10}  {'vs raw':>6}  output")
        for r in rows:
            ok = r.system in by
            rate = f"{r.rate:>10,.0f}" if ok else f"{'—':>10}"
            cpu = f"{r.cpu_us:>10.1f}" if ok else f"{'—':>10}"
            raw = by.get("raw")
            vs = f"{r.rate / raw.rate:>6.2f}" if ok and raw else f"{'—':>6}"
            every = ", ".join(
                f"{x.rate:,.0f}" for x in rounds[r.system] if x.verdict.startswith("exact")
            )
            print(f"  {r.system:<21} {rate} {cpu}  {vs}  {r.verdict[:40]} [{every}]")
        for ours in ("tablestream", "tablestream-closures", "tablestream-stream"):
            for peer in ("raw", "bytewax", "quix", "tablestream-closures"):
                if ours in by and peer in by and peer != ours:
                    print(f"  {ours} / {peer} = {by[ours].rate / by[peer].rate:.2f}")


async def main(args: argparse.Namespace) -> None:
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"--systems: unknown {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    python = ensure_peers_venv()
    print(f"load average at start: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    results: list[Result] = []
    try:
        with bench_broker(args.broker, work) as broker:
            t = time.perf_counter()
            data = await seed(broker.url, args.orders, args.users, args.partitions)
            print(
                f"seeded {args.orders:,} orders (+{args.users:,} sentinels), {args.users:,} users"
                f" in {time.perf_counter() - t:.1f}s; expected: {len(data.enrich):,} enriched,"
                f" {len(data.window):,} windows"
            )
            # Every system once per round, rounds in turn: the machine's load hits all alike.
            runs = [
                (j, n, s) for j in args.jobs.split(",") for n in range(args.rounds) for s in systems
            ]
            for job, round_, system in runs:
                r = await measure(
                    system,
                    job,
                    broker.url,
                    data,
                    work,
                    python,
                    args.partitions,
                    args.timeout,
                    round_,
                    args.profile,
                )
                results.append(r)
                extra = (
                    f"{r.rate:,.0f} records/s, {r.cpu_us:.1f} µs CPU/record"
                    if r.verdict.startswith("exact")
                    else ""
                )
                print(f"{job:<7} {system:<21} {extra}  {r.verdict[:300]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--jobs", default="enrich,window")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per system and job")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every system (medians)")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="py-spy (folded stacks) of each tablestream worker: PREFIX-<system>-<job>-<round>.txt",
    )
    add_broker_option(parser)
    asyncio.run(main(parser.parse_args()))
