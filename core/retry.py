"""Start-up steps that need the broker, tried again while it is away.

A worker started while its broker is down or restarting keeps trying, as a Kafka Streams
application does, instead of stopping on the first refused connection: ``/ready`` answers 503
meanwhile, and the worker becomes ready once the broker is back. A step that fails with a
retriable error (no connection, a node not ready, a request timed out, no controller or
coordinator yet: aiokafka's ``retriable`` errors, timeouts, socket errors) is tried again after
a pause that doubles from 0.5 s up to 5 s; each failure is logged with the step, the broker and
when the next try comes. Any other error is raised at once: a bad setting or a broker that
answers "no" must still stop the worker with its own message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiokafka.errors import KafkaError, KafkaTimeoutError
from mode import Service

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: ``phase`` says when the step runs: the first start (``start-up``, the default) or a later one —
#: a producer renewed mid-run, partitions assigned by a rebalance — logged as what it is.
W_RETRY = "%s: %s failed: broker %s unreachable or not ready (%s); try %d in %.1f s"
I_DONE = "%s: %s done after %d tries (%.1f s)"
STARTUP = "start-up"


class StoppedWaiting(asyncio.CancelledError):
    """A :class:`StartupRetry` whose service was told to stop while it waited for the broker: a
    cancellation (the worker exits quietly, status 0, as when mode cancels its start). A
    rebalance hook that waits catches it: aiokafka's coordinator, which runs the hook, must go
    on to its own stop."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses between tries: ``first``, doubling, at most ``cap`` seconds."""

    first: float = 0.5
    cap: float = 5.0

    def delay(self, failures: int) -> float:
        """The pause after the ``failures``-th failure in a row (1-based)."""
        return float(min(self.cap, self.first * 2 ** (failures - 1)))


def retriable(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker is away or not ready yet, not that the step is wrong."""
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError)
    return isinstance(exc, TimeoutError | OSError)


def describe(exc: BaseException) -> str:
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


@dataclass(frozen=True, slots=True)
class StartupRetry:
    """Runs start-up steps of ``service`` against ``servers``, each until it succeeds or fails
    with an error that is not :func:`retriable`: ``await StartupRetry(servers, self)(what,
    step)``. ``what`` names the step in the log ("create the tables' topics"). The service's own
    ``sleep`` and ``should_stop`` make a worker told to stop while it waits for the broker stop
    at once (``CancelledError``, as mode's worker cancels its start on a signal). A step run
    later than the start (a producer renewed, a rebalance's producers) passes its ``phase``."""

    servers: str
    service: Service | None = None
    backoff: Backoff = Backoff()

    def stopping(self) -> bool:
        return self.service is not None and self.service.should_stop

    async def __call__(
        self, what: str, step: Callable[[], Awaitable[T]], phase: str = STARTUP
    ) -> T:
        sleep = self.service.sleep if self.service is not None else asyncio.sleep
        started = time.monotonic()
        failures = 0
        while True:
            if self.stopping():
                # As the worker's own stop cancels its start: it exits quietly, status 0.
                raise StoppedWaiting(f"stopped while trying to {what}")
            try:
                result = await step()
            except Exception as exc:
                if not retriable(exc):
                    raise
                failures += 1
                delay = self.backoff.delay(failures)
                logger.warning(
                    W_RETRY, phase, what, self.servers, describe(exc), failures + 1, delay
                )
                await sleep(delay)
                continue
            if failures:
                logger.info(I_DONE, phase, what, failures + 1, time.monotonic() - started)
            return result
