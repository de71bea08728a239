"""Several ``faust -A app worker`` processes on one host: 1 against N processes, stateless and
stateful, on the embedded broker and the data of ``bench.pipeline``.

Every process is a full worker with its own data directory and web port
(``TABLESTREAM_DATA_DIR``, ``TABLESTREAM_WEB_PORT``) and the same ``TABLESTREAM_APP_ID``, so the
processes share each query's consumer groups and the groups spread the partitions among them
(see README, "Several workers on one host"). Jobs:

- ``stateless``: the IN + EXISTS + scalar + join pipeline of ``bench.pipeline`` (one output
  per order);
- ``stateful``: ``GROUP BY user_id`` with COUNT and SUM, EMIT CHANGES (``bench.pipeline_aggregate``:
  both stages, one output per order).

Each run gets a fresh broker and data set. The processes start first; the orders are produced
once every consumer group of the job has settled (each process holds its own share of the
partitions): a rebalance during the run would move partitions mid-way and have them read again
(a first try that produced before the processes joined measured rebalances, not processing).
The clock runs from the first poll that shows records read to the moment the query's outputs,
summed over the processes, reach one per order with no lag left; CPU is the processes' own
(``/proc``) over that span. Rounds alternate 1 and N processes.

    .venv/bin/python -m bench.multiprocess [--orders 200000] [--users 10000] [--partitions 4]
        [--processes 2] [--jobs stateless,stateful] [--rounds 3] [--broker tansu|kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.brokers import add_broker_option, bench_broker
from bench.orders import encode_order, order
from bench.pipeline import PIPELINE as STATELESS
from bench.pipeline import proc_cpu, produce, query_stats, seed
from bench.pipeline_aggregate import PIPELINE as STATEFUL
from tests.support.worker import Worker

#: Per job: the pipeline, the query reading the source, the query writing the outputs.
JOBS = {
    "stateless": (STATELESS, "checked", "checked"),
    "stateful": (STATEFUL, "per_user-repartition", "per_user"),
}


@dataclass
class Run:
    job: str
    processes: int
    seconds: float
    events: int
    cpu: float
    #: Records each process read at the source (how the group spread the partitions).
    shares: list[int]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.events * 1e6


def start_workers(servers: str, work: Path, sql: str, n: int) -> list[Worker]:
    """``n`` workers of one app: same app id and pipeline, own data directories and ports."""
    pipeline = work / "pipeline.sql"
    pipeline.write_text(sql)
    env = {
        "TABLESTREAM_BROKER": servers,
        "TABLESTREAM_APP_ID": "bench",
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_LOG_LEVEL": "warning",
    }
    # Worker gives each its own TABLESTREAM_DATA_DIR and TABLESTREAM_WEB_PORT.
    return [Worker(work / f"worker-{i}", env).start() for i in range(n)]


def settled(workers: list[Worker], job: str, partitions: int) -> bool:
    """Every query of the job has its partitions spread over the processes, none twice."""
    _, source, final = JOBS[job]
    stats = [query_stats(w) for w in workers]
    for q in {source, final}:
        parts = [set(s.get(q, {}).get("partitions", {})) for s in stats]
        union = set().union(*parts)
        if not all(parts) or len(union) != partitions or sum(map(len, parts)) != partitions:
            return False
    return True


async def wait_settled(workers: list[Worker], job: str, partitions: int) -> None:
    deadline = time.monotonic() + 300
    while not await asyncio.to_thread(settled, workers, job, partitions):
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(w.tail())
        if time.monotonic() > deadline:
            raise RuntimeError(f"{job}: the consumer groups did not settle")
        await asyncio.sleep(0.2)


async def produce_orders(servers: str, n: int, users: int) -> None:
    rng = random.Random(7)
    orders = [(str(i).encode(), encode_order(order(i, users, rng))) for i in range(n)]
    await produce(servers, "bench-orders", orders)


def measure(workers: list[Worker], job: str, expect: int) -> Run:
    _, source, final = JOBS[job]
    pids = [w.proc.pid for w in workers if w.proc is not None]
    first = cpu0 = None
    n0 = 0
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        stats = [query_stats(w) for w in workers]
        read = [s.get(source, {}).get("records_in", 0) for s in stats]
        if sum(read) and first is None:
            first, cpu0, n0 = time.perf_counter(), sum(proc_cpu(p) for p in pids), sum(read)
        outs = [s.get(final, {}) for s in stats]
        done = sum(o.get("records_out", 0) for o in outs) >= expect and all(
            o.get("lag") == 0 for o in outs
        )
        if done and first is not None and cpu0 is not None:
            if n0 >= expect:
                raise RuntimeError("every record was read before the first poll: more --orders")
            return Run(
                job,
                len(workers),
                time.perf_counter() - first,
                expect - n0,
                sum(proc_cpu(p) for p in pids) - cpu0,
                read,
            )
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(w.tail())
        time.sleep(0.02)
    raise RuntimeError(f"{job} with {len(workers)} processes did not finish")


async def one_run(args: argparse.Namespace, job: str, n: int) -> Run:
    work = Path(tempfile.mkdtemp(prefix="bench-multiprocess-"))
    try:
        with bench_broker(args.broker, work) as broker:
            await seed(broker.url, 0, args.users, args.partitions)  # topics, users, limits
            sql = JOBS[job][0].format(partitions=args.partitions)
            workers = start_workers(broker.url, work, sql, n)
            try:
                await wait_settled(workers, job, args.partitions)
                measuring = asyncio.create_task(
                    asyncio.to_thread(measure, workers, job, args.orders)
                )
                await produce_orders(broker.url, args.orders, args.users)
                return await measuring
            finally:
                for w in workers:
                    w.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: list[Run], processes: int) -> None:
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (1 min)")
    for job in dict.fromkeys(r.job for r in runs):
        by_n: dict[int, list[Run]] = {}
        for r in runs:
            if r.job == job:
                by_n.setdefault(r.processes, []).append(r)
        medians = {}
        for n, rs in sorted(by_n.items()):
            medians[n] = statistics.median(r.rate for r in rs)
            rates = ", ".join(f"{r.rate:,.0f}" for r in rs)
            cpu = statistics.median(r.cpu_us for r in rs)
            print(
                f"{job}, {n} process(es): median {medians[n]:,.0f} events/s"
                f" (rounds: {rates}; {cpu:.1f} µs CPU/event summed over processes)"
            )
        if 1 in medians and processes in medians:
            print(f"{job}: {processes} / 1 processes = {medians[processes] / medians[1]:.2f}")


async def main(args: argparse.Namespace) -> None:
    runs: list[Run] = []
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    for rnd in range(args.rounds):
        for job in jobs:
            # Alternating which goes first: the machine's load drifts over a run.
            order = (1, args.processes) if rnd % 2 == 0 else (args.processes, 1)
            for n in order:
                run = await one_run(args, job, n)
                runs.append(run)
                print(
                    f"round {rnd + 1}: {job}, {n} process(es): {run.rate:,.0f} events/s"
                    f" ({run.events} in {run.seconds:.2f}s, {run.cpu_us:.1f} µs CPU/event;"
                    f" records read per process {run.shares}; load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    report(runs, args.processes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--jobs", default="stateless,stateful")
    parser.add_argument("--rounds", type=int, default=3)
    add_broker_option(parser)
    args = parser.parse_args()
    if args.processes < 2:
        parser.error("--processes: at least 2 (compared with 1)")
    unknown = set(args.jobs.split(",")) - set(JOBS)
    if unknown:
        parser.error(f"--jobs: unknown {', '.join(sorted(unknown))} (known: {', '.join(JOBS)})")
    asyncio.run(main(args))
