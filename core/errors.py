"""The exception root.

Every error tablestream raises on purpose derives from :class:`TablestreamError`; each subsystem
defines its own subclass carrying structured fields (topic/partition/offset, SQL line/column, ...)
so callers can catch broadly and still report precisely.
"""

from __future__ import annotations

from typing import Any


class TablestreamError(Exception):
    """Root of every tablestream error. ``fields`` holds the structured context."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields: dict[str, Any] = fields

    def __str__(self) -> str:
        return self.message


class ConfigError(TablestreamError):
    """Settings or definitions that cannot work (named field and value in ``fields``)."""
