"""The ``WITH (...)`` options of an external table, parsed once and checked at start.

Every error names the table and the option (``table 'customers': option cache_ttl='1y' is not a
duration ...``). Passwords are never options: they come from the DSN or from an environment
variable named by ``password_env`` (looked up by :func:`secret` among the secrets the edge
passed in), and :func:`redact` removes them from anything shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from tables.spec import E_OPTION_CHOICE, E_OPTION_UNKNOWN, TableSpec, parse_duration_ms

CACHE_MODES = ("none", "partial", "full")
ON_ERROR = ("wait", "stale", "dead_letter")
E_REQUIRED = "table {table!r}: option {option!r} is required for connector={connector!r}"
E_NO_COLUMNS = (
    "table {table!r}: connector={connector!r} needs declared columns: "
    "CREATE TABLE {table} (col TYPE, ..., PRIMARY KEY (col)) WITH (...)"
)
E_NO_KEY = "table {table!r}: connector={connector!r} needs a PRIMARY KEY (the lookup column)"
E_POSITIVE = "table {table!r}: option {option}={value!r} is not a whole number >= 1"
E_TLS_HTTP = "table {table!r}: option {option} is for an https:// {target} (TLS)"
E_CA_FILE = "table {table!r}: option ca_file={value!r}: no such file"
E_PASSWORD_OPTION = (
    "table {table!r}: option 'password' is not accepted (it would show in the pipeline file): "
    "put it in the DSN or name an environment variable with password_env"
)

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


E_SECRET_UNSET = "table {table!r}: environment variable {variable} ({option}) is not set"


def secret(secrets: Mapping[str, str], variable: str, option: str, table: str) -> str:
    """The value of ``variable`` (named by ``option``) among the secrets the edge gave the table
    (:attr:`tables.kinds.TableEnv.secrets`); ConfigError naming table, option and variable."""
    value = secrets.get(variable)
    if value is None:
        text = E_SECRET_UNSET.format(table=table, variable=variable, option=option)
        raise ConfigError(text, table=table, option=option, variable=variable)
    return value


def redact(text: str) -> str:
    """``text`` with any password of a DSN replaced by ``***``."""
    return _PASSWORD_KV.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text))


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One external table's options, typed. Durations in seconds."""

    table: str  # our table's name
    connector: str
    target: str  # dsn (postgres) or path (duckdb)
    remote_table: str  # the database's table, maybe schema-qualified
    key: str
    columns: tuple[tuple[str, str], ...]
    cache: str = "partial"
    cache_ttl: float = 60.0
    cache_max_rows: int = 100_000
    cache_missing_ttl: float = 10.0
    refresh: float | None = None
    on_error: str = "wait"
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.05
    breaker_failures: int = 5
    breaker_reset: float = 2.0
    max_inflight: int = 4
    max_keys_per_query: int = 10_000
    pool_size: int = 4
    password_env: str | None = None
    #: TLS of an https:// target (kinds that allow the options): the CA bundle to verify the
    #: server's certificate with (default: the system's), or no verification at all.
    ca_file: str | None = None
    verify: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def cache_text(self) -> str:
        """The cache for EXPLAIN: mode and TTLs."""
        if self.cache == "full":
            every = f" refresh={_secs(self.refresh)}" if self.refresh else ""
            return f"cache=full{every}"
        if self.cache == "none":
            return "cache=none (per batch)"
        return (
            f"cache=partial ttl={_secs(self.cache_ttl)} max_rows={self.cache_max_rows}"
            f" missing_ttl={_secs(self.cache_missing_ttl)}"
        )


def _secs(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:g}s"


#: Options every external kind understands; ``target`` is the kind's own (dsn / path).
COMMON = (
    "table",
    "cache",
    "cache_ttl",
    "cache_max_rows",
    "cache_missing_ttl",
    "refresh",
    "on_error",
    "timeout",
    "retries",
    "breaker_failures",
    "breaker_reset",
    "max_inflight",
    "max_keys_per_query",
    "pool_size",
    "key",
    "topic",
)


