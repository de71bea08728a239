"""Our ``faust -A app ...`` commands.

- ``faust -A app sql explain FILE.sql``  the plan of every continuous query in a pipeline file
- ``faust -A app tables``                our tables with their stats (from the running worker's
  web view; its definitions only when no worker answers)
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import AppCommand, argument

from agents.pipeline import catalog_for, load_pipeline
from app.settings import Settings
from core.errors import TablestreamError
from sql import compile_query
from tables.memory import MemoryTable
from tables.protocol import Table

E_NOT_REACHABLE = "no worker answers at {url} ({error}); showing the definitions only"
TABLE_HEADER = ("name", "topic", "key", "ready", "rows", "lag", "malformed", "on disk")


def explain_file(path: Path, settings: Settings) -> str:
    """Every query of the file with its plan (tables as defined, empty: plans need no rows)."""
    pipeline = load_pipeline([path], settings.tables)
    tables: dict[str, Table] = {
        name: MemoryTable(spec.name, key_field=spec.key_field, topic=spec.topic)
        for name, spec in pipeline.tables.items()
    }
    parts = []
    for q in pipeline.queries:
        compiled = compile_query(q.sql, catalog_for(tables, pipeline))
        head = f"-- {q.name} ({q.where}): {pipeline.source_topic(q)} -> {q.sink_topic}"
        kind = "stateful: state in RocksDB" if q.stateful else "stateless: consumer group"
        parts.append(f"{head} [{kind}]\n{compiled.explain()}")
        compiled.close()
    return "\n\n".join(parts)


def fetch_tables(settings: Settings, timeout: float = 3.0) -> list[dict[str, Any]]:
    host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "") else settings.web_host
    url = f"http://{host}:{settings.web_port}/tables/"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return list(body["tables"])


def _lag(stats: dict[str, Any]) -> str:
    lags = [p.get("lag") for p in stats.get("partitions", {}).values()]
    known = [x for x in lags if x is not None]
    return str(sum(known)) if known else "-"


def format_tables(settings: Settings, definitions: dict[str, Any]) -> str:
    try:
        live = {t["name"]: t for t in fetch_tables(settings)}
        note = ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        live = {}
        url = f"http://{settings.web_host}:{settings.web_port}/tables/"
        note = E_NOT_REACHABLE.format(url=url, error=exc)
    rows = [TABLE_HEADER]
    for _, spec in sorted(definitions.items()):
        s = live.get(spec.name, {})
        rows.append(
            (
                spec.name,
                spec.topic,
                spec.key_field or "(message key)",
                str(s.get("ready", "-")).lower(),
                str(s.get("size", "-")),
                _lag(s) if s else "-",
                str(s.get("malformed", "-")),
                f"{s['bytes_on_disk'] / 1e6:.1f} MB" if s.get("bytes_on_disk") else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(([note] if note else []) + lines)


def register_commands(app: faust.App, settings: Settings) -> None:
    """Add ``sql`` and ``tables`` to the app's ``faust`` command line."""

    @app.command(
        argument("action", type=click.Choice(["explain"])),
        argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
    )
    async def sql(self: AppCommand, action: str, file: Path) -> None:
        """SQL pipeline files: `sql explain FILE.sql` prints the plan of every query."""
        try:
            self.say(explain_file(file, settings))
        except TablestreamError as exc:
            self.say(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    @app.command()
    async def tables(self: AppCommand) -> None:
        """Our tables (TABLESTREAM_TABLES and pipeline files) with their stats."""
        try:
            specs = (
                load_pipeline(settings.pipeline, settings.tables).tables
                if settings.pipeline
                else {s.name.lower(): s for s in settings.tables}
            )
        except TablestreamError as exc:
            self.say(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self.say(format_tables(settings, specs))
