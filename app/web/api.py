"""JSON views on the worker's web server. These URLs are a public contract (see README).

- ``GET /tables/``                      every table with its stats, rates and load progress
- ``GET /tables/{name}/?limit=&after=&where=`` one table's stats and a page of rows in key
  order; ``where``: an SQL predicate on the table's columns (a pull query)
- ``GET /tables/{name}/{key}``          one key's value (404 when absent)
- ``GET /tables/{name}/{key}/history``  a versioned table's versions of one key, oldest first;
  ``?as_of=MS|ISO``: the key's value as of that event time
- ``POST /query``  ``{"sql": "SELECT ... FROM <table> WHERE ... LIMIT n"}`` → rows
- ``GET /queries/``                     every continuous query: SQL, plan, stages' counters
- ``GET /dead-letters/?limit=&reason=&query=`` the latest dead letters, newest first
- ``GET /ready``                        200 once the tables caught up and the queries run while the
  broker answers, else 503 (``waiting_for`` names the tables, and ``broker``)
- ``GET /metrics``                      Prometheus text format

Bad parameters answer 400, unknown tables and keys 404, both as ``{"error": ...}``.
"""

from __future__ import annotations

import json
from typing import Any, cast

from aiohttp import web
from faust.web import Request, Response, View

from app.health import readiness
from app.probe import broker_answers
from app.web.context import WebContext
from app.web.deadletters import dead_letters
from app.web.http import MAX_PAGE, HttpError, int_param, json_response, limit_param, time_param
from app.web.model import query_views, table_kind, table_view
from app.web.prom import CONTENT_TYPE, exposition
from app.web.pull import filter_rows, run_pull
from tables import ScanTable, Table, VersionedTable
from tables.versions import E_NOT_VERSIONED, HistoryExpiredError

DEAD_LETTERS_DEFAULT = 50


def key_history(table: VersionedTable, key: str, as_of: str | None) -> tuple[int, Any]:
    """(status, body) of the history view: 400 for a table without history or a bad ``as_of``."""
    if not getattr(table, "versioned", False):
        return 400, {"error": E_NOT_VERSIONED.format(table=table.name)}
    if as_of is not None:
        try:
            when = time_param({"as_of": as_of}, "as_of")
        except HttpError as exc:
            return exc.status, exc.body
        if when is None:
            return 400, {"error": "as_of is empty", "parameter": "as_of"}
        try:
            value = table.get_as_of(key, when)
        except HistoryExpiredError as exc:
            return 410, {"error": str(exc)}
        return 200, {"key": key, "as_of": when, "value": value}
    versions = [v.as_dict() for v in table.history(key)]
    return 200, {"key": key, "stream_time": table.stream_time, "versions": versions}


def page_of(table: Table, limit: int, after: str | None) -> list[tuple[Any, Any]]:
    """Up to ``limit`` rows in key order after ``after``: the table's own ``page`` when it has
    one, else its items sorted by key text (a small table kind without a key-ordered store)."""
    page = getattr(table, "page", None)
    if callable(page):
        rows: list[tuple[Any, Any]] = page(limit, after)
        return rows
    if not isinstance(table, ScanTable):  # an external table: rows by key only
        raise HttpError(
            400,
            f"table {table.name!r} ({table_kind(table)}) cannot list its rows: look up a key",
            table=table.name,
        )
    items = sorted(((str(k), v) for k, v in table.items()), key=lambda kv: kv[0])
    return [kv for kv in items if after is None or kv[0] > after][:limit]


def register_api(ctx: WebContext) -> None:
    app = ctx.app

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            # Tables caught up and queries running (app.health, with /live) ...
            status, body = readiness(ctx.tables(), ctx.agents())
            if not await broker_answers(ctx.bootstrap_servers):
                # ... and the broker there: tables serve on from local state meanwhile, but
                # nothing can be processed.
                waiting = [*body["waiting_for"], "broker"]
                status, body = 503, {**body, "ready": False, "waiting_for": waiting}
            return json_response(self, body, status)

    @app.page("/tables/")
    class TableList(View):
        async def get(self, request: Request) -> Response:
            ctx.sample()
            views = [table_view(ctx.rates, t) for t in ctx.tables()]
            # The stats' fields as before, then the rates and load progress.
            return json_response(self, {"tables": [v.stats | v.as_dict() for v in views]})

    @app.page("/tables/{name}/")
    class TableRows(View):
        async def get(self, request: Request, name: str) -> Response:
            table = ctx.table(name)
            limit = limit_param(request.query)
            after = request.query.get("after") or None
            where = (request.query.get("where") or "").strip()
            if where:
                rows, stopped = await filter_rows(ctx, table, where, limit, after)
            else:
                rows, stopped = page_of(table, limit, after), None
            body = {
                "table": table.stats().as_dict(),
                "rows": [{"key": k, "value": v} for k, v in rows],
                "next": rows[-1][0] if len(rows) == limit else None,
                **({"where": where, "stopped": stopped} if where else {}),
            }
            return json_response(self, body)

    @app.page("/tables/{name}/{key}")
    class TableKey(View):
        async def get(self, request: Request, name: str, key: str) -> Response:
            table = ctx.table(name)
            value = table.get(key)
            if value is None:
                raise HttpError(404, f"no key {key!r} in table {name!r}", key=key, table=name)
            return json_response(self, {"key": key, "value": value})

    @app.page("/tables/{name}/{key}/history")
    class TableKeyHistory(View):
        async def get(self, request: Request, name: str, key: str) -> Response:
            table = ctx.table(name)
            if not isinstance(table, VersionedTable):
                raise HttpError(400, E_NOT_VERSIONED.format(table=name))
            status, body = key_history(table, key, request.query.get("as_of"))
            return json_response(self, body, status)

    @app.page("/query")
    class PullQueryView(View):
        async def post(self, request: Request) -> Response:
            raw = await request.read()
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise HttpError(400, f"the request body is not JSON: {exc}") from None
            if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
                raise HttpError(400, 'expected a JSON object {"sql": "SELECT ..."}')
            limit = int_param({"limit": str(body.get("limit", ""))}, "limit", 1000, 1, MAX_PAGE)
            result = await run_pull(ctx, body["sql"], limit)
            return json_response(self, result)

    @app.page("/queries/")
    class QueryList(View):
        async def get(self, request: Request) -> Response:
            ctx.sample()
            agents = [a.stats.as_dict() for a in ctx.agents()]
            views = [v.as_dict() for v in query_views(ctx.rates, ctx.pipelines)]
            return json_response(self, {"queries": agents, "by_query": views})

    @app.page("/dead-letters/")
    class DeadLetters(View):
        async def get(self, request: Request) -> Response:
            limit = int_param(request.query, "limit", DEAD_LETTERS_DEFAULT, 1, 1000)
            letters = await dead_letters(
                ctx.bootstrap_servers,
                ctx.dead_letter_topic,
                limit=limit,
                reason=request.query.get("reason") or None,
                name=request.query.get("query") or None,
            )
            body = {"topic": ctx.dead_letter_topic, "dead_letters": [d.as_dict() for d in letters]}
            return json_response(self, body)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # Set as a header: aiohttp refuses a charset inside ``content_type``.
            body = exposition(ctx.metrics)
            return cast(Response, web.Response(body=body, headers={"Content-Type": CONTENT_TYPE}))
