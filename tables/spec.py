"""What defines a reference table: name, topic, key and value format."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FORMATS = ("json",)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table definition.

    ``key_field`` None keys rows by the message key (decoded UTF-8); otherwise by that field of the
    JSON value. ``partitioned`` False (default) gives global semantics: every worker holds every
    partition. ``partitions`` is used only when the topic has to be created. ``exact_decimals``
    decodes JSON numbers with a fraction as ``Decimal`` (what DECIMAL columns need).
    """

    name: str
    topic: str
    key_field: str | None = None
    value_format: str = "json"
    partitioned: bool = False
    partitions: int | None = None
    exact_decimals: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"table name {self.name!r} is not an identifier", table=self.name)
        if not self.topic:
            raise ConfigError(f"table {self.name!r} has no topic", table=self.name)
        if self.value_format not in FORMATS:
            raise ConfigError(
                f"table {self.name!r}: value format {self.value_format!r} is not one of {FORMATS}",
                table=self.name,
            )
        if self.partitions is not None and self.partitions < 1:
            raise ConfigError(f"table {self.name!r}: partitions must be >= 1", table=self.name)

    @classmethod
    def parse(cls, text: str) -> TableSpec:
        """Parse ``NAME[:TOPIC[:KEY_FIELD[:partitioned]]]`` (an empty KEY_FIELD = message key)."""
        parts = text.strip().split(":")
        if not parts[0] or len(parts) > 4:
            raise ConfigError(
                f"table definition {text!r} is not NAME[:TOPIC[:KEY_FIELD[:partitioned]]]",
                value=text,
            )
        name = parts[0]
        topic = parts[1] if len(parts) > 1 and parts[1] else name
        key_field = parts[2] if len(parts) > 2 and parts[2] else None
        mode = parts[3] if len(parts) > 3 else "global"
        if mode not in ("global", "partitioned"):
            raise ConfigError(
                f"table definition {text!r}: {mode!r} is not 'partitioned'", value=text
            )
        return cls(name=name, topic=topic, key_field=key_field, partitioned=mode == "partitioned")
