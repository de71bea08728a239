"""Where a generated batch function puts its outputs: a record sink whose ``append`` it calls
inline, per record, with the record's offset in the open batch (the caller's C record builder,
``agents.sink.RecordSink``), or :class:`EmitSink` around any ``emit(key, value)`` function.

Per record the generated code runs::

    if append(n, None, key, value, NO_HEADERS) is None:   # the batch is full
        append, n = sink.roll(n)
        if append(0, None, key, value, NO_HEADERS) is None:
            sink.too_large(key, value)                    # raises the record's error
    n += 1

between ``append, n = sink.open()`` and ``sink.close(n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: ``append(offset, timestamp, key, value, headers) -> None when the batch is full``.
Append = Callable[[int, Any, Any, Any, Any], Any]


class RecordSink(Protocol):
    def open(self) -> tuple[Append, int]: ...

    def roll(self, n: int) -> tuple[Append, int]: ...

    def too_large(self, key: bytes | None, value: bytes | None) -> None: ...

    def close(self, n: int) -> None: ...


class EmitSink:
    """A sink that hands each record to ``emit(key, value)`` (never full)."""

    __slots__ = ("_emit",)

    def __init__(self, emit: Callable[[Any, bytes], Any]) -> None:
        self._emit = emit

    def _append(self, n: int, timestamp: Any, key: Any, value: Any, headers: Any) -> bool:
        self._emit(key, value)
        return True

    def open(self) -> tuple[Append, int]:
        return self._append, 0

    def roll(self, n: int) -> tuple[Append, int]:
        return self._append, 0

    def too_large(self, key: bytes | None, value: bytes | None) -> None:
        raise AssertionError("an emit sink is never full")

    def close(self, n: int) -> None:
        pass
