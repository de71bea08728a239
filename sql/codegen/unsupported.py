"""The signal that code generation declines a query (or a part of it): the closures run it."""

from __future__ import annotations


class Unsupported(Exception):
    """The query (or a part of it) is not generated: the closures run it. ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
