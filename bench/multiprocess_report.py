"""What ``bench.multiprocess`` measured: one run of a job on 1 or N worker processes, and the
report over the rounds (medians per job and process count, the N / 1 ratio of CPU per event)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Run:
    job: str
    processes: int
    seconds: float
    events: int
    #: CPU seconds of each process over the measured span.
    cpus: list[float]
    #: Records each process read at the source (how the group spread the partitions).
    shares: list[int]
    #: Partition assignments logged by the processes after the groups had settled.
    reassigned: int
    load: float
    #: CPU of the settled processes with nothing to read (share of a core, summed).
    idle: float = 0.0

    @property
    def cpu(self) -> float:
        return sum(self.cpus)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.events * 1e6

    @property
    def rebalanced(self) -> bool:
        return self.reassigned > 0


def report(runs: list[Run], processes: int) -> None:
    loads = [r.load for r in runs]
    print(f"\nload average (1 min) over the runs: {min(loads):.1f} to {max(loads):.1f}")
    for job in dict.fromkeys(r.job for r in runs):
        by_n: dict[int, list[Run]] = {}
        for r in runs:
            if r.job == job:
                by_n.setdefault(r.processes, []).append(r)
        medians = {}
        for n, rs in sorted(by_n.items()):
            medians[n] = statistics.median(r.cpu_us for r in rs)
            rates = ", ".join(f"{r.rate:,.0f}" for r in rs)
            cpus = ", ".join(f"{r.cpu_us:.1f}" for r in rs)
            moved = sum(r.rebalanced for r in rs)
            print(
                f"{job}, {n} process(es): median {medians[n]:.1f} µs CPU/event summed over"
                f" processes (rounds: {cpus}; events/s {rates}; {moved} rebalanced mid-run)"
            )
        if 1 in medians and processes in medians:
            print(
                f"{job}: CPU per event, {processes} / 1 processes ="
                f" {medians[processes] / medians[1]:.2f}"
            )
