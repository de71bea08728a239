"""The inspector's table pages: every table (``/ui/``) and one table (``/ui/tables/{name}/``).

One table: a page of rows (the filter box runs a pull query, the key box one ``get``), one key's
value and — when the table keeps history — its versions and an as-of box, the latest changes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from faust.web import Request, Response, View

from app.web.api import key_history, page_of
from app.web.context import WebContext
from app.web.html import (
    badge,
    cell_value,
    duration,
    error_box,
    h,
    layout,
    ms_time,
    num,
    q,
    tabulate,
    url,
    value_box,
)
from app.web.http import HttpError, limit_param
from app.web.model import TableView, is_versioned, table_view
from app.web.pull import filter_rows
from tables import Change, Table, VersionedTable

PAGE = 50
CHANGES_SHOWN = 20


def _state(v: TableView) -> str:
    if v.stats.get("ready"):
        return badge("ready")
    if v.progress is None:
        return badge("loading")
    pct = round(v.progress * 100, 1)
    rate = f"{v.read_per_s:,.0f} rec/s" if v.read_per_s else "? rec/s"
    left = f"{v.left:,}" if v.left is not None else "?"
    return (
        f'{badge("loading")} <progress max="100" value="{pct}"></progress> {pct}%'
        f'<div class="small muted">{h(left)} left · {h(rate)} · ETA {h(duration(v.eta_s))}</div>'
    )


def _lags(v: TableView) -> str:
    parts = v.stats.get("partitions", {})
    if not parts:
        return '<span class="muted">&ndash;</span>'
    return "<br>".join(
        f'<span class="mono">p{h(p)}: {num(s.get("lag"))}</span>' for p, s in parts.items()
    )


def _source(v: TableView) -> str:
    if not v.source:
        return ""
    return '<div class="small muted">' + h(", ".join(f"{k}={x}" for k, x in v.source.items()))


def tables_page(ctx: WebContext) -> str:
    ctx.sample()
    views = [table_view(ctx.rates, t) for t in ctx.tables()]
    rows = [
        [
            f'<a href="{url("tables", v.name)}">{h(v.name)}</a>{_source(v)}',
            h(v.kind),
            h(v.stats.get("topic", "")),
            num(v.stats.get("size")),
            num(v.updates_per_s),
            _lags(v),
            _state(v),
            num(v.stats.get("malformed")),
            ms_time(int((v.stats.get("last_updated") or 0) * 1000)),
        ]
        for v in views
    ]
    headers = ["table", "kind", "topic", "rows", "updates/s", "lag", "state", "malformed"]
    body = f"<h1>Tables</h1>{tabulate([*headers, 'last update'], rows, {3, 4, 7})}"
    if not views:
        body += '<p class="muted">This worker has no tables.</p>'
    return layout("Tables", body, active="Tables", refresh=True)


def _summary(v: TableView) -> str:
    s = v.stats
    items = [
        ("rows", num(s.get("size"))),
        ("kind", h(v.kind)),
        ("topic", h(s.get("topic"))),
        ("updates/s", num(v.updates_per_s)),
        (
            "inserts · updates · deletes",
            f"{num(s.get('inserts'))} · {num(s.get('updates'))} · {num(s.get('deletes'))}",
        ),
        ("malformed", num(s.get("malformed"))),
        ("disk", num(s.get("bytes_on_disk")) + " B"),
    ]
    cells = "".join(f'<div><span class="small muted">{k}</span><b>{x}</b></div>' for k, x in items)
    return f'<div class="grid">{cells}</div><p>{_state(v)} &nbsp; lag: {_lags(v)}</p>'


def _key_section(table: Table, key: str, as_of: str | None) -> str:
    base = url("tables", table.name)
    out = [f'<h2 id="key">Key <span class="mono">{h(key)}</span></h2>']
    value = table.get(key)
    out.append(value_box(value) if value is not None else '<p class="muted">no such key</p>')
    if not (is_versioned(table) and isinstance(table, VersionedTable)):
        return "".join(out)
    out.append(
        f'<form class="inline" method="get" action="{base}#key">'
        f'<input type="hidden" name="key" value="{h(key)}">'
        f'<label>as of <input type="text" name="as_of" value="{h(as_of or "")}" '
        'placeholder="epoch ms or 2026-01-02T03:04:05"></label><button>show</button></form>'
    )
    if as_of:
        status, body = key_history(table, key, as_of)
        if status == 200:
            out.append(f"<p>As of {ms_time(body['as_of'])}:</p>{value_box(body['value'])}")
        else:
            out.append(error_box(body))
    status, body = key_history(table, key, None)
    versions = body.get("versions", []) if status == 200 else []
    rows = [
        [
            num(v["version"]),
            ms_time(v["timestamp"]),
            cell_value(v["value"]) if v["value"] is not None else '<i class="muted">deleted</i>',
        ]
        for v in reversed(versions)
    ]
    out.append(f"<h2>History ({len(versions)} versions, newest first)</h2>")
    out.append(tabulate(["version", "event time", "value"], rows, {0}))
    return "".join(out)


def _changes(table: Table, recent: deque[Change] | None) -> str:
    changes: list[Change] = list(recent or ())
    since = getattr(table, "get_changes_since", None)
    if not changes and is_versioned(table) and callable(since):
        version = int(getattr(table, "version", 0))
        changes = list(since(max(0, version - CHANGES_SHOWN)))
    rows = [
        [
            num(c.version),
            h(c.op.value),
            f'<a class="mono" href="{q(key=c.key)}#key">{h(c.key)}</a>',
            cell_value(c.value) if c.value is not None else '<i class="muted">&ndash;</i>',
            ms_time(c.timestamp),
            h(f"{c.topic}[{c.partition}]@{c.offset}" if c.offset >= 0 else ""),
        ]
        for c in reversed(changes[-CHANGES_SHOWN:])
    ]
    if not rows:
        return '<h2>Latest changes</h2><p class="muted">none since this worker started</p>'
    headers = ["version", "op", "key", "value", "event time", "source"]
    return f"<h2>Latest changes</h2>{tabulate(headers, rows, {0})}"


def _rows(rows: list[tuple[Any, Any]], where: str, limit: int, stopped: str | None) -> str:
    title = f"Rows matching <code>{h(where)}</code>" if where else "Rows"
    out = [f"<h2>{title}</h2>"]
    cells = [
        [f'<a class="mono" href="{q(key=k)}#key">{h(k)}</a>', cell_value(val)] for k, val in rows
    ]
    out.append(tabulate(["key", "value"], cells) if rows else '<p class="muted">no rows</p>')
    if stopped == "time limit":
        out.append('<p class="muted">stopped at the time limit: refine the filter</p>')
    if len(rows) == limit:
        nxt = q(where=where, after=rows[-1][0], limit=limit if limit != PAGE else None)
        out.append(f'<p><a href="{nxt}" id="next">next page →</a></p>')
    return "".join(out)


async def table_page(ctx: WebContext, name: str, request: Request) -> str:
    t = ctx.table(name)
    params = request.query
    limit = limit_param(params, PAGE)
    after = params.get("after") or None
    where = (params.get("where") or "").strip()
    key = params.get("key") or ""
    ctx.sample()
    v = table_view(ctx.rates, t)
    base = url("tables", t.name)
    out = [f"<h1>Table {h(t.name)}</h1>", _summary(v)]
    out.append(
        f'<form class="inline" method="get" action="{base}" id="filter">'
        f'<input class="wide" type="text" name="where" value="{h(where)}" '
        "placeholder=\"SQL predicate, e.g. tier = 'gold' AND id > 10\">"
        "<button>filter</button></form>"
        f'<form class="inline" method="get" action="{base}#key" id="keysearch">'
        f'<input type="text" name="key" value="{h(key)}" placeholder="key">'
        "<button>look up</button></form>"
    )
    if key:
        out.append(_key_section(t, key, params.get("as_of")))
    rows: list[tuple[Any, Any]] = []
    stopped = None
    try:
        if where:
            rows, stopped = await filter_rows(ctx, t, where, limit, after)
        else:
            rows = page_of(t, limit, after)
    except HttpError as exc:
        out.append(error_box(exc.body))  # the filter does not compile: no rows to show
    else:
        out.append(_rows(rows, where, limit, stopped))
    out.append(_changes(t, ctx.recent_changes.get(t.name)))
    return layout(f"Table {t.name}", "".join(out), active="Tables")


def register_table_pages(ctx: WebContext) -> None:
    app = ctx.app

    @app.page("/ui/")
    class TablesPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(tables_page(ctx))

    @app.page("/ui/tables/")
    class TablesAlias(View):
        async def get(self, request: Request) -> Response:
            return self.html(tables_page(ctx))

    @app.page("/ui/tables/{name}/")
    class TablePage(View):
        async def get(self, request: Request, name: str) -> Response:
            return self.html(await table_page(ctx, name, request))
