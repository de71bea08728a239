"""PostgreSQL tables: ``CREATE TABLE t (...) WITH (connector='postgres', dsn='postgresql://...',
table='schema.table', ...)``. psycopg 3 with its connection pool, used from worker threads.

The password comes from the DSN, or from the environment variable named by ``password_env``
(read here, at the edge, when the pool opens); it is never shown (:func:`sources.config.redact`).
Sessions run with ``TimeZone=UTC`` (timestamps with their zone), ``statement_timeout`` = the
table's ``timeout``, and read only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sources import config as cfg
from sources.modes import create
from sources.table import ExternalTable, quote_table
from tables.kinds import TableEnv
from tables.protocol import Table
from tables.spec import TableSpec

_PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
"""
_COLUMNS = """
SELECT column_name, data_type, numeric_precision, numeric_scale
FROM information_schema.columns WHERE table_schema = %s AND table_name = %s
ORDER BY ordinal_position
"""


def _where(dsn: str) -> str:
    """``host:port/db`` of a DSN (URL or key=value), without user or password."""
    if "://" in dsn:
        u = urlsplit(dsn)
        return f"{u.hostname or 'localhost'}:{u.port or 5432}{u.path or ''}"
    parts = dict(p.split("=", 1) for p in dsn.split() if "=" in p)
    host = parts.get("host", "localhost")
    return f"{host}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"


def _quoted(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(values: list[Any]) -> Any:
    """A list of keys as one PostgreSQL array literal (``{1,2,3}``, strings quoted), sent as an
    untyped parameter: the server reads it as an array of the compared column's type. psycopg's
    list adaptation formats element by element in Python, a regular expression each — most of
    the client's time in a 1,000-key fetch; a join of ``str`` is C. Lists of other types are
    left to psycopg."""
    types = set(map(type, values))
    if types == {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if types == {str}:
        return "{" + ",".join(map(_quoted, values)) + "}"
    return values


class Postgres:
    any_clause = "{column} = ANY(%s)"

    def __init__(self, config: cfg.SourceConfig, secrets: Mapping[str, str]) -> None:
        self.config = config
        self.secrets = secrets  # what password_env may name (TableEnv.secrets)
        self.label = _where(config.target)
        self._pool: Any = None

    def open(self) -> None:
        from psycopg_pool import ConnectionPool

        c = self.config
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, int(c.timeout)),
            "options": f"-c statement_timeout={int(c.timeout * 1000)} -c TimeZone=UTC"
            " -c default_transaction_read_only=on",
        }
        if c.password_env:
            kwargs["password"] = cfg.secret(self.secrets, c.password_env, "password_env", c.table)
        self._pool = ConnectionPool(
            c.target,
            min_size=1,
            max_size=c.pool_size,
            kwargs={"autocommit": True, **kwargs},
            timeout=c.timeout,
            open=False,
            name=f"tablestream-{c.table}",
        )
        self._pool.open(wait=True, timeout=c.timeout)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        rows = self.query(_COLUMNS, [schema or "public", name])
        if not rows:
            return None
        out = {}
        for column, data_type, precision, scale in rows:
            t = str(data_type)
            if t == "numeric" and precision is not None:
                t = f"numeric({precision},{scale or 0})"
            out[str(column)] = t
        return out

    def primary_key(self, table: str) -> list[str]:
        return [str(r[0]) for r in self.query(_PRIMARY_KEY, [self.quote(table)])]

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._pool is None:
            raise RuntimeError("not connected")
        with self._pool.connection(timeout=self.config.timeout) as conn:
            # Prepared on each connection at once (not after psycopg's default 5 runs: a pool
            # spreads the runs), the key array sent and the rows returned in binary (no text
            # to format and parse on either side): -30 to -40 % per key (bench/federation.py).
            args = [array_literal(p) if type(p) is list else p for p in params]
            rows: list[tuple[Any, ...]] = conn.execute(
                sql, args, prepare=True, binary=True
            ).fetchall()
            return rows

    @staticmethod
    def quote(table: str) -> str:
        return quote_table(table)


class PostgresKind:
    name = "postgres"
    target = "dsn"
    extra = ("password_env",)

    def database(self, config: cfg.SourceConfig, secrets: Mapping[str, str]) -> Postgres:
        return Postgres(config, secrets)

    def check(self, spec: TableSpec) -> None:
        cfg.parse(spec, "dsn", ("password_env",))

    def catalog_table(
        self, name: str, catalog: str, options: Mapping[str, str], secrets: Mapping[str, str]
    ) -> TableSpec:
        from sources.catalog import catalog_table

        return catalog_table(name, catalog, options, secrets)

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        config = cfg.parse(spec, "dsn", ("password_env",))
        table: ExternalTable = create(config, Postgres(config, env.secrets))
        return table


KIND = PostgresKind()
