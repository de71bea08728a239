"""The change feed: a table publishes every applied change to its subscribers, in order.

Two ways to consume it: ``subscribe(listener)`` runs a callback inline (indexes, maintained
subquery results), and ``changes()`` gives an async iterator over a bounded queue (agents,
inspection) that never slows the table down: when its queue is full the stream ends with
:class:`ChangeStreamOverflowError` after the queued changes, rather than block the loader or drop
changes silently.

``subscribe(listener, last=n)`` is for a listener that keeps only the last ``n`` changes (the
worker's "latest changes" list): it is given at least the last ``n`` changes of every applied
batch, in order, and may not see earlier ones. A table whose only listeners are such takes its
loader's bulk path (no row decoded but the last few: ~12 µs a record saved on a result table
updated per input record, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from types import TracebackType

from core.errors import TablestreamError
from tables.protocol import Change, ChangeListener, Unsubscribe

logger = logging.getLogger(__name__)

#: Changes a ``changes()`` stream holds for a slow consumer before it overflows.
DEFAULT_STREAM_QUEUE = 10_000
W_LISTENER = "table %r: change listener %r failed on key %r (version %d%s); unsubscribed"
E_AT_LEAST_ONE = "changes of table {table!r}: {option} must be >= 1, not {value!r}"
E_OVERFLOW = (
    "change stream of table {table!r} overflowed: its consumer fell {maxsize} changes behind "
    "(last delivered version {version}); resynchronize from a snapshot or get_changes_since()"
)


class ChangeStreamOverflowError(TablestreamError):
    """A ``changes()`` consumer fell ``maxsize`` changes behind; the stream has ended.

    ``fields``: ``table``, ``maxsize`` and ``version`` (of the last change delivered, 0 if none).
    """


class ChangeFeed:
    """Synchronous fan-out of :class:`Change` records.

    Listeners run inline, right after the change became visible through ``get``, so anything they
    maintain (indexes, IN-sets, aggregates) is never behind the table it derives from. A listener
    that raises is logged and removed rather than allowed to stop the loader.

    True when a listener wants every change; :attr:`tail` says how many of a batch's last
    changes the listeners that keep only the last few want.
    """

    __slots__ = ("_listeners", "_tails", "name")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._listeners: list[ChangeListener] = []
        #: Listeners that keep only the last few changes, with how many.
        self._tails: list[tuple[ChangeListener, int]] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    @property
    def tail(self) -> int:
        """How many of a batch's last changes the ``last=`` listeners need (0: none listens)."""
        return max((n for _, n in self._tails), default=0)

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> Unsubscribe:
        """``listener`` called with every change; with ``last``, at least with the last ``last``
        changes of each applied batch (a listener that keeps no more than those)."""
        if last is None:
            self._listeners.append(listener)
        elif last < 1:
            raise ValueError(E_AT_LEAST_ONE.format(table=self.name, option="last", value=last))
        else:
            self._tails.append((listener, last))
        entry = (listener, last)

        def unsubscribe() -> None:
            if last is None:
                if listener in self._listeners:
                    self._listeners.remove(listener)
            elif entry in self._tails:
                self._tails.remove(entry)

        return unsubscribe

    def stream(self, maxsize: int = DEFAULT_STREAM_QUEUE) -> ChangeStream:
        """An async iterator over the changes published from now on (see :class:`ChangeStream`)."""
        return ChangeStream(self, maxsize)

    def publish(self, change: Change) -> None:
        for listener in tuple(self._listeners):
            self._call(listener, change)
        for listener, n in tuple(self._tails):
            self._call(listener, change, n)

    def publish_batch(self, changes: Sequence[Change]) -> None:
        """The changes of one applied batch, in order: every one to the listeners that want
        every change, the last ``n`` to a ``last=n`` listener (a batch applied for those alone
        holds only the last few, :mod:`tables.tail`)."""
        if not changes:
            return
        if self._listeners:
            for change in changes:  # change by change, as published one at a time
                for listener in tuple(self._listeners):
                    self._call(listener, change)
        for listener, n in tuple(self._tails):
            for change in changes[-n:]:
                if not self._call(listener, change, n):
                    break

    def _call(self, listener: ChangeListener, change: Change, last: int | None = None) -> bool:
        """``listener(change)``; False (and the listener removed) when it raised."""
        try:
            listener(change)
        except Exception:
            logger.exception(
                W_LISTENER, self.name, listener, change.key, change.version, _source(change)
            )
            if last is None:
                if listener in self._listeners:
                    self._listeners.remove(listener)
            elif (listener, last) in self._tails:
                self._tails.remove((listener, last))
            return False
        return True


class ChangeStream:
    """``async for change in table.changes(): ...`` — every change from subscription on, in order.

    Bounded: at most ``maxsize`` undelivered changes are held. One more and the stream stops
    listening, delivers what it holds, then raises :class:`ChangeStreamOverflowError` (a consumer
    that cannot keep up must resynchronize; it never misses a change silently). ``close()`` (or
    leaving ``async with``) ends the iteration.
    """

    __slots__ = (
        "_closed",
        "_last_version",
        "_overflowed",
        "_queue",
        "_unsubscribe",
        "_wakeup",
        "maxsize",
        "table",
    )

    def __init__(self, feed: ChangeFeed, maxsize: int = DEFAULT_STREAM_QUEUE) -> None:
        if maxsize < 1:
            raise ValueError(
                E_AT_LEAST_ONE.format(table=feed.name, option="maxsize", value=maxsize)
            )
        self.maxsize = maxsize
        self.table = feed.name
        self._queue: deque[Change] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._overflowed = False
        self._last_version = 0
        self._unsubscribe = feed.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        if len(self._queue) >= self.maxsize:
            self._overflowed = True
            self._unsubscribe()
        else:
            self._queue.append(change)
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._closed = True
        self._unsubscribe()
        self._wakeup.set()

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> Change:
        if self._closed:
            raise StopAsyncIteration
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            if self._overflowed:
                self._closed = True
                raise ChangeStreamOverflowError(
                    E_OVERFLOW.format(
                        table=self.table, maxsize=self.maxsize, version=self._last_version
                    ),
                    table=self.table,
                    maxsize=self.maxsize,
                    version=self._last_version,
                )
            self._wakeup.clear()
            await self._wakeup.wait()
        change = self._queue.popleft()
        self._last_version = change.version
        return change

    async def __aenter__(self) -> ChangeStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _source(change: Change) -> str:
    """Where a change's record sits, for a log line ("" for a change not read from Kafka)."""
    if not change.topic:
        return ""
    return f", from {change.topic}[{change.partition}]@{change.offset}"
