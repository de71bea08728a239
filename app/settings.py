"""One typed settings object, built at the edge.

Every field can be given in code or read from the environment as ``TABLESTREAM_<FIELD>``
(upper case). Library code receives a :class:`Settings`; it never reads the environment itself.

How a variable's text is read follows the field's type (``int``, ``float``, ``bool``, ``Path``,
``str``; tuples are comma-separated); a field's ``metadata`` may narrow it (``minimum``,
``maximum``, ``choices``). A bad value is one :class:`~core.errors.ConfigError` line naming the
variable, the value and what is expected.

faust reads variables of its own (``WEB_PORT``, ``BROKER_URL``, ``APP_DATADIR``, ...). The worker
builds its faust App with an empty environment, so those are never read: ``TABLESTREAM_*`` and
the defaults here are the whole configuration. :func:`env_warnings` names every faust variable
that is set (ignored) and every ``TABLESTREAM_*`` variable that is not a setting (a typo), with
the closest known name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.errors import ConfigError
from tables.cache_settings import DEFAULTS as CACHE_DEFAULTS
from tables.spec import TableSpec

ENV_PREFIX = "TABLESTREAM_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

#: faust's own variables that would set what one of our settings sets -> our setting.
FAUST_VARIABLES: Mapping[str, str] = {
    "BROKER_URL": "broker",
    "WEB_PORT": "web_port",
    "WEB_HOST": "web_host",
    "WEB_BIND": "web_host",
    "APP_DATADIR": "data_dir",
    "BROKER_SESSION_TIMEOUT": "session_timeout",
    "TOPIC_PARTITIONS": "default_partitions",
}

E_BAD_VALUE = "{variable}={value!r}: expected {expected}"
W_UNKNOWN = "{variable} is not a tablestream setting (ignored){hint}"
W_FAUST = "{variable}={value!r} is faust's variable and is not read; tablestream reads {ours}"

_HOST_PORT = re.compile(r"^(kafka://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


def _at_least(n: float) -> dict[str, Any]:
    return {"minimum": n}


#: Values of :attr:`Settings.processing_guarantee`.
GUARANTEES = ("at_least_once", "exactly_once")
#: Values of :attr:`Settings.static_membership`.
MEMBERSHIPS = ("auto", "true", "false")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker needs to know. Env names: ``TABLESTREAM_`` + the field in capitals."""

    #: The consumer-group and topic-name prefix: letters, digits, '.', '_', '-'.
    app_id: str = field(default="tablestream", metadata={"pattern": _APP_ID})
    #: Kafka bootstrap servers, ``host:port[,host:port]`` (a ``kafka://`` prefix is accepted).
    broker: str = field(default="127.0.0.1:9092", metadata={"items": _HOST_PORT})
    data_dir: Path = Path("data")
    web_host: str = "127.0.0.1"
    web_port: int = field(default=6066, metadata={"minimum": 1, "maximum": 65535})
    #: Partitions of topics the worker creates when nothing else says.
    default_partitions: int = field(default=1, metadata=_at_least(1))
    #: SQL pipeline files (comma-separated in the environment).
    pipeline: tuple[Path, ...] = ()
    #: Reference tables, ``NAME[:TOPIC[:KEY_FIELD[:partitioned]]]`` comma-separated in the env.
    tables: tuple[TableSpec, ...] = ()
    #: Dead-letter topic; empty means ``<app_id>-dlq``.
    dlq_topic: str = ""
    #: Consumer-group session timeout, seconds. Tansu holds a first join for half of it.
    session_timeout: float = field(default=10.0, metadata=_at_least(1))
    #: Records a table loader fetches (and applies) per batch.
    fetch_max_records: int = field(default=10_000, metadata=_at_least(1))
    #: Decoded rows a reference table keeps for ``get()``, a fixed bound (``table_cache_mb``
    #: then bounds its stored bytes alone); 0: sized from the table within ``table_cache_mb``
    #: (tables/rowcache.py: the whole table decoded when it fits, else its stored bytes and
    #: decoded rows of recent reads with the rest).
    table_cache_rows: int = field(default=CACHE_DEFAULTS.rows, metadata=_at_least(0))
    #: MB a reference table's row cache holds for ``get()`` before asking RocksDB: decoded rows
    #: (~580 bytes a flat 6-field row) and stored bytes (~210 bytes a 100-byte row) together.
    table_cache_mb: float = field(default=CACHE_DEFAULTS.mb, metadata=_at_least(0))
    #: Once a reference table is ready, fill that memory from its store in the background
    #: (tables/preload.py) and keep what later batches write while it fits: lookups skip
    #: RocksDB from the start; costs the memory at once.
    table_cache_preload: bool = CACHE_DEFAULTS.preload
    #: Records a query agent fetches and processes per batch.
    query_max_records: int = field(default=10_000, metadata=_at_least(1))
    #: Processed batches of one query whose outputs may await the broker's ack at once.
    query_max_inflight: int = field(default=4, metadata=_at_least(1))
    #: Seconds between a query's summary lines in the worker log (records in/out, dead letters).
    query_log_interval: float = field(default=10.0, metadata=_at_least(0.1))
    #: How long the broker may hold a query's fetch waiting for data, ms (Tansu holds it that
    #: long even when data arrives: a floor under latency; lower costs more idle requests).
    query_fetch_wait_ms: int = field(default=5, metadata=_at_least(0))
    #: Stateful queries, at-least-once: seconds between two writes of a task's state (the groups
    #: and windows its batches changed, with the offset of the last record applied); a crash
    #: replays the records since quietly. 0: written with every batch. Exactly-once writes it
    #: with every transaction whatever this says.
    state_write_interval: float = field(default=1.0, metadata={"minimum": 0, "maximum": 60})
    #: Nesting levels a JSON record value may have; a deeper one is a dead letter (a parser's
    #: recursion never sees it).
    json_max_depth: int = field(default=256, metadata=_at_least(1))
    #: Windowed queries: seconds after which a source partition read to its end that brings no
    #: record is idle — left out of the watermark, so it cannot hold windows open (Flink's
    #: idleness); its next record makes it active again.
    watermark_idle_timeout: float = field(default=30.0, metadata=_at_least(0.1))
    #: Windowed queries: event-time ms a source partition may run ahead of the slowest active
    #: one before its fetching pauses (bounds the state held while waiting for the slowest);
    #: table loaders: record-timestamp ms one partition may be applied ahead (tables/skew.py).
    watermark_max_skew_ms: int = field(default=300_000, metadata=_at_least(1))
    #: Windowed queries: the watermark is the minimum over the source partitions (as Flink's).
    #: Off: each task's own largest event time (Kafka Streams' stream time) — after a crash, or
    #: whenever one source partition is read ahead of another, valid records of the slower one
    #: become late. For comparison only (tests/integration/agents/test_crash_replay.py).
    watermark_per_source: bool = True
    #: Consumer-group membership. ``true``: static — the worker keeps one id in every group
    #: (stored in ``DATA_DIR/instance-id``), so a restart takes its old member's place at once; a
    #: worker gone for good hands its partitions over after the session timeout. ``false``:
    #: dynamic — a restart first makes its previous member (id in ``DATA_DIR/members/``) leave.
    #: ``auto``: static unless the broker finalizes no ``metadata.version`` in its ApiVersions
    #: answer (Tansu, which holds a static member's JoinGroup and SyncGroup ≥ 3 s each).
    static_membership: str = field(default="auto", metadata={"choices": MEMBERSHIPS})
    #: ``at_least_once`` (outputs acknowledged, then offsets committed: a crash may repeat
    #: outputs) or ``exactly_once`` (outputs, state and offsets in one Kafka transaction per task,
    #: :mod:`agents.transaction`; needs a broker with transactions, checked at start).
    processing_guarantee: str = field(default="at_least_once", metadata={"choices": GUARANTEES})
    #: ``exactly_once``: ms a task's transaction stays open before it commits (Kafka Streams'
    #: ``commit.interval.ms``, 100 under EOS). Outputs become visible to ``read_committed``
    #: readers when it commits: lower means less latency, more commits (4 round trips each).
    commit_interval_ms: int = field(default=100, metadata=_at_least(0))
    #: Level of the ``tables`` and ``agents`` loggers (the table loaders, the query agents).
    log_level: str = field(default="info", metadata={"choices": LOG_LEVELS})
    #: Stateless queries run as one generated Python function per batch, co-partitioned GROUP BY
    #: and tumbling windows as one generated fold per batch (``sql explain --code`` prints them);
    #: off: the closure compiler's per-record closures (the reference), for A/B.
    codegen: bool = True
    #: ``GET /live`` fails when the event loop's heartbeat is older than this, seconds.
    live_max_age: float = field(default=30.0, metadata=_at_least(2))
    #: Not read from the environment: free-form values given in code.
    extra: Mapping[str, str] = field(default_factory=dict, metadata={"env": False})
    #: The variables a table's ``password_env`` / ``token_env`` / ``credential_env`` option may
    #: name: :meth:`from_env` takes the process environment's, here at the edge, and the tables
    #: get them through their ``TableEnv`` (no source reads the environment).
    secrets: Mapping[str, str] = field(
        default_factory=dict, repr=False, compare=False, metadata={"env": False}
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            expected = _violation(f, getattr(self, f.name))
            if expected is not None:
                raise ConfigError(
                    f"{f.name}={getattr(self, f.name)!r}: expected {expected}",
                    field=f.name,
                    expected=expected,
                )
        names = [t.name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"table names defined twice: {', '.join(dupes)}", field="tables")

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it (no scheme)."""
        return ",".join(s.strip().removeprefix("kafka://") for s in self.broker.split(","))

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee.lower() == "exactly_once"

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.app_id}-dlq"

    @property
    def web_url(self) -> str:
        """Where a client on this machine reaches the worker's web server."""
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}"

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
        texts: dict[str, tuple[str, str]] = {}
        for f in _env_fields():
            name = env_name(f.name)
            if name in env:
                values[f.name] = _parse(f, name, env[name])
                texts[f.name] = (name, env[name])
        values["secrets"] = MappingProxyType(dict(env))
        values.update(overrides)
        try:
            return cls(**values)
        except ConfigError as exc:  # a check across fields: name the variable it came from
            variable, text = texts.get(exc.fields.get("field", ""), ("", ""))
            if not variable:
                raise
            raise ConfigError(f"{variable}={text!r}: {exc.message}", variable=variable) from exc


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _env_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if f.metadata.get("env", True)]


