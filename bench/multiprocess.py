"""Several ``faust -A app worker`` processes on one host: 1 against N processes, stateless and
stateful, on the embedded broker and the data of ``bench.pipeline``.

Every process is a full worker with its own data directory and web port
(``TABLESTREAM_DATA_DIR``, ``TABLESTREAM_WEB_PORT``) and the same ``TABLESTREAM_APP_ID``, so the
processes share each query's consumer groups and the groups spread the partitions among them
(see README, "Several workers on one host"). Jobs (``--jobs``):

- ``stateless``: the IN + EXISTS + scalar + join pipeline of ``bench.pipeline`` (one output
  per order);
- ``stateful`` / ``stateful-stream``: ``GROUP BY user_id`` with COUNT and SUM, EMIT CHANGES
  (``bench.pipeline_aggregate``) over orders keyed by order: two stages through a repartition
  topic; the sink a ``CREATE TABLE`` (each process also loads the whole result table) or a
  ``CREATE STREAM`` (none does);
- ``fold`` / ``fold-stream``: the same over orders keyed by user and declared so
  (``key='user_id'``): one co-partitioned stage, the generated fold; table or stream sink.

Each run gets a fresh broker and data set. The processes start first and the orders are
produced once every consumer group of the job has settled (each process holds its own share of
the partitions; a first try that produced before the processes joined measured rebalances, not
processing). By default the processes are stopped (SIGSTOP) while the orders are produced and
continued together: they work through a backlog at their own pace, and the clock and CPU run
from that moment (``--live``: they read the orders as this process produces them, ~60-70k/s
here, from the first poll that shows records read). The run ends when the query's outputs,
summed over the processes, reach one per order with no lag left. CPU is the processes' own
(``/proc``); their idle CPU (settled, nothing to read: fetch loops, heartbeats, this bench's
polls) is measured for 3 s before. A rebalance during the run is counted from the workers'
logs (aiokafka logs each assignment). Rounds alternate 1 and N processes.

    .venv/bin/python -m bench.multiprocess [--orders 200000] [--users 10000] [--partitions 4]
        [--processes 2] [--jobs stateless,stateful,fold,fold-stream] [--rounds 3]
        [--broker tansu|kafka] [--live] [--set TABLESTREAM_NAME=VALUE ...]
        [--profile DIR] [--keep-logs DIR] [--freeze SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.brokers import add_broker_option, bench_broker
from bench.multiprocess_report import Run, report
from bench.orders import encode_order, order
from bench.pipeline import PIPELINE as STATELESS
from bench.pipeline import proc_cpu, produce, query_stats, seed
from bench.pipeline_aggregate import PIPELINE as AGGREGATE
from bench.pipeline_worker import Spy, worker_env
from tests.support.worker import Worker

#: Seconds between two polls of the processes' ``/queries/``: each poll costs the processes CPU,
#: counted in their figures (part of the idle CPU below).
POLL = 0.05


@dataclass(frozen=True)
class Job:
    #: The pipeline (``{partitions}`` left to fill).
    sql: str
    #: The query reading the source and the one writing the outputs (the same for one stage).
    source: str
    final: str
    #: Orders keyed by their user (a co-partitioned query needs them so).
    by_user: bool = False


def _aggregate(sink: str, key: bool) -> str:
    return (
        AGGREGATE.replace("{sink}", sink)
        .replace("{window}", "")
        .replace("{key}", ", key='user_id'" if key else "")
    )


JOBS = {
    "stateless": Job(STATELESS, "checked", "checked"),
    # GROUP BY user_id over orders keyed by order: two stages through a repartition topic.
    "stateful": Job(_aggregate("TABLE", False), "per_user-repartition", "per_user"),
    "stateful-stream": Job(_aggregate("STREAM", False), "per_user-repartition", "per_user"),
    # Orders keyed by user and declared so: one stage, the generated fold (agents.copartition).
    "fold": Job(_aggregate("TABLE", True), "per_user", "per_user", by_user=True),
    "fold-stream": Job(_aggregate("STREAM", True), "per_user", "per_user", by_user=True),
}


def start_workers(
    servers: str, work: Path, sql: str, n: int, extra: dict[str, str]
) -> list[Worker]:
    """``n`` workers of one app: same app id and pipeline, own data directories and ports."""
    settings = {
        # info: each assignment is logged (by aiokafka), counted after settling.
        "TABLESTREAM_LOG_LEVEL": "info",
        # Stopped for seconds while the orders are produced: no session may expire meanwhile.
        "TABLESTREAM_SESSION_TIMEOUT": "60",
        **extra,
    }
    env = worker_env(servers, work, sql, settings)
    # Worker gives each its own TABLESTREAM_DATA_DIR and TABLESTREAM_WEB_PORT.
    return [Worker(work / f"worker-{i}", env).start() for i in range(n)]


def settled(workers: list[Worker], job: Job, partitions: int) -> bool:
    """Every query of the job has its partitions spread over the processes, none twice."""
    stats = [query_stats(w) for w in workers]
    for q in {job.source, job.final}:
        parts = [set(s.get(q, {}).get("partitions", {})) for s in stats]
        union = set().union(*parts)
        if not all(parts) or len(union) != partitions or sum(map(len, parts)) != partitions:
            return False
    return True


async def wait_settled(workers: list[Worker], job: Job, partitions: int) -> None:
    deadline = time.monotonic() + 300
    while not await asyncio.to_thread(settled, workers, job, partitions):
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(w.tail())
        if time.monotonic() > deadline:
            raise RuntimeError(f"{job.final}: the consumer groups did not settle")
        await asyncio.sleep(0.2)


def assignments(worker: Worker) -> int:
    """How many group assignments the worker's consumers have logged so far (aiokafka, once per
    consumer and generation)."""
    return worker.log.read_text(errors="replace").count("Setting newly assigned partitions")


async def produce_orders(servers: str, n: int, users: int, by_user: bool) -> None:
    rng = random.Random(7)
    orders = []
    for i in range(n):
        o = order(i, users, rng)
        orders.append((str(o["user_id"] if by_user else i).encode(), encode_order(o)))
    await produce(servers, "bench-orders", orders)


def poll(workers: list[Worker]) -> list[dict[str, Any]]:
    return [query_stats(w) for w in workers]


def idle_cpu(workers: list[Worker], seconds: float = 3.0) -> float:
    """CPU (share of a core) the settled processes spend together with nothing to read: their
    fetch loops, heartbeats and this bench's own polling of ``/queries/``. Part of every run's
    CPU, per second rather than per event: spread over fewer events per process when the
    processes wait for the producer."""
    pids = [w.proc.pid for w in workers if w.proc is not None]
    cpu0, t0 = sum(proc_cpu(p) for p in pids), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        poll(workers)
        time.sleep(POLL)
    return (sum(proc_cpu(p) for p in pids) - cpu0) / (time.perf_counter() - t0)


def freeze(pid: int, seconds: float) -> None:
    """The process stopped (SIGSTOP) for ``seconds``: a batch, or a starved process, that keeps
    its event loop (and so its heartbeats) away that long."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def measure(
    workers: list[Worker], name: str, expect: int, frozen: float = 0.0, resume: bool = False
) -> Run:
    """From the first record read (``resume``: from continuing the stopped processes, the
    orders waiting for them) to the last output acknowledged."""
    job = JOBS[name]
    pids = [w.proc.pid for w in workers if w.proc is not None]
    before = [assignments(w) for w in workers]
    first = None
    cpu0: list[float] = []
    n0 = 0
    if resume:
        first, cpu0 = time.perf_counter(), [proc_cpu(p) for p in pids]
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        stats = poll(workers)
        read = [s.get(job.source, {}).get("records_in", 0) for s in stats]
        if sum(read) and first is None:
            first, cpu0, n0 = time.perf_counter(), [proc_cpu(p) for p in pids], sum(read)
        if sum(read) and frozen:
            freeze(pids[0], frozen)
            frozen = 0.0
        outs = [s.get(job.final, {}) for s in stats]
        done = sum(o.get("records_out", 0) for o in outs) >= expect and all(
            o.get("lag") == 0 for o in outs
        )
        if done and first is not None:
            if n0 >= expect:
                raise RuntimeError("every record was read before the first poll: more --orders")
            return Run(
                name,
                len(workers),
                time.perf_counter() - first,
                expect - n0,
                [proc_cpu(p) - c for p, c in zip(pids, cpu0, strict=True)],
                read,
                sum(assignments(w) for w in workers) - sum(before),
                os.getloadavg()[0],
            )
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(w.tail())
        time.sleep(POLL)
    raise RuntimeError(f"{name} with {len(workers)} processes did not finish")


