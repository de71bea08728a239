"""Pipeline files: SQL text → declared tables and streams, the topics they need, the queries.

A pipeline file is a sequence of statements: ``CREATE TABLE|STREAM`` declarations, then one or
more continuous queries (``CREATE STREAM x WITH (topic=...) AS SELECT ... EMIT CHANGES``,
``CREATE TABLE agg AS SELECT ... GROUP BY ... EMIT ...``). A script holds one query, so each
query is read as the whole file with the *other* queries blanked out (:func:`sql.query_scripts`,
as the offline runner reads such a file): its declarations are the file's, and error positions
are positions in the file.

Everything is checked when the worker starts, by compiling every query against empty in-memory
tables: a wrong name or type stops the worker with ``file:line:column``, before any topic is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlglot import exp

from agents.codec import make_row_check

# The data model moved to agents.pipeline_model; its types are still imported from here.
from agents.pipeline_model import Pipeline as Pipeline
from agents.pipeline_model import QueryDef as QueryDef
from agents.pipeline_model import StreamDef as StreamDef
from core.errors import ConfigError, TablestreamError
from sources.catalog import catalog_table
from sql import (
    EVERY_PARTITION,
    REPARTITIONED,
    Catalog,
    CompiledQuery,
    Declaration,
    Script,
    SqlCompileError,
    compile_query,
    from_of,
    position,
    qualified,
    query_scripts,
    split_statement,
    statements,
)
from tables.kinds import TableEnv, table_kind
from tables.memory import MemoryTable
from tables.protocol import Table
from tables.spec import TableSpec

E_IN_FILE = "{path}:{line}:{column}: {message}"
E_UNREADABLE = "pipeline file {path} cannot be read: {error}"
E_NO_SINK = "a pipeline query must be CREATE STREAM|TABLE name [WITH (topic=...)] AS SELECT ..."
E_TWICE = "{kind} {name!r} is defined twice (also in {other})"
E_BAD_PARTITIONS = "stream {name!r}: partitions={value!r} is not a whole number >= 1"


def _fail(path: Path, sql: str, offset: int, message: str, **fields: object) -> ConfigError:
    line, column = position(sql, offset)
    return ConfigError(
        E_IN_FILE.format(path=path, line=line, column=column, message=message),
        path=str(path),
        line=line,
        column=column,
        **fields,
    )


def compile_error(path: Path, err: SqlCompileError) -> ConfigError:
    """``err`` as a :class:`ConfigError` naming the file, line and column."""
    text = E_IN_FILE.format(path=path, line=err.line, column=err.column, message=err.reason)
    if err.suggestion:
        text += f" (did you mean {err.suggestion!r}?)"
    if err.excerpt:
        text += "\n" + err.excerpt
    return ConfigError(text, path=str(path), line=err.line, column=err.column)


def _int_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(E_BAD_PARTITIONS.format(name=name, value=value), stream=name)
    return n


def _table_spec(decl: Declaration) -> TableSpec:
    options = dict(decl.options)
    topic = options.get("topic", decl.name)
    key_field = decl.primary_key or options.get("key") or options.get("key_field")
    spec = TableSpec.from_options(decl.name, topic, key_field, options, decl.columns)
    has_decimal = any(t.name == "DECIMAL" for t in (decl.columns or {}).values())
    if has_decimal and "exact_decimals" not in options:
        spec = dataclasses.replace(spec, exact_decimals=True)
    if decl.columns:
        # Rows are checked against the declared types as they are loaded: one that does not fit
        # is a dead letter, never a row every query reading it would fail on.
        spec = dataclasses.replace(spec, check=make_row_check(decl.columns))
    return spec


def _source_and_reads(script: Script) -> tuple[str, tuple[str, ...]]:
    select = script.require_query()
    from_ = from_of(select)
    source = from_.this.name.lower() if from_ is not None else ""
    ctes = {c.alias_or_name.lower() for c in select.find_all(exp.CTE)}
    reads = {qualified(t).lower() for t in select.find_all(exp.Table)} - ctes - {source}
    return source, tuple(sorted(reads))


class _Loader:
    def __init__(self, known_tables: Sequence[TableSpec], secrets: Mapping[str, str]) -> None:
        self.pipeline = Pipeline()
        self.secrets = secrets
        for spec in known_tables:
            self.pipeline.tables[spec.name.lower()] = spec
            self.pipeline.origins[spec.name.lower()] = "TABLESTREAM_TABLES"
        self.texts: list[tuple[Path, str, list[tuple[int, int, Script, int]]]] = []
        #: ``CREATE CATALOG`` name → its options; its tables are found in the queries.
        self.catalogs: dict[str, dict[str, str]] = {}

    def _claim(self, name: str, kind: str, where: str, path: Path, sql: str, offset: int) -> None:
        other = self.pipeline.origins.get(name.lower())
        if other is not None:
            raise _fail(path, sql, offset, E_TWICE.format(kind=kind, name=name, other=other))
        self.pipeline.origins[name.lower()] = where

    def read(self, path: Path) -> None:
        try:
            sql = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(E_UNREADABLE.format(path=path, error=exc), path=str(path)) from exc
        try:
            stmts = statements(sql)
        except SqlCompileError as exc:  # an unterminated string or comment, a control character
            raise compile_error(path, exc) from exc
        query_spans: list[tuple[int, int]] = []
        try:
            for tokens in stmts:
                env = split_statement(sql, tokens)
                decl = env.declaration
                where = f"{path}:{position(sql, tokens[0].start)[0]}"
                if env.select_span is not None:
                    query_spans.append((tokens[0].start, tokens[-1].end + 1))
                    continue
                if decl is None:
                    continue
                try:
                    same = self._declare(decl)
                except ConfigError as exc:
                    raise _fail(path, sql, decl.offset, exc.message) from exc
                if not same:
                    self._claim(decl.name, decl.kind, where, path, sql, decl.offset)
            scripts = query_scripts(sql, query_spans)
            pairs = zip(query_spans, scripts, strict=True)
            queries = [(start, end, q, i) for i, ((start, end), q) in enumerate(pairs)]
        except SqlCompileError as exc:
            raise compile_error(path, exc) from exc
        self.texts.append((path, sql, queries))

    def _declare(self, decl: Declaration) -> bool:
        """Record a declaration; True when it repeats one already known (same kind and topic)."""
        name = decl.name.lower()
        if decl.kind == "catalog":  # CREATE CATALOG pg WITH (connector=..., ...)
            table_kind(decl.name, decl.options.get("connector", ""))
            old_options = self.catalogs.get(name)
            self.catalogs[name] = dict(decl.options)
            return old_options == self.catalogs[name]
        if decl.kind == "table":
            spec = _table_spec(decl)
            old = self.pipeline.tables.get(name)
            self.pipeline.tables[name] = spec
            return old is not None and old.topic == spec.topic and name not in self.pipeline.streams
        topic = decl.options.get("topic", decl.name)
        parts = _int_option(decl.options.get("partitions"), decl.name)
        prev = self.pipeline.streams.get(name)
        self.pipeline.streams[name] = StreamDef(decl.name, topic, parts)
        return prev is not None and prev.topic == topic

    def add_queries(self) -> None:
        for path, sql, queries in self.texts:
            for start, _end, script, _ in queries:
                sink = script.sink
                if sink is None:
                    raise _fail(path, sql, start, E_NO_SINK)
                line = position(sql, start)[0]
                self._claim(sink.name, sink.kind, f"{path}:{line}", path, sql, sink.offset)
                topic = sink.options.get("topic", sink.name)
                try:
                    parts = _int_option(sink.options.get("partitions"), sink.name)
                except ConfigError as exc:
                    raise _fail(path, sql, sink.offset, exc.message) from exc
                if sink.kind == "table":
                    self.pipeline.tables[sink.name.lower()] = TableSpec(
                        sink.name, topic, None, partitions=parts, exact_decimals=True
                    )
                else:
                    self.pipeline.streams[sink.name.lower()] = StreamDef(
                        sink.name, topic, parts, origin=sink.name
                    )
                try:
                    self._catalog_tables(script)
                except ConfigError as exc:
                    raise _fail(path, sql, start, exc.message) from exc
                source, reads = _source_and_reads(script)
                self.pipeline.queries.append(
                    QueryDef(
                        sink.name,
                        path,
                        script.sql,
                        sink.kind,
                        topic,
                        source,
                        reads,
                        line=line,
                    )
                )

    def _catalog_tables(self, script: Script) -> None:
        """Tables of a catalog a query names (``pg.public.customers``): external tables whose
        columns and key are read from the database now."""
        for node in script.require_query().find_all(exp.Table):
            catalog = node.args.get("catalog")
            if catalog is None or catalog.name.lower() not in self.catalogs:
                continue
            name = qualified(node).lower()
            if name not in self.pipeline.tables:
                options = self.catalogs[catalog.name.lower()]
                spec = catalog_table(name, catalog.name, options, self.secrets)
                self.pipeline.tables[name] = spec

    def check(self) -> None:
        """Compile every query against empty in-memory tables: names, types, shapes."""
        # External tables plan differently (no scans, probes pushed down): their own kind,
        # built but not started (no connection is opened here).
        tables: dict[str, Table] = {
            name: MemoryTable.from_spec(spec)
            if spec.kind == "kafka"
            else table_kind(spec.name, spec.kind).create(spec, TableEnv())
            for name, spec in self.pipeline.tables.items()
        }
        checked = []
        for q in self.pipeline.queries:
            try:
                compiled = compile_query(q.sql, catalog_for(tables, self.pipeline))
            except SqlCompileError as exc:
                raise compile_error(q.path, exc) from exc
            except TablestreamError as exc:
                raise ConfigError(f"{q.where}: {exc}", path=str(q.path), line=q.line) from exc
            stateful = is_stateful(compiled)
            parts = compiled.partitioning() if stateful else None
            if parts is not None:
                q = dataclasses.replace(
                    q,
                    stateful=True,
                    repartition=parts.mode == REPARTITIONED,
                    not_repartitioned=parts.reason if parts.mode == EVERY_PARTITION else "",
                    copartitioned=parts.copartitioned,
                    key_column=parts.key_column,
                    partitioning=parts.explain(),
                )
            checked.append(q)
            keys = key_columns(compiled)
            if q.sink_kind == "table" and len(keys) == 1:
                # Rows of the result table are keyed by their group key: lookups by it are
                # key lookups for the queries that read the table.
                spec = self.pipeline.tables[q.name.lower()]
                self.pipeline.tables[q.name.lower()] = dataclasses.replace(spec, key_field=keys[0])
            compiled.close()
        self.pipeline.queries = checked


def is_stateful(query: CompiledQuery) -> bool:
    """Whether the query keeps state across records (GROUP BY, windows)."""
    plan = getattr(query, "_plan", None)
    return (
        bool(getattr(query, "is_windowed", False)) or getattr(plan, "aggregate", None) is not None
    )


def key_columns(query: CompiledQuery) -> tuple[str, ...]:
    """The output columns keying the sink (group key of an aggregate); empty: the source key."""
    return tuple(query.key_columns)


def catalog_for(tables: Mapping[str, Table], pipeline: Pipeline) -> Catalog:
    """A catalog holding ``tables`` and, as open streams, every query output not declared."""
    catalog = Catalog()
    for name, table in tables.items():
        catalog.add_table(name, table)
    for s in pipeline.streams.values():
        if s.origin:
            catalog.add_stream(s.name)
    return catalog


def load_pipeline(
    paths: Sequence[Path],
    known_tables: Sequence[TableSpec] = (),
    secrets: Mapping[str, str] | None = None,
) -> Pipeline:
    """Read, check and wire the pipeline files; raises :class:`ConfigError` with file:line:col.
    ``secrets``: what a ``CREATE CATALOG``'s ``password_env`` may name (it connects now)."""
    loader = _Loader(known_tables, secrets or {})
    for path in paths:
        loader.read(path)
    loader.add_queries()
    loader.check()
    return loader.pipeline
