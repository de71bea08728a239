"""Output of one processing batch: records appended per topic-partition into aiokafka record
batches, sent together, acknowledged together.

``producer.send()`` costs a coroutine, a future and a partitioner call per record (about 10 µs in
aiokafka); appending to a :class:`BatchBuilder` is a C call. One future per record batch is what
the at-least-once commit waits for.

aiokafka queues one record batch per topic-partition and sends one produce request per broker at
a time: handing it a partition's second batch waits until the first is in a request, i.e. until
the request before has been answered. A batch's outputs often fill two batches per partition, so
``flush`` waited for a broker round trip per batch while the worker had the next batch to
process. ``Output(producer, background=True)`` hands them over from a task of its own, in order,
and ``flush`` returns at once (for at-least-once agents, whose :class:`agents.delivery.Delivery`
awaits the futures and bounds the batches in flight; a transaction must have its batches in the
producer before it commits: not there).
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from core.errors import TablestreamError
from core.murmur import murmur2
from tables.apply import Malformed
from tables.deadletter import dead_letter_record

E_TOO_LARGE = "a record of {size} bytes does not fit a record batch for {topic!r}"
#: Record batch size of output producers; fewer, larger produce requests.
MAX_BATCH_BYTES = 512 * 1024
#: Key → partition results kept per topic (murmur2 is pure Python in aiokafka).
PARTITION_CACHE = 100_000


class RecordTooLargeError(TablestreamError):
    """An output record larger than the producer's batch size."""


Headers = list[tuple[str, bytes]]

#: A record batch waiting to be handed to the producer, and the future its delivery awaits.
_Queued = tuple[str, int, Any, "asyncio.Future[Any]"]


