"""ClickHouse tables, over a server's HTTP interface or in process (chdb)::

    CREATE TABLE stats (...) WITH (connector='clickhouse', url='http://reader@127.0.0.1:8123/db',
                                   password_env='CH_PASSWORD', table='daily_stats');
    CREATE TABLE stats (...) WITH (connector='clickhouse', path='data/analytics', table='db.t');
    CREATE TABLE scores (...) WITH (connector='clickhouse', file='data/scores.parquet');

One of ``url`` (a server), ``path`` (a chdb session directory holding the tables) or ``file``
(a file chdb reads with ``file()``; ``format`` names its format when the extension does not).
An ``https://`` url verifies the server's certificate against the system's CAs, or against
``ca_file='ca.pem'`` (a private CA, a self-signed server); ``verify='false'`` takes any.
Everything else is Federation I's: batched ``IN`` lookups (one query per batch of distinct
keys), pushed-down probes, caches, breaker and ``on_error`` (:mod:`sources.table`).

A batch's keys are one array literal in the query text, cast to the column's type and unnested
(servers before 19.x have no query parameters), written per the column's type by
:mod:`sources.clickhouse_types`, which also reads the answers exactly. The password comes from
the URL or from the variable named by ``password_env`` (looked up, when the table opens, among
the secrets the edge gave it: ``TableEnv.secrets``); never shown (:func:`sources.config.redact`).
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from sources import clickhouse_types as cht
from sources import config as cfg
from sources.clickhouse_client import ClickHouseError, EmbeddedClient, HttpClient, tls_context
from sources.modes import create
from sources.table import ExternalTable, quote_table
from tables.kinds import TableEnv
from tables.protocol import Table
from tables.spec import TableSpec

TARGETS = ("url", "path", "file")
E_TARGET = (
    "table {table!r}: connector='clickhouse' needs exactly one of url= (a server), path= (an"
    " embedded chdb directory) or file= (a file read by the embedded engine); got {given}"
)
E_FILE_TABLE = "table {table!r}: option table= does not go with file= (the file is the table)"
_IN_KEYS = re.compile(r'("(?:[^"]|"")*") IN \(\{keys\}\)$')
#: Above this many characters of keys a batch's query is split (servers refuse queries longer
#: than ``max_query_size``, 256 KiB by default).
MAX_KEYS_TEXT = 200_000
_NO_TABLE = ("Code: 60", "Code: 81", "UNKNOWN_TABLE", "UNKNOWN_DATABASE", "Code: 107")


def _identity(v: Any) -> Any:
    return v


class ClickHouse:
    """One ClickHouse table's connection (the :class:`sources.table.Database` of the kind)."""

    any_clause = "{column} IN ({{keys}})"

    def __init__(
        self,
        config: cfg.SourceConfig,
        target: str,
        fmt: str | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.secrets = secrets or {}
        self.option = target
        self.file_format = fmt
        self.client: HttpClient | EmbeddedClient
        if target == "url":
            https = config.target.lower().startswith("https://")
            tls = tls_context(config.ca_file, config.verify) if https else None
            self.client = HttpClient(config.target, self._password, config.timeout, tls)
        else:
            path = config.target if target == "path" else None
            self.client = EmbeddedClient(path, config.timeout)
        self.label = self.client.label
        self.server_zone = "UTC"
        self.version = ""
        self._readers: dict[str, cht.Reader] = {}
        self._literals: dict[str, cht.Literal] = {}
        self._key_types: dict[str, str] = {}

    def _password(self) -> str | None:
        c = self.config
        if c.password_env is None:
            return None
        return cfg.secret(self.secrets, c.password_env, "password_env", c.table)

    def counts(self) -> dict[str, int]:
        """For the table's stats: embedded queries cancelled or abandoned at ``timeout``."""
        client = self.client
        return {"query_timeouts": client.timeouts} if isinstance(client, EmbeddedClient) else {}

    # -- the Database protocol ------------------------------------------------------------------
    def open(self) -> None:
        self.client.open()
        try:
            version, zone = self.run("SELECT version(), timezone()")[0]
        except ClickHouseError as exc:
            if not (isinstance(self.client, HttpClient) and "readonly" in str(exc).lower()):
                raise
            # A readonly=1 user may change no setting: inf and nan then read as NULL.
            self.client.settings.clear()
            version, zone = self.run("SELECT version(), timezone()")[0]
        self.version, self.server_zone = str(version), str(zone)

    def close(self) -> None:
        self.client.close()

    def columns(self, table: str) -> dict[str, str] | None:
        """Column → type text for :func:`sources.types.fits`; readers and literals made here."""
        try:
            rows = self.run(f"DESCRIBE TABLE {self.quote(table)}")
        except ClickHouseError as exc:
            if any(marker in str(exc) for marker in _NO_TABLE):
                return None
            raise
        types = {str(r[0]): str(r[1]) for r in rows}
        for column, declared in self.config.columns:
            ch_type = types.get(column)
            if ch_type is not None:
                self._readers[column] = cht.reader(declared, ch_type, self.server_zone)
                self._literals[column] = cht.literal(declared, ch_type)
                self._key_types[column] = cht.unwrap(ch_type)
        return {c: cht.family_type(t) for c, t in types.items()}

    def primary_key(self, table: str) -> list[str]:
        """The sorting key when it is one column (servers before 19.x do not say: none)."""
        db, _, name = table.rpartition(".")
        try:
            rows = self.run(
                "SELECT primary_key FROM system.tables WHERE database = "
                f"{cht.quote_string(db or getattr(self.client, 'database', 'default'))}"
                f" AND name = {cht.quote_string(name)}"
            )
        except ClickHouseError:
            return []
        key = str(rows[0][0]).strip() if rows else ""
        return [key] if key and "," not in key and "(" not in key else []

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``sql`` (a batch's query ends in ``"column" IN ({keys})``, ``params[0]`` the keys):
        its rows, each value read as its declared type."""
        if not params:
            return self._typed(self._answer(sql))
        m = _IN_KEYS.search(sql)
        if m is None:
            raise ValueError(f"no key list in {sql!r}")
        column = m.group(1)[1:-1].replace('""', '"')
        lit = self._literals.get(column, cht.literal("", ""))
        literals = list(dict.fromkeys(t for v in params[0] if (t := lit(v)) is not None))
        # The keys as one array, cast to the column's type, unnested: ClickHouse parses an
        # array literal as one value, where ``IN (1, 2, ...)`` costs it an expression per key
        # (10,000 keys: ~0.1 s instead of 0.3-1 s, server 18.16 and chdb alike).
        head = sql[: m.start()] + m.group(1) + " IN (SELECT arrayJoin(CAST(["
        tail = f"] AS Array({self._key_types.get(column, 'String')}))))"
        out: list[tuple[Any, ...]] = []
        for part in _parts(literals):
            out.extend(self._typed(self._answer(head + ", ".join(part) + tail)))
        return out

    def quote(self, table: str) -> str:
        if self.option == "file":
            path = cht.quote_string(str(Path(table).resolve()))
            fmt = f", {cht.quote_string(self.file_format)}" if self.file_format else ""
            return f"file({path}{fmt})"
        return quote_table(table)

    # -- answers --------------------------------------------------------------------------------
    def _answer(self, sql: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.client.run(sql), parse_float=Decimal)
        return doc

    def run(self, sql: str) -> list[list[Any]]:
        """The rows of ``sql`` as the JSON gave them (no column reading)."""
        rows: list[list[Any]] = self._answer(sql)["data"]
        return rows

    def _typed(self, doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        readers = [self._readers.get(m["name"], _identity) for m in doc["meta"]]
        return [tuple(map(operator.call, readers, row)) for row in doc["data"]]


def _parts(literals: list[str]) -> list[list[str]]:
    """The key literals in runs of at most MAX_KEYS_TEXT characters (whole keys, one at least):
    usually one run, a single query per batch."""
    parts: list[list[str]] = [[]]
    size = 0
    for lit in literals:
        if parts[-1] and size + len(lit) > MAX_KEYS_TEXT:
            parts.append([])
            size = 0
        parts[-1].append(lit)
        size += len(lit) + 2
    return parts if parts[0] else []


class ClickHouseKind:
    name = "clickhouse"
    #: For ``CREATE CATALOG ... WITH (connector='clickhouse', url=...)`` (servers only).
    target = "url"
    extra = ("password_env", "ca_file", "verify")

    def database(self, config: cfg.SourceConfig, secrets: Mapping[str, str]) -> ClickHouse:
        return ClickHouse(config, "url", secrets=secrets)

    def _parse(self, spec: TableSpec) -> tuple[cfg.SourceConfig, str, str | None]:
        options = spec.option_map
        given = [t for t in TARGETS if options.get(t)]
        if len(given) != 1:
            shown = ", ".join(given) if given else "none"
            raise ConfigError(
                E_TARGET.format(table=spec.name, given=shown), table=spec.name, option="url"
            )
        target = given[0]
        extra: tuple[str, ...] = self.extra if target == "url" else ()
        if target == "file":
            if options.get("table"):
                raise ConfigError(
                    E_FILE_TABLE.format(table=spec.name), table=spec.name, option="table"
                )
            # The file is the remote table (EXPLAIN shows it as table=...).
            spec = dataclasses.replace(spec, options=(*spec.options, ("table", options["file"])))
            extra = ("format",)
        config = cfg.parse(spec, target, extra)
        return config, target, options.get("format")

    def check(self, spec: TableSpec) -> None:
        self._parse(spec)

    def catalog_table(
        self, name: str, catalog: str, options: Mapping[str, str], secrets: Mapping[str, str]
    ) -> TableSpec:
        from sources.catalog import catalog_table

        return catalog_table(name, catalog, options, secrets)

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        config, target, fmt = self._parse(spec)
        table: ExternalTable = create(config, ClickHouse(config, target, fmt, env.secrets))
        return table


KIND = ClickHouseKind()
