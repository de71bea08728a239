"""One task's transactional aiokafka producer of :mod:`agents.transaction` (:class:`Task`, with
its open transaction) and helpers around it: which errors mean it was fenced, the error behind a
failure it reports late, and stopping it (or dropping a transaction's sends) without leaving
failed futures unread.

Separate from :mod:`agents.transaction` because they reach into aiokafka's private producer
state (its accumulator and transaction manager) — kept in one place to re-check when aiokafka
changes — and to keep that module under 400 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced, TransactionalIdAuthorizationFailed

from agents.sink import Output
from agents.state import QueryState
from tables.store import StoreBatch

#: A producer's errors that mean a newer producer with its transactional id took the task over.
FENCING = (ProducerFenced, TransactionalIdAuthorizationFailed, InvalidProducerEpoch)


@dataclass(slots=True)
class Task:
    """One task's producer, its output and what its open transaction holds."""

    tp: TopicPartition
    producer: AIOKafkaProducer
    output: Output
    open: bool = False
    started: float = 0.0
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    #: Next source offset to commit with the transaction (None: no record processed in it).
    offset: int | None = None
    #: Local state batches, written once the transaction committed.
    writes: list[tuple[QueryState, StoreBatch]] = field(default_factory=list)


async def stop_producer(producer: AIOKafkaProducer) -> None:
    """Stop a producer (failing to is no error: a fenced or broken one may), then read the errors
    its futures hold. A fenced producer fails its transaction's end and its record batches
    (their drain waiters), futures nobody awaits; unread, each is logged with its traceback
    whenever a later collection frees it (they sit in reference cycles). On Python 3.11 that
    logging's ``ast.parse`` (traceback carets), run by a collection inside an AST conversion,
    breaks that conversion: SystemError "AST constructor recursion depth mismatch" (cpython
    gh-106905) — it failed a test run whose every test passed, at an import pytest rewrote."""
    with contextlib.suppress(Exception):
        await producer.stop()
    # Stopped, the producer fails nothing more: its sender task is done.
    accumulator = getattr(producer, "_message_accumulator", None)
    batches = [b for queue in getattr(accumulator, "_batches", {}).values() for b in queue]
    batches.extend(getattr(accumulator, "_pending_batches", ()))
    futures = [getattr(b, name, None) for b in batches for name in ("future", "_drain_waiter")]
    futures.append(getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None))
    for future in futures:
        if asyncio.isfuture(future) and future.done() and not future.cancelled():
            future.exception()


def failure_cause(producer: AIOKafkaProducer, exc: BaseException) -> BaseException:
    """The error behind ``exc``: a producer fenced in the background (its sender got
    ProducerFenced adding a partition to the transaction) leaves its transaction manager in an
    error state, and the next begin or send fails with IllegalOperation or AssertionError; the
    fencing error itself is its transaction's (failed) end."""
    waiter = getattr(getattr(producer, "_txn_manager", None), "_transaction_waiter", None)
    if (
        not isinstance(exc, FENCING)
        and isinstance(waiter, asyncio.Future)
        and waiter.done()
        and not waiter.cancelled()
    ):
        cause = waiter.exception()
        if isinstance(cause, BaseException):
            return cause
    return exc


def forget_futures(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Futures of a dropped transaction's sends: their outcome read when it comes (a fenced
    producer fails them all; unread, asyncio logs each)."""
    for future in futures:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
