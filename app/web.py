"""JSON views on the worker's web server. These URLs are a public contract (see README).

- ``GET /tables/``                      every table with its stats
- ``GET /tables/{name}/?limit=&after=`` one table's stats and a page of rows in key order
- ``GET /tables/{name}/{key}``          one key's value (404 when absent)
- ``GET /tables/{name}/{key}/history``  a versioned table's versions of one key, oldest first;
  ``?as_of=MS``: the key's value as of that event time
- ``GET /ready``                        200 once every table caught up with its topic and while
  the broker answers, else 503 (``waiting_for`` names the tables, and ``broker``)
- ``GET /queries/``                     every continuous query with its counters
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View

from app.health import broker_answers
from core import codec
from tables.protocol import VersionedTable
from tables.registry import TableRegistry
from tables.versions import E_NOT_VERSIONED, HistoryExpiredError

if TYPE_CHECKING:
    from agents.service import PipelineService

DEFAULT_PAGE = 100
MAX_PAGE = 10_000


def _json(view: View, body: Any, status: int = 200) -> Response:
    # codec.dumps writes DECIMAL values exactly; faust's encoder would go through float.
    return view.bytes(codec.dumps(body), content_type="application/json", status=status)


def _limit(request: Request) -> int:
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
    except ValueError:
        return DEFAULT_PAGE
    return max(1, min(limit, MAX_PAGE))


def key_history(table: VersionedTable, key: str, as_of: str | None) -> tuple[int, Any]:
    """(status, body) of the history view: 400 for a table without history or a bad ``as_of``."""
    if not table.versioned:
        return 400, {"error": E_NOT_VERSIONED.format(table=table.name)}
    if as_of is not None:
        if not as_of.lstrip("-").isdigit():
            return 400, {"error": f"as_of={as_of!r} is not epoch milliseconds"}
        try:
            value = table.get_as_of(key, int(as_of))
        except HistoryExpiredError as exc:
            return 410, {"error": str(exc)}
        return 200, {"key": key, "as_of": int(as_of), "value": value}
    versions = [v.as_dict() for v in table.history(key)]
    return 200, {"key": key, "stream_time": table.stream_time, "versions": versions}


def register_views(app: faust.App, registry: TableRegistry) -> None:
    """Add the table views to ``app``'s web server."""

    def unknown(view: View, name: str) -> Response:
        return _json(
            view, {"error": f"no table named {name!r}", "tables": sorted(registry.tables)}, 404
        )

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            waiting = sorted(t.name for t in registry if not t.is_ready)
            if not await broker_answers(registry.bootstrap_servers):
                waiting.append("broker")
            return _json(
                self, {"ready": not waiting, "waiting_for": waiting}, 503 if waiting else 200
            )

    @app.page("/tables/")
    class TableList(View):
        async def get(self, request: Request) -> Response:
            return _json(self, {"tables": [t.stats().as_dict() for t in registry]})

    @app.page("/tables/{name}/")
    class TableRows(View):
        async def get(self, request: Request, name: str) -> Response:
            table = registry.tables.get(name)
            if table is None:
                return unknown(self, name)
            limit = _limit(request)
            page = table.page(limit, request.query.get("after"))
            body = {
                "table": table.stats().as_dict(),
                "rows": [{"key": k, "value": v} for k, v in page],
                "next": page[-1][0] if len(page) == limit else None,
            }
            return _json(self, body)

    @app.page("/tables/{name}/{key}")
    class TableKey(View):
        async def get(self, request: Request, name: str, key: str) -> Response:
            table = registry.tables.get(name)
            if table is None:
                return unknown(self, name)
            value = table.get(key)
            if value is None:
                return _json(self, {"error": f"no key {key!r} in table {name!r}"}, 404)
            return _json(self, {"key": key, "value": value})

    @app.page("/tables/{name}/{key}/history")
    class TableKeyHistory(View):
        async def get(self, request: Request, name: str, key: str) -> Response:
            table = registry.tables.get(name)
            if table is None:
                return unknown(self, name)
            status, body = key_history(table, key, request.query.get("as_of"))
            return _json(self, body, status)


def register_query_views(app: faust.App, pipelines: PipelineService | None) -> None:
    """``GET /queries/``: per query records in/out, dead letters, lag, batch latency."""

    @app.page("/queries/")
    class QueryList(View):
        async def get(self, request: Request) -> Response:
            agents = list(pipelines) if pipelines is not None else []
            return _json(self, {"queries": [a.stats.as_dict() for a in agents]})
