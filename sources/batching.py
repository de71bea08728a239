"""Calls to a database: bounded in flight, timed, retried with backoff, behind the breaker.

Drivers are synchronous (psycopg's pool, DuckDB connections): the worker calls them in a thread
(``asyncio.to_thread``) so the event loop never blocks on a database, at most ``max_inflight``
at once per source; the offline runner and the rare per-record fetch call them directly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from sources.breaker import Breaker

T = TypeVar("T")
#: Latencies kept for the p50/p99 in the stats (the most recent calls).
LATENCY_SAMPLES = 2048


class SourceUnavailable(Exception):
    """A call failed after its retries, or the breaker is open."""


class CallStats:
    """Round trips, keys per round trip, latency and errors of one source."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.keys_fetched = 0
        self.errors = 0
        self.rejected = 0  # calls refused by the open breaker
        self.last_error = ""
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3)

        return {
            "round_trips": self.round_trips,
            "keys_per_round_trip": (
                round(self.keys_fetched / self.round_trips, 1) if self.round_trips else None
            ),
            "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99),
            "errors": self.errors,
            "rejected_by_breaker": self.rejected,
            "last_error": self.last_error,
        }


class Caller:
    def __init__(
        self,
        breaker: Breaker,
        retries: int,
        backoff: float,
        max_inflight: int,
        redact: Callable[[str], str],
    ) -> None:
        self.breaker = breaker
        self.retries = retries
        self.backoff = backoff
        self.max_inflight = max_inflight
        self.redact = redact
        self.stats = CallStats()
        self._slots: asyncio.Semaphore | None = None

    def _attempt(self, fn: Callable[[], T], keys: int) -> T:
        if not self.breaker.allow():
            self.stats.rejected += 1
            raise SourceUnavailable("circuit breaker open")
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            self.stats.errors += 1
            self.stats.last_error = self.redact(f"{type(exc).__name__}: {exc}")[:300]
            self.breaker.failure()
            raise SourceUnavailable(self.stats.last_error) from exc
        self.stats.latencies.append(time.perf_counter() - started)
        self.stats.round_trips += 1
        self.stats.keys_fetched += keys
        self.breaker.success()
        return result

    def call(self, fn: Callable[[], T], keys: int) -> T:
        """``fn()`` now, in this thread, retried with backoff; raises SourceUnavailable."""
        for attempt in range(self.retries + 1):
            try:
                return self._attempt(fn, keys)
            except SourceUnavailable:
                if attempt == self.retries or self.breaker.state.value == "open":
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    async def acall(self, fn: Callable[[], T], keys: int) -> T:
        """``fn()`` in a worker thread, at most ``max_inflight`` at once; retried with backoff."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_inflight)
        async with self._slots:
            for attempt in range(self.retries + 1):
                if not self.breaker.allow():
                    self.stats.rejected += 1
                    raise SourceUnavailable("circuit breaker open")
                started = time.perf_counter()
                try:
                    result = await asyncio.to_thread(fn)
                except Exception as exc:
                    self.stats.errors += 1
                    self.stats.last_error = self.redact(f"{type(exc).__name__}: {exc}")[:300]
                    self.breaker.failure()
                    if attempt == self.retries or self.breaker.state.value == "open":
                        raise SourceUnavailable(self.stats.last_error) from exc
                    await asyncio.sleep(self.backoff * 2**attempt)
                    continue
                self.stats.latencies.append(time.perf_counter() - started)
                self.stats.round_trips += 1
                self.stats.keys_fetched += keys
                self.breaker.success()
                return result
        raise AssertionError("unreachable")
