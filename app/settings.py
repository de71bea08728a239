"""One typed settings object, built at the edge.

Every field can be given in code or read from the environment as ``TABLESTREAM_<FIELD>``
(upper case). Library code receives a :class:`Settings`; it never reads the environment itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from tables.spec import TableSpec

ENV_PREFIX = "TABLESTREAM_"
#: Values of :attr:`Settings.processing_guarantee`.
GUARANTEES = ("at_least_once", "exactly_once")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker needs to know. Env names: ``TABLESTREAM_`` + the field in capitals."""

    app_id: str = "tablestream"
    #: Kafka bootstrap servers, ``host:port[,host:port]`` (a ``kafka://`` prefix is accepted).
    broker: str = "127.0.0.1:9092"
    data_dir: Path = Path("data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: Partitions of topics the worker creates when nothing else says.
    default_partitions: int = 1
    #: SQL pipeline files (comma-separated in the environment).
    pipeline: tuple[Path, ...] = ()
    #: Reference tables, ``NAME[:TOPIC[:KEY_FIELD[:partitioned]]]`` comma-separated in the env.
    tables: tuple[TableSpec, ...] = ()
    #: Dead-letter topic; empty means ``<app_id>-dlq``.
    dlq_topic: str = ""
    #: Consumer-group session timeout, seconds. Tansu holds a first join for half of it.
    session_timeout: float = 10.0
    #: Records a table loader fetches per batch.
    fetch_max_records: int = 10_000
    #: Records a query agent fetches and processes per batch.
    query_max_records: int = 10_000
    #: Processed batches of one query whose outputs may await the broker's ack at once.
    query_max_inflight: int = 4
    #: Seconds between a query's summary lines in the worker log (records in/out, dead letters).
    query_log_interval: float = 10.0
    #: How long the broker may hold a query's fetch waiting for data, ms (Tansu holds it that
    #: long even when data arrives: a floor under latency; lower costs more idle requests).
    query_fetch_wait_ms: int = 5
    #: ``at_least_once`` (outputs acknowledged, then offsets committed: a crash may repeat
    #: outputs) or ``exactly_once`` (outputs, state and offsets in one Kafka transaction per task,
    #: :mod:`agents.transaction`; needs a broker with transactions, checked at start).
    processing_guarantee: str = "at_least_once"
    log_level: str = "info"
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.web_port < 65536:
            raise ConfigError(f"web_port {self.web_port} is not a TCP port", field="web_port")
        if self.default_partitions < 1:
            raise ConfigError("default_partitions must be >= 1", field="default_partitions")
        if self.query_max_records < 1 or self.query_max_inflight < 1:
            raise ConfigError(
                "query_max_records and query_max_inflight must be >= 1", field="query_max_records"
            )
        if self.processing_guarantee not in GUARANTEES:
            raise ConfigError(
                f"processing_guarantee {self.processing_guarantee!r} is not one of"
                f" {', '.join(GUARANTEES)}",
                field="processing_guarantee",
            )
        names = [t.name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"table names defined twice: {', '.join(dupes)}", field="tables")

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it (no scheme)."""
        return ",".join(s.removeprefix("kafka://") for s in self.broker.split(","))

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.app_id}-dlq"

    def table(self, name: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == name:
                return spec
        raise ConfigError(f"no table named {name!r}", table=name)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``TABLESTREAM_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in env and f.name != "extra":
                values[f.name] = _parse(f.name, name, env[name])
        values.update(overrides)
        return cls(**values)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _to_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "data_dir": Path,
    "web_port": int,
    "default_partitions": int,
    "fetch_max_records": int,
    "query_max_records": int,
    "query_max_inflight": int,
    "query_log_interval": float,
    "query_fetch_wait_ms": int,
    "session_timeout": float,
    "pipeline": lambda s: tuple(Path(p) for p in _split(s)),
    "tables": lambda s: tuple(TableSpec.parse(p) for p in _split(s)),
}


def _parse(field_name: str, env_name: str, text: str) -> Any:
    parser = _PARSERS.get(field_name, str)
    try:
        return parser(text)
    except ConfigError as exc:
        raise ConfigError(f"{env_name}: {exc.message}", variable=env_name, value=text) from exc
    except ValueError as exc:
        raise ConfigError(f"{env_name}={text!r}: {exc}", variable=env_name, value=text) from exc
