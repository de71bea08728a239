"""The worker's web server: JSON views (:mod:`app.web.api`), ``/metrics``
(:mod:`app.web.prom`), pull queries (:mod:`app.web.pull`) and the HTML inspector under
``/ui/`` (:mod:`app.web.pages_tables`, :mod:`app.web.pages_ops`), all read-only, on faust's
web server (bound to 127.0.0.1 unless ``TABLESTREAM_WEB_HOST`` says otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import faust
from aiohttp import web
from faust.web import Request, Response, View

from app.web.api import key_history, register_api
from app.web.context import WebContext
from app.web.html import error_page
from app.web.http import error_middleware
from app.web.pages_ops import register_ops_pages
from app.web.pages_tables import register_table_pages
from tables import Table

if TYPE_CHECKING:
    from agents.service import PipelineService

__all__ = ["WebContext", "key_history", "register_home", "register_web"]

#: Seconds between two samples of the counters behind the rolling rates.
SAMPLE_INTERVAL_S = 1.0


def register_home(app: faust.App) -> None:
    """``/`` redirects to the inspector. Mounted when the app is built (app.factory.create_app),
    before faust mounts its own ``/`` index (at ``faust -A app`` start, before any worker wires
    its tables): the first route of a path is the one served."""

    @app.page("/")
    class Home(View):
        async def get(self, request: Request) -> Response:
            raise web.HTTPFound("/ui/")


def register_web(
    app: faust.App,
    tables: Iterable[Table],
    pipelines: PipelineService | None,
    *,
    bootstrap_servers: str,
    dead_letter_topic: str,
) -> WebContext:
    """Mounts every view on ``app``'s web server; returns what they share."""
    ctx = WebContext(app, tables, pipelines, bootstrap_servers, dead_letter_topic)
    # The aiohttp application behind faust's web server (its aiohttp driver).
    web_app: Any = app.web.web_app  # type: ignore[attr-defined]
    web_app.middlewares.append(error_middleware(error_page))
    register_api(ctx)
    register_table_pages(ctx)
    register_ops_pages(ctx)

    @app.timer(SAMPLE_INTERVAL_S)
    async def sample_rates() -> None:
        ctx.sample()

    return ctx
