"""The change feed: a table publishes every applied change to its subscribers, in order."""

from __future__ import annotations

import logging

from tables.protocol import Change, ChangeListener, Unsubscribe

logger = logging.getLogger(__name__)


class ChangeFeed:
    """Synchronous fan-out of :class:`Change` records.

    Listeners run inline, right after the change became visible through ``get``, so anything they
    maintain (indexes, IN-sets, aggregates) is never behind the table it derives from. A listener
    that raises is logged and removed rather than allowed to stop the loader.
    """

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, change: Change) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(change)
            except Exception:
                logger.exception("change listener %r failed; unsubscribed", listener)
                if listener in self._listeners:
                    self._listeners.remove(listener)