def parse(spec: TableSpec, target_option: str, extra: tuple[str, ...] = ()) -> SourceConfig:
    """The config of ``spec`` (an external table); raises ConfigError naming table and option."""
    name, connector = spec.name, spec.kind
    options: Mapping[str, str] = spec.option_map
    known = (target_option, *COMMON, *extra)
    for option, value in options.items():
        if option == "password":
            raise ConfigError(E_PASSWORD_OPTION.format(table=name), table=name, option=option)
        if option not in known:
            raise ConfigError(
                E_OPTION_UNKNOWN.format(table=name, option=option, known=", ".join(known)),
                table=name,
                option=option,
                value=redact(value),
            )
    for option in (target_option, "table"):
        if not options.get(option):
            raise ConfigError(
                E_REQUIRED.format(table=name, option=option, connector=connector),
                table=name,
                option=option,
            )
    if not spec.columns:
        raise ConfigError(E_NO_COLUMNS.format(table=name, connector=connector), table=name)
    if spec.key_field is None:
        raise ConfigError(E_NO_KEY.format(table=name, connector=connector), table=name)
    p = _Options(name, options)
    fields: dict[str, object] = {}
    for option in ("cache_ttl", "cache_missing_ttl", "refresh", "timeout", "breaker_reset"):
        if option in options:
            fields[option] = p.duration(option)
    for option in (
        "cache_max_rows",
        "retries",
        "breaker_failures",
        "max_inflight",
        "max_keys_per_query",
        "pool_size",
    ):
        if option in options:
            fields[option] = p.integer(option, 0 if option == "retries" else 1)
    if "cache" in options:
        fields["cache"] = p.choice("cache", CACHE_MODES)
    if "on_error" in options:
        fields["on_error"] = p.choice("on_error", ON_ERROR)
    if options.get("password_env"):
        fields["password_env"] = options["password_env"]
    for option in ("ca_file", "verify"):
        if option in options and not options[target_option].lower().startswith("https://"):
            text = E_TLS_HTTP.format(table=name, option=option, target=target_option)
            raise ConfigError(text, table=name, option=option)
    if "verify" in options:
        fields["verify"] = p.choice("verify", ("true", "false")) == "true"
    if options.get("ca_file"):
        if not Path(options["ca_file"]).is_file():
            text = E_CA_FILE.format(table=name, value=options["ca_file"])
            raise ConfigError(text, table=name, option="ca_file")
        fields["ca_file"] = options["ca_file"]
    return SourceConfig(
        table=name,
        connector=connector,
        target=options[target_option],
        remote_table=options["table"],
        key=spec.key_field,
        columns=spec.columns,
        **fields,  # type: ignore[arg-type]
    )


class _Options:
    __slots__ = ("options", "table")

    def __init__(self, table: str, options: Mapping[str, str]) -> None:
        self.table, self.options = table, options

    def _error(self, text: str, option: str) -> ConfigError:
        return ConfigError(text, table=self.table, option=option, value=self.options[option])

    def duration(self, option: str) -> float:
        from tables.spec import E_OPTION_DURATION

        ms = parse_duration_ms(self.options[option])
        if ms is None:
            text = E_OPTION_DURATION.format(
                table=self.table, option=option, value=self.options[option]
            )
            raise self._error(text, option)
        return ms / 1000.0

    def integer(self, option: str, minimum: int) -> int:
        value = self.options[option]
        if not value.isdigit() or int(value) < minimum:
            text = E_POSITIVE.format(table=self.table, option=option, value=value)
            raise self._error(text.replace(">= 1", f">= {minimum}"), option)
        return int(value)

    def choice(self, option: str, choices: tuple[str, ...]) -> str:
        value = self.options[option].lower()
        if value not in choices:
            text = E_OPTION_CHOICE.format(
                table=self.table, option=option, value=self.options[option], choices=choices
            )
            raise self._error(text, option)
        return value
