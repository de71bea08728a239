"""The inspector's query and dead-letter pages: ``/ui/queries/`` and ``/ui/dead-letters/``."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from app.web.context import WebContext
from app.web.deadletters import DeadLetterView, Shown, dead_letters
from app.web.html import badge, h, layout, ms_time, num, q, tabulate
from app.web.http import int_param
from app.web.model import QueryView, query_views

DEAD_LETTERS_SHOWN = 50


def _latency(stage: dict[str, Any]) -> str:
    lat = stage.get("batch_latency_ms") or {}
    return f"{num(lat.get('p50'), 2)} / {num(lat.get('p99'), 2)}"


def _reasons(query: str, stage: dict[str, Any]) -> str:
    reasons = stage.get("dead_letter_reasons") or {}
    if not reasons:
        return num(stage.get("dead_letters"))
    links = [
        f'<a href="/ui/dead-letters/{q(query=query, reason=r)}">{h(r)}</a>: {num(n)}'
        for r, n in reasons.items()
    ]
    return "<br>".join(links)


def _query_card(v: QueryView) -> str:
    rows = [
        [
            h(s.get("kind")),
            badge(str(s.get("state"))),
            num(s.get("in_per_s")),
            num(s.get("out_per_s")),
            num(s.get("records_in")),
            num(s.get("records_out")),
            num(s.get("lag")),
            _latency(s),
            _reasons(v.name, s),
            num(s.get("rebuilds")),
            h(s.get("error") or ""),
        ]
        for s in v.stages
    ]
    headers = [
        "stage",
        "state",
        "in/s",
        "out/s",
        "in",
        "out",
        "lag",
        "batch ms p50 / p99",
        "dead letters",
        "rebuilds",
        "error",
    ]
    stages = tabulate(headers, rows, {2, 3, 4, 5, 6})
    return (
        f'<section class="card query" id="q-{h(v.name)}">'
        f'<h2>{h(v.name)} {badge(v.state)} <span class="small muted">{h(v.where)}</span></h2>'
        f'{stages}<h3 class="small muted">SQL</h3><pre class="sql">{h(v.sql)}</pre>'
        f'<h3 class="small muted">Plan (EXPLAIN)</h3><pre class="plan">{h(v.plan)}</pre></section>'
    )


def queries_page(ctx: WebContext) -> str:
    ctx.sample()
    views = list(query_views(ctx.rates, ctx.pipelines))
    body = "<h1>Queries</h1>" + "".join(_query_card(v) for v in views)
    if not views:
        body += '<p class="muted">This worker runs no continuous queries.</p>'
    return layout("Queries", body, active="Queries", refresh=True)


def _shown(s: Shown) -> str:
    if s.encoding == "null":
        return '<i class="muted">null</i>'
    more = f'<span class="muted"> … ({s.size:,} bytes)</span>' if s.truncated else ""
    if s.encoding == "hex":
        return f'<pre class="hex" title="binary, shown as hex">{h(s.text)}</pre>{more}'
    return f"<pre>{h(s.text)}</pre>{more}"


def _letter_row(view: DeadLetterView) -> list[str]:
    d = view.letter
    where = f"{d.topic}[{d.partition}]@{d.offset}"
    return [
        ms_time(d.dlq_timestamp),
        f'<span class="reason">{h(d.reason)}</span>',
        h(d.source),
        f'<span class="mono">{h(where)}</span>',
        _shown(view.key),
        _shown(view.value),
    ]


async def dead_letters_page(ctx: WebContext, request: Request) -> str:
    params = request.query
    limit = int_param(params, "limit", DEAD_LETTERS_SHOWN, 1, 1000)
    reason = (params.get("reason") or "").strip()
    query = (params.get("query") or "").strip()
    letters = await dead_letters(
        ctx.bootstrap_servers,
        ctx.dead_letter_topic,
        limit=limit,
        reason=reason or None,
        name=query or None,
    )
    names = sorted({a.qdef.name for a in ctx.agents()} | {t.name for t in ctx.tables()})
    options = '<option value="">any query or table</option>' + "".join(
        f'<option value="{h(n)}"{" selected" if n == query else ""}>{h(n)}</option>' for n in names
    )
    form = (
        '<form class="inline" method="get" action="/ui/dead-letters/" id="dlfilter">'
        f'<input type="text" name="reason" value="{h(reason)}" placeholder="reason contains">'
        f'<select name="query">{options}</select>'
        f'<input type="text" name="limit" value="{h(limit)}" style="min-width:60px;width:70px">'
        "<button>filter</button></form>"
    )
    headers = ["time", "reason", "source", "record", "key", "value"]
    rows = [_letter_row(d) for d in letters]
    listing = tabulate(headers, rows) if rows else '<p class="muted">no dead letters</p>'
    body = (
        f'<h1>Dead letters <span class="small muted">topic {h(ctx.dead_letter_topic)}, '
        f"newest first</span></h1>{form}{listing}"
    )
    return layout("Dead letters", body, active="Dead letters")


def register_ops_pages(ctx: WebContext) -> None:
    app = ctx.app

    @app.page("/ui/queries/")
    class QueriesPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(queries_page(ctx))

    @app.page("/ui/dead-letters/")
    class DeadLettersPage(View):
        async def get(self, request: Request) -> Response:
            return self.html(await dead_letters_page(ctx, request))