class Output:
    """Collects output records; :meth:`flush` hands them to the producer and returns futures."""

    def __init__(self, producer: AIOKafkaProducer, *, background: bool = False) -> None:
        self.producer = producer
        #: Batches handed to the producer by :meth:`_send_queued` (see the module docstring).
        self.background = background
        self._queued: collections.deque[_Queued] = collections.deque()
        self._sender: asyncio.Task[None] | None = None
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self._partitions: dict[str, list[int]] = {}
        self._cache: dict[str, dict[bytes, int]] = {}
        self._round_robin = 0
        self.records = 0

    async def prepare(self, topics: Sequence[str]) -> None:
        """Learn the partitions of every topic this output writes (waits for metadata)."""
        for topic in topics:
            self.set_partitions(topic, await self.producer.partitions_for(topic))

    def set_partitions(self, topic: str, partitions: Iterable[int]) -> None:
        self._partitions[topic] = sorted(partitions)
        self._cache[topic] = {}

    def partition(self, topic: str, key: bytes | None) -> int:
        parts = self._partitions[topic]
        if len(parts) == 1:
            return parts[0]
        if key is None:
            self._round_robin += 1
            return parts[self._round_robin % len(parts)]
        cache = self._cache[topic]
        p = cache.get(key)
        if p is None:
            # The Java client's default partitioner, so other Kafka clients agree on placement.
            p = parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]
            if len(cache) >= PARTITION_CACHE:
                cache.clear()
            cache[key] = p
        return p

    def partitions(self, topic: str) -> int:
        return len(self._partitions[topic])

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Add a record; ``partition`` None picks it from the key as Kafka's clients do;
        ``timestamp`` (epoch ms) None: now."""
        headers = [] if headers is None else headers  # the C record builder wants a list
        p = self.partition(topic, key) if partition is None else partition
        tp = (topic, p)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self.producer.create_batch()
        if batch.append(timestamp=timestamp, key=key, value=value, headers=headers) is None:
            self._full.append((topic, p, batch))
            batch = self._open[tp] = self.producer.create_batch()
            if batch.append(timestamp=timestamp, key=key, value=value, headers=headers) is None:
                size = len(value or b"") + len(key or b"")
                raise RecordTooLargeError(E_TOO_LARGE.format(size=size, topic=topic), topic=topic)
        self.records += 1

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        """A function adding (key, value) records to one topic-partition, straight into the C
        record builder (the per-record wrapper, its header list and lookups cost ~0.4 µs).

        Valid until the next :meth:`flush`; records it adds keep their order with :meth:`append`'s.
        """
        tp = (topic, partition)
        opened = self._open
        no_headers: Headers = []

        def add(key: bytes | None, value: bytes | None) -> None:
            batch = opened.get(tp)
            if batch is None:
                batch = opened[tp] = self.producer.create_batch()
            n = batch._relative_offset
            if batch._builder.append(n, None, key, value, no_headers) is None:
                self._full.append((topic, partition, batch))
                batch = opened[tp] = self.producer.create_batch()
                n = 0
                if batch._builder.append(0, None, key, value, no_headers) is None:
                    size = len(value or b"") + len(key or b"")
                    raise RecordTooLargeError(
                        E_TOO_LARGE.format(size=size, topic=topic), topic=topic
                    )
            batch._relative_offset = n + 1
            self.records += 1

        return add

    def record_sink(self, topic: str, partition: int) -> RecordSink:
        """Generated code's way to add records to one topic-partition: the C record builder's
        own ``append``, called inline (:class:`RecordSink`). Valid until the next :meth:`flush`."""
        return RecordSink(self, topic, partition)

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        """The original key and value bytes, with why and where in the headers."""
        self.append(topic, *dead_letter_record(item, source))

    async def flush(self) -> list[asyncio.Future[Any]]:
        """Send every collected record batch; the futures resolve when the broker acked them.
        ``background``: they are handed to the producer after this returns, in order."""
        batches = [*self._full, *((t, p, b) for (t, p), b in self._open.items())]
        self._full.clear()
        self._open.clear()
        self.records = 0
        if not self.background:
            send = self.producer.send_batch
            return [await send(b, t, partition=p) for t, p, b in batches]
        loop = asyncio.get_running_loop()
        acked: list[asyncio.Future[Any]] = []
        for t, p, b in batches:
            done = loop.create_future()
            self._queued.append((t, p, b, done))
            acked.append(done)
        if batches and (self._sender is None or self._sender.done()):
            self._sender = asyncio.create_task(self._send_queued())
        return acked

    async def _send_queued(self) -> None:
        """Hand the queued batches to the producer in order (one sender at a time: a partition's
        batches keep their order); each one's future follows the producer's for it."""
        queued = self._queued
        send = self.producer.send_batch
        while queued:
            t, p, b, done = queued.popleft()
            try:
                sent = await send(b, t, partition=p)
            except asyncio.CancelledError:
                done.cancel()
                for *_, rest in queued:
                    rest.cancel()
                queued.clear()
                raise
            except Exception as exc:  # a KafkaError the delivery reports, with its batch
                done.set_exception(exc)
                continue
            sent.add_done_callback(functools.partial(_follow, done))


def _follow(done: asyncio.Future[Any], sent: asyncio.Future[Any]) -> None:
    """``sent`` (the producer's future of a batch) settled: settle ``done`` the same way."""
    if done.cancelled():
        return
    if sent.cancelled():
        done.cancel()
    elif (exc := sent.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(sent.result())


#: The header list of every record added by a :class:`RecordSink` (read, never changed).
NO_HEADERS: Headers = []


class RecordSink:
    """Records added to one topic-partition of an :class:`Output` by calling the open record
    batch's C builder directly — ``append(n, None, key, value, NO_HEADERS)``, ``n`` the record's
    offset in the batch — with no Python call per record (the :meth:`Output.appender` function
    around it cost ~1,000 instructions a record). The caller keeps ``n``:

    ``append, n = sink.open()``; per record: if ``append(n, None, key, value, NO_HEADERS)`` is
    None (the batch is full), ``append, n = sink.roll(n)`` and the record goes to the new batch
    (``append(0, ...)``; None again: :meth:`too_large` raises); then ``n += 1``; at the end
    ``sink.close(n)``. Records keep their order with :meth:`Output.append`'s before and after.
    """

    __slots__ = ("_batch", "_output", "_partition", "_start", "_topic")

    def __init__(self, output: Output, topic: str, partition: int) -> None:
        self._output, self._topic, self._partition = output, topic, partition
        self._batch: Any = None
        self._start = 0

    def _current(self) -> Any:
        tp = (self._topic, self._partition)
        opened = self._output._open
        batch = opened.get(tp)
        if batch is None:
            batch = opened[tp] = self._output.producer.create_batch()
        self._batch = batch
        return batch

    def open(self) -> tuple[Callable[..., Any], int]:
        """The open batch's builder ``append`` and the offset of its next record."""
        batch = self._current()
        self._start = batch._relative_offset
        return batch._builder.append, self._start

    def roll(self, n: int) -> tuple[Callable[..., Any], int]:
        """The batch holding ``n`` records is full: it is queued, a new one opened."""
        out = self._output
        full = self._batch
        full._relative_offset = n
        out.records += n - self._start
        out._full.append((self._topic, self._partition, full))
        del out._open[(self._topic, self._partition)]
        return self.open()

    def too_large(self, key: bytes | None, value: bytes | None) -> None:
        size = len(value or b"") + len(key or b"")
        raise RecordTooLargeError(
            E_TOO_LARGE.format(size=size, topic=self._topic), topic=self._topic
        )

    def close(self, n: int) -> None:
        """``n``: the offset after the last record added."""
        if self._batch is not None:
            self._batch._relative_offset = n
            self._output.records += n - self._start
            self._batch = None