def known_variables() -> list[str]:
    return [env_name(f.name) for f in _env_fields()]


def env_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ignored variable: a ``TABLESTREAM_*`` that is no setting (with the closest
    known name), a faust variable that would have set one of ours."""
    env = os.environ if environ is None else environ
    known = known_variables()
    lines = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known:
            # Matched without the shared prefix, which would make every name look close.
            suffixes = [k.removeprefix(ENV_PREFIX) for k in known]
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, 1, 0.6)
            hint = (
                f"; did you mean {ENV_PREFIX}{close[0]}?"
                if close
                else f"; settings: {', '.join(known)}"
            )
            lines.append(W_UNKNOWN.format(variable=name, hint=hint))
        elif name in FAUST_VARIABLES:
            ours = env_name(FAUST_VARIABLES[name])
            lines.append(W_FAUST.format(variable=name, value=env[name], ours=ours))
    return lines


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _to_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean")


#: Reading a variable's text by the field's type, and what to say when it cannot be read.
_READERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (int, "an integer"),
    float: (float, "a number"),
    bool: (_to_bool, "true or false"),
    Path: (Path, "a path"),
    str: (str, "text"),
    tuple[Path, ...]: (lambda s: tuple(Path(p) for p in _split(s)), "comma-separated paths"),
    tuple[TableSpec, ...]: (
        lambda s: tuple(TableSpec.parse(p) for p in _split(s)),
        "comma-separated NAME[:TOPIC[:KEY_FIELD[:partitioned]]]",
    ),
}
_HINTS: dict[str, Any] = {}


def _reader(f: dataclasses.Field[Any]) -> tuple[Callable[[str], Any], str]:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(Settings))
    return _READERS.get(_HINTS[f.name], (str, "text"))


def _expected(f: dataclasses.Field[Any]) -> str:
    """What a field takes, in words (the end of a bad-value message)."""
    meta = f.metadata
    _, kind = _reader(f)
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    if "items" in meta:
        return "host:port[,host:port] (a kafka:// prefix is accepted)"
    if "pattern" in meta:
        return "a name of letters, digits, '.', '_' or '-'"
    if "minimum" in meta and "maximum" in meta:
        return f"{kind} from {meta['minimum']} to {meta['maximum']}"
    if "minimum" in meta:
        return f"{kind} >= {meta['minimum']}"
    return kind


def _violation(f: dataclasses.Field[Any], value: Any) -> str | None:
    """None when ``value`` is acceptable for ``f``, else what is expected."""
    meta = f.metadata
    ok = value == value  # NaN: no minimum or maximum would refuse it
    if "minimum" in meta and value < meta["minimum"]:
        ok = False
    if "maximum" in meta and value > meta["maximum"]:
        ok = False
    if "choices" in meta and str(value).lower() not in meta["choices"]:
        ok = False
    if "pattern" in meta and not meta["pattern"].match(str(value)):
        ok = False
    if "items" in meta:
        parts = str(value).split(",")
        ok = ok and all(meta["items"].match(p.strip()) for p in parts)
    return None if ok else _expected(f)


def _parse(f: dataclasses.Field[Any], variable: str, text: str) -> Any:
    read, _ = _reader(f)
    try:
        value = read(text)
    except ConfigError as exc:  # a table spec says precisely what is wrong with it
        raise ConfigError(
            f"{variable}={text!r}: {exc.message}", variable=variable, value=text
        ) from exc
    except ValueError:
        value = None
    expected = _expected(f) if value is None else _violation(f, value)
    if expected is not None:
        raise ConfigError(
            E_BAD_VALUE.format(variable=variable, value=text, expected=expected),
            variable=variable,
            value=text,
            expected=expected,
        )
    return value
