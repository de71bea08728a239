"""What defines a reference table: name, topic, key, value format and, opt-in, its history."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FORMATS = ("json",)
#: What an as-of read older than the table's history retention answers.
AS_OF_EXPIRED = ("null", "error")

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

E_OPTION_UNKNOWN = "table {table!r}: unknown option {option!r}; options: {known}"
E_OPTION_INT = "table {table!r}: option {option}={value!r} is not a whole number >= {minimum}"
E_OPTION_BOOL = "table {table!r}: option {option}={value!r} is not true or false"
E_OPTION_DURATION = (
    "table {table!r}: option {option}={value!r} is not a duration such as '7d', '12h', '30m', "
    "'45s' or '500ms'"
)
E_OPTION_CHOICE = "table {table!r}: option {option}={value!r} is not one of {choices}"
E_OPTION_CONFLICT = "table {table!r}: option {option}={value!r} contradicts {expected!r}"


def parse_duration_ms(text: str) -> int | None:
    """``'7d'`` -> 604800000; None when ``text`` is not ``<digits><ms|s|m|h|d|w>``."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2).lower()]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table definition.

    ``key_field`` None keys rows by the message key (decoded UTF-8); otherwise by that field of the
    JSON value. ``partitioned`` False (default) gives global semantics: every worker holds every
    partition. ``partitions`` is used only when the topic has to be created. ``exact_decimals``
    decodes JSON numbers with a fraction as ``Decimal`` (what DECIMAL columns need).

    History (opt-in): ``versions`` keeps at most that many versions per key, and
    ``history_retention_ms`` keeps versions needed to answer as-of reads up to that far behind the
    newest timestamp the table has seen; either one makes the table versioned. ``as_of_expired``
    says what an as-of read older than the retention gives: ``null`` or ``error``.
    ``changes_topic`` names a topic that receives the table's change (retract) stream.

    ``check`` (a table declared with columns in a pipeline): a row's reason not to be stored, or
    None; a row with a reason goes to the dead-letter topic and the key keeps its previous row.
    """

    name: str
    topic: str
    key_field: str | None = None
    value_format: str = "json"
    partitioned: bool = False
    partitions: int | None = None
    exact_decimals: bool = False
    versions: int | None = None
    history_retention_ms: int | None = None
    as_of_expired: str = "null"
    changes_topic: str | None = None
    check: Callable[[Any], str | None] | None = field(default=None, compare=False, repr=False)

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
        if self.versions is not None and self.versions < 1:
            raise ConfigError(f"table {self.name!r}: versions must be >= 1", table=self.name)
        if self.history_retention_ms is not None and self.history_retention_ms < 1:
            raise ConfigError(
                f"table {self.name!r}: history retention must be positive", table=self.name
            )
        if self.as_of_expired not in AS_OF_EXPIRED:
            raise ConfigError(
                E_OPTION_CHOICE.format(
                    table=self.name,
                    option="as_of_expired",
                    value=self.as_of_expired,
                    choices=AS_OF_EXPIRED,
                ),
                table=self.name,
            )

    @property
    def versioned(self) -> bool:
        """Whether the table keeps history (``versions`` or ``history_retention_ms`` set)."""
        return self.versions is not None or self.history_retention_ms is not None

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

    @classmethod
    def from_options(
        cls, name: str, topic: str, key_field: str | None, options: Mapping[str, str]
    ) -> TableSpec:
        """A spec from SQL ``WITH (...)`` options (``CREATE TABLE t ... WITH (versions='10')``).

        Option names are case-insensitive; values are text (quoted or not in SQL). Known options:
        ``versions`` (>= 1), ``history_retention`` (``'7d'``, ``'12h'``, ``'30m'``, ``'45s'``,
        ``'500ms'``), ``as_of_expired`` (``null``/``error``), ``partitions`` (>= 1),
        ``partitioned`` (true/false), ``format`` (``json``), ``exact_decimals`` (true/false),
        ``changes_topic``; ``topic`` and ``key`` are accepted when they repeat the arguments.
        Anything else, or a value that does not parse, raises :class:`ConfigError` naming the
        table, the option and the value.
        """
        parser = _OptionParser(name)
        fields: dict[str, object] = {}
        for raw_option, raw_value in options.items():
            option = str(raw_option).strip().lower()
            value = str(raw_value).strip()
            if option == "versions":
                fields["versions"] = parser.integer(option, value, 1)
            elif option == "history_retention":
                fields["history_retention_ms"] = parser.duration(option, value)
            elif option == "as_of_expired":
                fields["as_of_expired"] = parser.choice(option, value, AS_OF_EXPIRED)
            elif option == "partitions":
                fields["partitions"] = parser.integer(option, value, 1)
            elif option == "partitioned":
                fields["partitioned"] = parser.boolean(option, value)
            elif option in ("format", "value_format"):
                fields["value_format"] = parser.choice(option, value, FORMATS)
            elif option == "exact_decimals":
                fields["exact_decimals"] = parser.boolean(option, value)
            elif option == "changes_topic":
                fields["changes_topic"] = parser.nonempty(option, value)
            elif option == "topic":
                parser.same(option, value, topic)
            elif option in ("key", "key_field"):
                parser.same(option, value, key_field)
            else:
                raise ConfigError(
                    E_OPTION_UNKNOWN.format(table=name, option=option, known=", ".join(OPTIONS)),
                    table=name,
                    option=option,
                    value=value,
                )
        return cls(name, topic, key_field, **fields)  # type: ignore[arg-type]


#: The ``WITH`` options :meth:`TableSpec.from_options` understands.
OPTIONS = (
    "versions",
    "history_retention",
    "as_of_expired",
    "partitions",
    "partitioned",
    "format",
    "exact_decimals",
    "changes_topic",
    "topic",
    "key",
)


class _OptionParser:
    """Parses one option value, raising a ConfigError that names table, option and value."""

    __slots__ = ("table",)

    def __init__(self, table: str) -> None:
        self.table = table

    def _error(self, template: str, option: str, value: str, **extra: object) -> ConfigError:
        text = template.format(table=self.table, option=option, value=value, **extra)
        return ConfigError(text, table=self.table, option=option, value=value)

    def integer(self, option: str, value: str, minimum: int) -> int:
        if not value.isdigit() or int(value) < minimum:
            raise self._error(E_OPTION_INT, option, value, minimum=minimum)
        return int(value)

    def boolean(self, option: str, value: str) -> bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self._error(E_OPTION_BOOL, option, value)

    def duration(self, option: str, value: str) -> int:
        ms = parse_duration_ms(value)
        if ms is None or ms < 1:
            raise self._error(E_OPTION_DURATION, option, value)
        return ms

    def choice(self, option: str, value: str, choices: tuple[str, ...]) -> str:
        if value.lower() not in choices:
            raise self._error(E_OPTION_CHOICE, option, value, choices=choices)
        return value.lower()

    def nonempty(self, option: str, value: str) -> str:
        if not value:
            raise self._error(E_OPTION_CHOICE, option, value, choices="a topic name")
        return value

    def same(self, option: str, value: str, expected: str | None) -> None:
        if value != (expected or ""):
            raise self._error(E_OPTION_CONFLICT, option, value, expected=expected)
