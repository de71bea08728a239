"""Per-query counters, shown by ``GET /queries/`` and the worker's periodic log line."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Batch latencies kept for the percentiles.
LATENCY_WINDOW = 2048


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
    state: str = "starting"  # starting | waiting for tables | running | stopped | failed
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
        }
