"""Our ``faust -A app ...`` commands.

- ``faust -A app sql explain [--code] FILE.sql``  the plan of every continuous query in a
  pipeline file, and whether it runs as generated code; ``--code`` prints that code
- ``faust -A app tables [--web URL] [--json]``  the running worker's tables with their stats,
  read from its web server (``--web``, else ``TABLESTREAM_WEB_HOST``/``TABLESTREAM_WEB_PORT``,
  default http://127.0.0.1:6066). When no worker answers: exit status 1, and the tables as
  defined (``TABLESTREAM_PIPELINE``, ``TABLESTREAM_TABLES``) when there are any.

Neither reads the worker's pipeline file unless it needs it: a broken one does not stop
``sql explain`` of another file.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import AppCommand, argument, option

from agents.codec import make_decoder
from agents.pipeline import catalog_for, load_pipeline
from agents.structdecode import struct_decoding
from app.settings import Settings, env_name
from core.errors import TablestreamError
from sql import compile_query, explain_code, explain_line, parse_script
from tables import MemoryTable, Table
from tables.kinds import TableEnv, table_kind
from tables.spec import TableSpec

E_NOT_REACHABLE = "no worker answers at {url} ({error})"
N_DEFINITIONS = "the tables as defined here (TABLESTREAM_PIPELINE, TABLESTREAM_TABLES):"
LIVE_HEADER = ("name", "topic", "ready", "rows", "lag", "malformed", "on disk")
DEFINED_HEADER = ("name", "topic", "key")
#: Exit status of ``tables`` when no worker answers.
EXIT_NO_WORKER = 1


def explain_file(path: Path, settings: Settings, code: bool = False) -> str:
    """Every query of the file with its plan (tables as defined, empty: plans need no rows),
    the engine that runs it (generated code or closures, :mod:`sql.codegen`) and, with
    ``code``, the generated function."""
    pipeline = load_pipeline([path], settings.tables, settings.secrets)
    # External tables through their kind (not connected): EXPLAIN names their source.
    tables: dict[str, Table] = {
        name: MemoryTable(spec.name, key_field=spec.key_field, topic=spec.topic)
        if spec.kind == "kafka"
        else table_kind(spec.name, spec.kind).create(spec, TableEnv(secrets=settings.secrets))
        for name, spec in pipeline.tables.items()
    }
    parts = []
    for q in pipeline.queries:
        # Compiled as the worker compiles it: a declared stream arrives typed from its decoder.
        typed = parse_script(q.sql).declarations.get(q.source) is not None
        compiled = compile_query(q.sql, catalog_for(tables, pipeline), typed_streams=typed)
        head = f"-- {q.name} ({q.where}): {pipeline.source_topic(q)} -> {q.sink_topic}"
        kind = "stateful: state in RocksDB" if q.stateful else "stateless: consumer group"
        engine = (
            explain_line(compiled)
            if settings.codegen
            else f"Codegen: closures ({env_name('codegen')}=false)"
        )
        text = f"{head} [{kind}]\n{compiled.explain()}\n{engine}"
        if code and settings.codegen:
            decl = parse_script(q.sql).declarations.get(q.source)
            columns = None if decl is None else decl.columns
            struct = struct_decoding(columns, make_decoder(columns))
            text += "\n" + explain_code(compiled, struct).rstrip("\n")
        parts.append(text)
        compiled.close()
    return "\n\n".join(parts)


def fetch_tables(web: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The worker's ``GET /tables/`` list (raises URLError/OSError/ValueError when it cannot)."""
    with urllib.request.urlopen(f"{web.rstrip('/')}/tables/", timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return list(body["tables"])


def _lag(stats: dict[str, Any]) -> str:
    lags = [p.get("lag") for p in stats.get("partitions", {}).values()]
    known = [x for x in lags if x is not None]
    return str(sum(known)) if known else "-"


def _columns(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def format_live(tables: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [LIVE_HEADER]
    for s in sorted(tables, key=lambda t: str(t.get("name"))):
        rows.append(
            (
                str(s.get("name")),
                str(s.get("topic", "-")),
                str(s.get("ready", "-")).lower(),
                str(s.get("size", "-")),
                _lag(s),
                str(s.get("malformed", "-")),
                f"{s['bytes_on_disk'] / 1e6:.1f} MB" if s.get("bytes_on_disk") else "-",
            )
        )
    return _columns(rows)


def format_defined(specs: list[TableSpec]) -> str:
    rows: list[tuple[str, ...]] = [DEFINED_HEADER]
    rows += [(s.name, s.topic, s.key_field or "(message key)") for s in specs]
    return _columns(rows)


def defined_tables(settings: Settings) -> list[TableSpec]:
    specs = (
        load_pipeline(settings.pipeline, settings.tables, settings.secrets).tables.values()
        if settings.pipeline
        else settings.tables
    )
    return sorted(specs, key=lambda s: s.name)


def tables_command(settings: Settings, web: str | None, as_json: bool) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``faust -A app tables``."""
    url = web or settings.web_url
    try:
        live = fetch_tables(url)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        note = E_NOT_REACHABLE.format(url=url, error=getattr(exc, "reason", exc))
        try:
            specs = defined_tables(settings)
        except TablestreamError as err:
            return EXIT_NO_WORKER, "", f"{note}\nerror: {err}"
        if as_json:
            body = {"worker": url, "live": False, "tables": [_spec_dict(s) for s in specs]}
            return EXIT_NO_WORKER, json.dumps(body), note
        if not specs:
            return EXIT_NO_WORKER, "", note
        return EXIT_NO_WORKER, format_defined(specs), f"{note}; {N_DEFINITIONS}"
    if as_json:
        return 0, json.dumps({"worker": url, "live": True, "tables": live}), ""
    return 0, format_live(live), ""


def _spec_dict(spec: TableSpec) -> dict[str, Any]:
    return {"name": spec.name, "topic": spec.topic or spec.kind, "key": spec.key_field}


def register_commands(app: faust.App, settings: Settings) -> None:
    """Add ``sql`` and ``tables`` to the app's ``faust`` command line."""

    @app.command(
        argument("action", type=click.Choice(["explain"])),
        argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        option("--code", is_flag=True, default=False, help="also print the generated code"),
    )
    async def sql(self: AppCommand, action: str, file: Path, code: bool) -> None:
        """SQL pipeline files: `sql explain [--code] FILE.sql` prints the plan of every query."""
        try:
            self.say(explain_file(file, settings, code))
        except TablestreamError as exc:
            self.say(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    @app.command(
        option("--web", default=None, help=f"the worker's web server (default {settings.web_url})"),
        option("--json", "as_json", is_flag=True, default=False, help="JSON instead of columns"),
    )
    async def tables(self: AppCommand, web: str | None, as_json: bool) -> None:
        """The running worker's tables with their stats (from its web server)."""
        status, out, err = tables_command(settings, web, as_json or self.json)
        if err:
            self.say(err, file=sys.stderr)
        if out:
            self.say(out)
        if status:
            raise SystemExit(status)