async def one_run(args: argparse.Namespace, name: str, n: int, rnd: int) -> Run:
    job = JOBS[name]
    work = Path(tempfile.mkdtemp(prefix="bench-multiprocess-"))
    try:
        with bench_broker(args.broker, work) as broker:
            await seed(broker.url, 0, args.users, args.partitions)  # topics, users, limits
            sql = job.sql.format(partitions=args.partitions)
            workers = start_workers(broker.url, work, sql, n, dict(args.set))
            spies: list[Spy] = []
            try:
                await wait_settled(workers, job, args.partitions)
                idle = await asyncio.to_thread(idle_cpu, workers)
                if args.profile:
                    out = Path(args.profile)
                    spies = [
                        Spy(w, str(out / f"{name}-{n}p-r{rnd + 1}-w{i}.txt"))
                        for i, w in enumerate(workers)
                    ]
                    for spy in spies:
                        spy.start()
                frozen = args.freeze if n > 1 else 0.0
                if args.live:
                    measuring = asyncio.create_task(
                        asyncio.to_thread(measure, workers, name, args.orders, frozen)
                    )
                    await produce_orders(broker.url, args.orders, args.users, job.by_user)
                    run = await measuring
                else:
                    # The orders wait for the stopped processes, which then work through them
                    # at their own pace (not the producer's).
                    for w in workers:
                        if w.proc is not None:
                            os.kill(w.proc.pid, signal.SIGSTOP)
                    try:
                        await produce_orders(broker.url, args.orders, args.users, job.by_user)
                    except BaseException:
                        for w in workers:
                            if w.proc is not None:
                                os.kill(w.proc.pid, signal.SIGCONT)
                        raise
                    run = await asyncio.to_thread(measure, workers, name, args.orders, frozen, True)
                run.idle = idle
                return run
            finally:
                for spy in spies:
                    spy.stop()
                for w in workers:
                    w.stop()
                if args.keep_logs:
                    for w in workers:
                        shutil.copy(
                            w.log, Path(args.keep_logs) / f"{name}-{n}p-r{rnd + 1}-{w.log.name}"
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    runs: list[Run] = []
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    for rnd in range(args.rounds):
        for job in jobs:
            # Alternating which goes first: the machine's load drifts over a run.
            order = (1, args.processes) if rnd % 2 == 0 else (args.processes, 1)
            for n in order:
                run = await one_run(args, job, n, rnd)
                runs.append(run)
                cpus = "+".join(f"{c:.2f}" for c in run.cpus)
                moved = f"; REBALANCED ({run.reassigned} assignments)" if run.rebalanced else ""
                print(
                    f"round {rnd + 1}: {job}, {n} process(es): {run.rate:,.0f} events/s"
                    f" ({run.events} in {run.seconds:.2f}s, {run.cpu_us:.1f} µs CPU/event,"
                    f" CPU s per process {cpus}; records read per process {run.shares};"
                    f" idle {run.idle * 100:.0f}% of a core; load {run.load:.1f}{moved})",
                    flush=True,
                )
    report(runs, args.processes)


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("TABLESTREAM_"):
        raise argparse.ArgumentTypeError(f"{text!r}: TABLESTREAM_<NAME>=<value>")
    return name, value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--jobs", default="stateless,stateful,fold,fold-stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="TABLESTREAM_NAME=VALUE",
        help="a setting given to every worker (repeatable)",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy each process over the measured span (raw .txt)"
    )
    parser.add_argument(
        "--freeze",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="N processes: the first one stopped (SIGSTOP) this long as the records start",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="the processes read the orders as they are produced (paced by this producer)",
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the workers' logs here")
    add_broker_option(parser)
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes: at least 2 (compared with 1)")
    unknown = set(args.jobs.split(",")) - set(JOBS)
    if unknown:
        parser.error(f"--jobs: unknown {', '.join(sorted(unknown))} (known: {', '.join(JOBS)})")
    for folder in (args.profile, args.keep_logs):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args))
