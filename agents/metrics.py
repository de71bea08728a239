"""Per-query counters, shown by ``GET /queries/`` and the worker's periodic log line."""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mode import Service

if TYPE_CHECKING:
    from agents.process import BatchCounts

logger = logging.getLogger(__name__)

#: Batch latencies kept for the percentiles.
LATENCY_WINDOW = 2048
#: Upper bounds (seconds) of the cumulative batch-latency histogram (``GET /metrics``).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Longest dead-letter reason label: a label is the reason's fixed part, not the record's data.
REASON_LABEL_MAX = 60
I_SUMMARY = "query %s: %d in (%.0f/s), %d out, %d dead letters, lag %s"


def reason_label(reason: str) -> str:
    """The low-cardinality part of a dead-letter reason: the text before its first ``:``
    (``"CastError: cannot cast 'x' to INTEGER"`` → ``"CastError"``, ``"late"`` → ``"late"``)."""
    return reason.split(":", 1)[0].strip()[:REASON_LABEL_MAX] or "unknown"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass(slots=True)
class QueryStats:
    """What one query agent did since the worker started."""

    name: str
    source: str
    sink: str
    kind: str
    #: starting | waiting for tables | running | rebuilding | stopped | failed
    state: str = "starting"
    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    batches: int = 0
    duplicates_skipped: int = 0
    rebuilds: int = 0
    #: Stateful tasks (repartition partitions) opened without usable local state: read from the
    #: partition's beginning.
    replays: int = 0
    error: str | None = None
    #: Exactly-once: transactions committed and aborted, seconds spent committing them.
    transactions: int = 0
    transactions_aborted: int = 0
    commit_seconds: float = 0.0
    #: Per source partition: (position, high-watermark).
    partitions: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    #: Seconds from a batch's fetch to the broker's ack of its outputs.
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    started: float = field(default_factory=time.time)
    #: Dead letters by :func:`reason_label`.
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    #: Since start: batches per latency bucket (``LATENCY_BUCKETS``, then +Inf), and their sum.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    #: The external tables the query reads (name → their ``stats().as_dict``): lookups, cache
    #: hits / misses / negative hits / stale serves, round trips, keys per round trip, latency,
    #: errors, breaker state. Shown generically under ``"sources"``.
    sources: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    def observe_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add(self, counts: BatchCounts) -> None:
        """One processed batch's counts (every loop: plain, transactional, stateful)."""
        self.records_in += counts.records_in
        self.records_out += counts.records_out
        self.dead_letters += counts.dead_letters
        self.add_dead_letters(counts.reasons)
        self.tombstones += counts.tombstones

    def add_dead_letters(self, reasons: dict[str, int]) -> None:
        for reason, n in reasons.items():
            self.dead_letter_reasons[reason] = self.dead_letter_reasons.get(reason, 0) + n

    @property
    def lag(self) -> int | None:
        lags = [hw - pos for pos, hw in self.partitions.values() if hw is not None]
        return sum(lags) if lags else None

    def as_dict(self) -> dict[str, Any]:
        lat = list(self.latencies)
        p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "sink": self.sink,
            "state": self.state,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "dead_letters": self.dead_letters,
            "dead_letter_reasons": dict(sorted(self.dead_letter_reasons.items())),
            "tombstones_skipped": self.tombstones,
            "batches": self.batches,
            "lag": self.lag,
            "partitions": {
                str(p): {"position": pos, "highwater": hw}
                for p, (pos, hw) in sorted(self.partitions.items())
            },
            "batch_latency_ms": {
                "p50": None if p50 is None else round(p50 * 1000, 3),
                "p99": None if p99 is None else round(p99 * 1000, 3),
            },
            "rebuilds": self.rebuilds,
            "replays": self.replays,
            "duplicates_skipped": self.duplicates_skipped,
            "transactions": self.transactions,
            "transactions_aborted": self.transactions_aborted,
            "commit_seconds": round(self.commit_seconds, 3),
            "error": self.error,
            "uptime_s": round(time.time() - self.started, 1),
            "sources": {name: stats() for name, stats in sorted(self.sources.items())},
        }


async def log_summaries(service: Service, stats: QueryStats, interval: float) -> None:
    """One log line per ``interval`` while records come (the agents' summary task)."""
    last, last_t = 0, time.monotonic()
    while not service.should_stop:
        await service.sleep(interval)
        now = time.monotonic()
        s = stats
        if s.records_in != last:
            rate = (s.records_in - last) / max(now - last_t, 1e-9)
            logger.info(I_SUMMARY, s.name, s.records_in, rate, s.records_out, s.dead_letters, s.lag)
        last, last_t = s.records_in, now
