"""The ``WITH (...)`` options of an Iceberg table, parsed once (see :mod:`sources.iceberg`).

The options every external table understands (``table``, ``on_error``, ``timeout``, ``retries``,
the breaker's) are parsed by :func:`sources.config.parse`; these are Iceberg's own:

- ``catalog_uri`` (required): ``sqlite:///...`` or ``postgresql+psycopg://...`` (pyiceberg's SQL
  catalog), ``http(s)://...`` (a REST catalog); ``catalog_type`` overrides the guess;
- ``warehouse``, ``catalog`` (the catalog's name, default ``default``), and any catalog property
  as a quoted ``'catalog.<property>'='value'`` option, passed to pyiceberg as it is;
- ``token_env`` / ``credential_env``: the environment variable holding a REST catalog's bearer
  token / OAuth2 ``client_id:client_secret`` (pyiceberg's ``token`` / ``credential``), looked up
  among the secrets the edge gives the table (``TableEnv.secrets``); never an option's value;
- ``refresh`` (``none``, the default: the snapshot current at start; ``snapshot``: follow new
  snapshots, polling every ``poll_interval``, default ``10s``);
- ``filter``: a row filter in pyiceberg's syntax (``region = 'EU' AND volume > 0``), applied to
  every snapshot read: partitions pruned and files skipped by it;
- ``snapshot_caches`` (default 4): older snapshots kept loaded for time travel (LRU);
- ``spill_rows`` (default 2,000,000): a snapshot with more rows goes to a local RocksDB store;
- ``as_of_expired`` (``null`` / ``error``): a time before the first snapshot reads no row, or
  is the record's error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError
from sources import config as cfg
from sources.config import SourceConfig
from tables.spec import E_OPTION_CHOICE, E_OPTION_DURATION, TableSpec, parse_duration_ms

OWN = (
    "warehouse",
    "catalog",
    "catalog_type",
    "refresh",
    "poll_interval",
    "filter",
    "snapshot_caches",
    "spill_rows",
    "as_of_expired",
    "token_env",
    "credential_env",
)
PASSTHROUGH = "catalog."
#: Secret catalog properties: named by an ``*_env`` option, never written in the pipeline.
SECRETS = {"token": "token_env", "credential": "credential_env"}
E_SECRET_OPTION = (
    "table {table!r}: option 'catalog.{prop}' would show the secret in the pipeline file: "
    "name an environment variable with {option}"
)
E_FILTER = "table {table!r}: option filter={value!r} is not a pyiceberg row filter: {error}"
E_CACHE = (
    "table {table!r}: option cache={value!r}: an Iceberg table is always read a snapshot at a "
    "time into memory (drop the option)"
)


@dataclass(frozen=True, slots=True)
class IcebergConfig:
    source: SourceConfig  # catalog_uri is its ``target``, ``namespace.table`` its remote table
    warehouse: str | None = None
    catalog: str = "default"
    catalog_type: str = "sql"
    follow: bool = False
    poll_interval: float = 10.0
    row_filter: str | None = None
    snapshot_caches: int = 4
    spill_rows: int = 2_000_000
    as_of_error: bool = False
    passthrough: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: catalog property (``token``, ``credential``) → the variable holding its value
    secret_vars: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def properties(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        """pyiceberg's ``load_catalog`` properties, the secret ones looked up in ``secrets``."""
        props: dict[str, Any] = {"type": self.catalog_type, "uri": self.source.target}
        for prop, variable in self.secret_vars:
            props[prop] = cfg.secret(secrets, variable, SECRETS[prop], self.source.table)
        if self.warehouse:
            props["warehouse"] = self.warehouse
        if self.catalog_type == "sql":
            # A reader never creates the catalog's tables (pyiceberg would, in a new database).
            props["init_catalog_tables"] = "false"
        props.update(dict(self.passthrough))
        return props


def parse(spec: TableSpec) -> IcebergConfig:
    """The config of an Iceberg table's spec; raises ConfigError naming table and option."""
    name = spec.name
    options = spec.option_map
    own = {k: v for k, v in options.items() if k in OWN}
    passthrough = tuple(
        (k[len(PASSTHROUGH) :], v) for k, v in options.items() if k.startswith(PASSTHROUGH)
    )
    for prop, option in SECRETS.items():
        if prop in dict(passthrough):
            text = E_SECRET_OPTION.format(table=name, prop=prop, option=option)
            raise ConfigError(text, table=name, option=f"catalog.{prop}")
    rest = tuple((k, v) for k, v in spec.options if k not in OWN and not k.startswith(PASSTHROUGH))
    source = cfg.parse(dataclasses.replace(spec, options=rest), "catalog_uri")
    if "cache" in options and options["cache"].lower() != "full":
        raise ConfigError(
            E_CACHE.format(table=name, value=options["cache"]), table=name, option="cache"
        )
    uri = source.target.lower()
    guessed = "rest" if uri.startswith(("http://", "https://")) else "sql"
    fields: dict[str, Any] = {
        "catalog_type": own.get("catalog_type", guessed).lower(),
        "warehouse": own.get("warehouse") or None,
        "catalog": own.get("catalog") or "default",
        "passthrough": passthrough,
        "secret_vars": tuple((p, own[o]) for p, o in SECRETS.items() if own.get(o)),
    }
    if "refresh" in own:
        fields["follow"] = _choice(name, "refresh", own["refresh"], ("none", "snapshot"))
        fields["follow"] = fields["follow"] == "snapshot"
    if "poll_interval" in own:
        ms = parse_duration_ms(own["poll_interval"])
        if ms is None or ms <= 0:
            text = E_OPTION_DURATION.format(
                table=name, option="poll_interval", value=own["poll_interval"]
            )
            raise ConfigError(text, table=name, option="poll_interval")
        fields["poll_interval"] = ms / 1000.0
    for option in ("snapshot_caches", "spill_rows"):
        if option in own:
            value = own[option]
            if not value.isdigit() or int(value) < 1:
                text = cfg.E_POSITIVE.format(table=name, option=option, value=value)
                raise ConfigError(text, table=name, option=option, value=value)
            fields[option] = int(value)
    if "as_of_expired" in own:
        fields["as_of_error"] = (
            _choice(name, "as_of_expired", own["as_of_expired"], ("null", "error")) == "error"
        )
    if own.get("filter"):
        fields["row_filter"] = own["filter"]
        _check_filter(name, own["filter"])
    return IcebergConfig(source, **fields)


def _choice(table: str, option: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        text = E_OPTION_CHOICE.format(table=table, option=option, value=value, choices=choices)
        raise ConfigError(text, table=table, option=option, value=value)
    return value.lower()


def _check_filter(table: str, text: str) -> None:
    from pyiceberg.expressions.parser import parse as parse_filter

    try:
        parse_filter(text)
    except Exception as exc:
        raise ConfigError(
            E_FILTER.format(table=table, value=text, error=str(exc).splitlines()[0]),
            table=table,
            option="filter",
        ) from exc
