"""The offline runner: ``python -m sql run FILE.sql [--query NAME] --table NAME=FILE.jsonl[:KEY]
... --stream NAME[=FILE.jsonl] ... [--events FILE.jsonl] [--explain]``.

``FILE.sql`` holds declarations and one query, or a whole pipeline file (several ``CREATE ... AS
SELECT`` queries): every query runs (``--query NAME``: that one), each over its own fresh copy
of the tables, in file order; with more than one, every output row carries ``"_query": NAME``
first, and a query reading another query's output stream gets that query's rows as its input.

Tables are loaded into :class:`~tables.memory.MemoryTable` (versioned when declared ``WITH
(versions=..., history_retention=...)``); a table file line is a row, or a timed change
``{"key": K, "value": {...} | null, "_timestamp": MS}`` (null deletes). Stream records (the
``--stream`` file first, then the ``--events`` timeline, which also carries table changes) go
through the compiled query one by one; each emitted row is one JSON object on stdout. Exit
codes: 0 ok, 1 some record failed (each reported on stderr, processing continues), 2 the query or
the inputs are invalid. Windowed queries close their open windows at end of input (EMIT FINAL rows
last, in close order); a late record is a failed record; a withdrawn session row carries
``"_retract": true``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from sqlglot import exp

from core.codec import dumps
from core.errors import ConfigError
from sql.catalog import Catalog, infer_columns, qualified
from sql.declarations import apply_declarations
from sql.dialect import Declaration
from sql.errors import SqlCompileError, SqlError, SqlRuntimeError
from sql.operators.aggregate import Retraction
from sql.parse import Script
from sql.query import CompiledQuery
from sql.runner_files import (
    E_BAD_LINE,
    E_NOT_OBJECT,
    RESERVED,
    InputError,
    jsonl,
    load_line,
    memory_table,
    source_of,
    split_queries,
    split_spec,
    typed,
)
from tables import ConnectedTable, MemoryTable, Table
from tables.kinds import TableEnv, catalog_table, table_kind
from tables.spec import TableSpec

E_UNKNOWN_EVENT_TABLE = "{path}:{line}: event for unknown table {name!r}"
E_BAD_EVENT = '{path}:{line}: an event needs "table" or "stream"'
E_RECORD_FAILED = "record {n}: {error}"
#: Member added to a Retraction row on output.
RETRACT_MARK = "_retract"
#: First member of every output row when the file's queries run together.
QUERY_MARK = "_query"
E_NO_SUCH_QUERY = "no query named {name!r}; the file's queries: {names}"
E_NO_STREAM = "{query} reads no stream by name; give it with --stream NAME=FILE.jsonl"

#: Moved to sql.runner_files; still importable from here.
__all__ = ["QUERY_MARK", "InputError", "Runner", "main", "source_of", "split_queries"]


class Runner:
    """Runs the queries of one SQL file over the input files (see the module's docstring)."""

    def __init__(
        self,
        args: argparse.Namespace,
        out: IO[str],
        err: IO[str],
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.args = args
        #: What a table's ``password_env`` / ``token_env`` may name (given by the command line).
        self.secrets = secrets or {}
        self.out, self.err = out, err
        #: Rows each query emitted, by its sink's name: the input of queries that read it.
        self.produced: dict[str, list[dict[str, Any]]] = {}

    def run(self) -> int:
        sql = Path(self.args.query).read_text(encoding="utf-8")
        queries = split_queries(sql)
        if self.args.pick:
            wanted = [(n, s) for n, s in queries if n.lower() == self.args.pick.lower()]
            if not wanted:
                names = ", ".join(n for n, _ in queries)
                raise InputError(E_NO_SUCH_QUERY.format(name=self.args.pick, names=names))
            queries = wanted
        streams = [split_spec(s) for s in self.args.stream]
        tag = len(queries) > 1
        status = 0
        for name, script in queries:
            stream = streams[0][0] if len(queries) == 1 and len(streams) == 1 else None
            run = _QueryRun(self, script, name if tag else None, stream or source_of(script))
            status = max(status, run.run())
        return status


class _QueryRun:
    """One query over fresh copies of the tables."""

    def __init__(self, runner: Runner, script: Script, tag: str | None, stream: str | None) -> None:
        self.runner = runner
        self.args = runner.args
        self.secrets = runner.secrets
        self.out, self.err = runner.out, runner.err
        self.script = script
        self.tag = tag
        if stream is None:
            raise InputError(E_NO_STREAM.format(query=tag or "the query"))
        self.stream_name = stream
        self.tables: dict[str, MemoryTable] = {}
        self.external: dict[str, Table] = {}
        self.failed = 0
        self.records = 0
        self.emitted: list[dict[str, Any]] = []

    def run(self) -> int:
        try:
            return self._run()
        finally:
            for table in self.external.values():
                if isinstance(table, ConnectedTable):
                    table.close_sync()

    def _run(self) -> int:
        script = self.script
        self.decls = script.declarations
        catalog = Catalog()
        for spec in self.args.table:
            name, path, key = split_spec(spec)
            decl = self.decls.get(name.lower())
            key = key or (decl.primary_key if decl else None)
            table = self.tables[name.lower()] = memory_table(name, key, decl)
            for n, value in jsonl(path) if path else iter(()):
                load_line(table, value, n, path or "", decl)
            catalog.add_table(name, table)
        for name, decl in self.decls.items():
            if decl.kind == "table" and _connector(decl) != "kafka" and name not in self.tables:
                # An external table (WITH (connector=...)): built through the table kinds,
                # connected now; no --table file for it.
                external = self.external[name] = _external_table(decl, self.secrets)
                catalog.add_table(decl.name, external)
                continue
            if decl.kind == "table" and name not in self.tables:
                self.tables[name] = memory_table(decl.name, decl.primary_key, decl)
                catalog.add_table(decl.name, self.tables[name])
        self._catalog_tables(script, catalog)
        self.stream = self.stream_name
        path = next(
            (p for n, p, _ in map(split_spec, self.args.stream) if _same(n, self.stream)), None
        )
        records = list(jsonl(path)) if path else []
        if not path and self.stream.lower() in self.runner.produced:
            records = list(enumerate(self.runner.produced[self.stream.lower()], 1))
        for n, value in records:  # checked before any row is emitted
            if not isinstance(value, dict):
                raise InputError(E_BAD_LINE.format(path=path, line=n, reason=E_NOT_OBJECT))
        sdecl = self.decls.get(self.stream.lower())
        if sdecl is None or sdecl.kind != "stream":
            sample = [r for _, r in records] + [e.get("value") for _, e in self._events(peek=True)]
            cols = infer_columns(
                iter(
                    {k: v for k, v in r.items() if k not in RESERVED}
                    for r in sample
                    if isinstance(r, dict)
                )
            )
            catalog.add_stream(self.stream, cols if cols else None)
        apply_declarations(script, catalog)
        query = CompiledQuery(script, _context(script.sql, catalog), _sink_of(script))
        if self.args.explain:
            if self.tag:
                print(f"-- {self.tag}", file=self.out)
            print(query.explain(), file=self.out)
            if self.args.code:
                # As a worker generates it: a declared stream's records arrive typed.
                typed = sdecl is not None and sdecl.kind == "stream"
                ctx = _context(script.sql, catalog, typed_streams=typed)
                coded = CompiledQuery(script, ctx, _sink_of(script))
                from sql.codegen import explain_code, explain_line

                print(explain_line(coded), file=self.out)
                print(explain_code(coded), end="", file=self.out)
                coded.close()
            return 0
        if query.prefetcher is not None:  # external tables: every record's keys, fetched at once
            asyncio.run(query.prefetcher.fetch((v, None, None) for _, v in records))
        for _, value in records:
            self._record(query, value)
        for n, event in self._events():
            self._event(query, event, n)
        self._emit(query.finish())
        if script.sink is not None:
            self.runner.produced[script.sink.name.lower()] = self.emitted
        return 1 if self.failed else 0

    def _catalog_tables(self, script: Script, catalog: Catalog) -> None:
        """Tables the query names ``c.schema.table`` where ``CREATE CATALOG c WITH
        (connector=...)`` is declared: columns and key read from the database (as the worker
        does when it loads the pipeline), built through the table kinds, connected now."""
        catalogs = {n: d for n, d in self.decls.items() if d.kind == "catalog"}
        if not catalogs:
            return
        for node in script.require_query().find_all(exp.Table):
            cat = node.args.get("catalog")
            decl = catalogs.get(cat.name.lower()) if cat is not None else None
            name = qualified(node).lower()
            if decl is None or name in self.external:
                continue
            try:
                spec = catalog_table(name, decl.name, decl.options, self.secrets)
            except ConfigError as exc:
                raise InputError(str(exc), **exc.fields) from exc
            table = self.external[name] = _open(spec, self.secrets)
            catalog.add_table(name, table)

    def _events(self, peek: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
        if not self.args.events:
            return
        for n, event in jsonl(self.args.events):
            if not isinstance(event, dict) or not ("table" in event or "stream" in event):
                raise InputError(E_BAD_EVENT.format(path=self.args.events, line=n))
            if peek and event.get("stream", "").lower() != self.stream.lower():
                continue
            yield n, event

    def _event(self, query: CompiledQuery, event: dict[str, Any], n: int) -> None:
        value = event.get("value")
        if value is not None and not isinstance(value, dict):
            raise InputError(E_BAD_LINE.format(path=self.args.events, line=n, reason=E_NOT_OBJECT))
        if "stream" in event:
            if str(event["stream"]).lower() == self.stream.lower():
                self._record(query, event.get("value") or {}, event)
            return
        name = str(event["table"])
        table = self.tables.get(name.lower())
        if table is None:
            raise InputError(E_UNKNOWN_EVENT_TABLE.format(path=self.args.events, line=n, name=name))
        key = event.get("key")
        if key is None and isinstance(value, dict):
            key = value.get("_key", value.get(table.key_field) if table.key_field else None)
        decl = self.decls.get(name.lower())
        table.put(
            key,
            None if value is None else typed(value, decl),
            int(event.get("_timestamp", 0) or 0),
        )

    def _record(
        self, query: CompiledQuery, value: Any, event: dict[str, Any] | None = None
    ) -> None:
        self.records += 1
        if not isinstance(value, dict):
            value = {}
        meta = event or {}
        key = value.get("_key", meta.get("key"))
        ts = value.get("_timestamp", meta.get("_timestamp", meta.get("timestamp")))
        sdecl = self.decls.get(self.stream.lower())
        try:
            rows = query.process(
                typed(value, sdecl), key=key, timestamp=ts, offset=self.records - 1
            )
        except SqlRuntimeError as err:
            self.failed += 1
            self._emit(err.rows)  # windows its event time closed before it failed
            where = f"query {self.tag}: " if self.tag else ""
            print(where + E_RECORD_FAILED.format(n=self.records, error=err), file=self.err)
            return
        self._emit(rows)

    def _emit(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.emitted.append(dict(row))
            obj = {k: _jsonable(v) for k, v in row.items()}
            if isinstance(row, Retraction):
                obj[RETRACT_MARK] = True
            if self.tag is not None:
                obj = {QUERY_MARK: self.tag, **obj}
            self.out.write(dumps(obj).decode() + "\n")


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _connector(decl: Declaration) -> str:
    return next(
        (str(v).lower() for k, v in decl.options.items() if k.lower() == "connector"), "kafka"
    )


def _external_table(decl: Declaration, secrets: Mapping[str, str]) -> Table:
    """The external table a declaration names, opened (ConfigError → exit status 2)."""
    options = decl.options
    try:
        spec = TableSpec.from_options(
            decl.name, options.get("topic", decl.name), decl.primary_key, options, decl.columns
        )
    except ConfigError as exc:
        raise InputError(str(exc), **exc.fields) from exc
    return _open(spec, secrets)


def _open(spec: TableSpec, secrets: Mapping[str, str]) -> Table:
    """The table of ``spec`` built by its kind and connected (ConfigError → exit status 2)."""
    try:
        table = table_kind(spec.name, spec.kind).create(spec, TableEnv(secrets=secrets))
        if isinstance(table, ConnectedTable):
            table.open_sync()
    except ConfigError as exc:
        raise InputError(str(exc), **exc.fields) from exc
    return table


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    return v


def _context(sql: str, catalog: Catalog, typed_streams: bool = False) -> Any:
    from sql.compile.context import CompileContext

    return CompileContext(sql, catalog, typed_streams=typed_streams)


def _sink_of(script: Any) -> Any:
    from sql.query import sink_of

    return sink_of(script.sink)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sql", description="Run streaming SQL offline.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the queries of FILE.sql over JSON Lines files")
    run.add_argument("query", help="the SQL file: declarations, then one query or several")
    run.add_argument("--query", dest="pick", metavar="NAME", help="run this query only")
    run.add_argument("--table", action="append", default=[], metavar="NAME=FILE.jsonl[:KEYFIELD]")
    run.add_argument("--stream", action="append", default=[], metavar="NAME[=FILE.jsonl]")
    run.add_argument("--events", metavar="FILE.jsonl", help="timeline of table changes and records")
    run.add_argument("--explain", action="store_true", help="print the plan instead of running")
    run.add_argument(
        "--code",
        action="store_true",
        help="with --explain: also the generated function a worker runs (sql.codegen)",
    )
    test = sub.add_parser("test", help="run the test cases under DIR (see sql.testing)")
    test.add_argument("dir", help="a case directory, or a directory of case directories")
    return p


def main(
    argv: Sequence[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    if args.command == "test":
        from sql.testing import run_cases

        return run_cases(Path(args.dir), out)
    try:
        return Runner(args, out, err, secrets).run()
    except SqlCompileError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except (SqlError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
