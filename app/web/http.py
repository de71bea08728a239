"""What every view shares: JSON bodies, errors as JSON, validated parameters, and the one
middleware that turns unknown URLs, a missing trailing slash and crashes into clear answers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from faust.web import Response, View

from core import codec

logger = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 10_000
JSON = "application/json"
#: Prefix of the HTML pages: their errors are pages too.
UI_PREFIX = "/ui/"


class HttpError(Exception):
    """Raised by a view for a bad request: the middleware answers ``status`` with ``body``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


def json_bytes(body: Any) -> bytes:
    # codec.dumps writes DECIMAL values exactly; faust's encoder would go through float.
    return codec.dumps(body)


def json_response(view: View, body: Any, status: int = 200) -> Response:
    response: Response = view.bytes(json_bytes(body), content_type=JSON, status=status)
    return response


def int_param(
    query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None
) -> int:
    """``?name=`` as an int in [low, high]; absent → ``default``; anything else → 400."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise HttpError(400, f"{name} must be an integer {bound}, got {text!r}", parameter=name)
    return value


def limit_param(query: Mapping[str, str], default: int = DEFAULT_PAGE) -> int:
    return int_param(query, "limit", default, 1, MAX_PAGE)


def time_param(query: Mapping[str, str], name: str) -> int | None:
    """``?name=`` as epoch milliseconds: digits, or an ISO 8601 time (UTC when no zone)."""
    text = (query.get(name) or "").strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(
            400,
            f"{name}={text!r} is neither epoch milliseconds nor an ISO 8601 time",
            parameter=name,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorPage = Callable[[int, str], str]


def error_middleware(error_page: ErrorPage) -> Any:
    """Unknown URL → 404 (JSON, or a page under ``/ui/``); the other trailing-slash variant of
    a known URL → a 308 redirect to it (POST stays POST); a bad parameter → its 400; a crash →
    500 naming the exception (logged with its traceback)."""

    def respond(request: web.Request, status: int, body: dict[str, Any]) -> web.Response:
        if request.path.startswith(UI_PREFIX) and request.method == "GET":
            return web.Response(
                text=error_page(status, str(body.get("error", ""))),
                status=status,
                content_type="text/html",
            )
        return web.Response(body=json_bytes(body), status=status, content_type=JSON)

    async def other_slash(request: web.Request) -> str | None:
        path = request.path
        alt = path[:-1] if path.endswith("/") and path != "/" else path + "/"
        match = await request.app.router.resolve(request.clone(rel_url=alt))
        if match.http_exception is not None:
            return None
        return alt + (f"?{request.query_string}" if request.query_string else "")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as exc:
            return respond(request, exc.status, exc.body)
        except web.HTTPNotFound:
            target = await other_slash(request)
            if target is not None:
                raise web.HTTPPermanentRedirect(target) from None
            return respond(request, 404, {"error": f"no page at {request.path}"})
        except web.HTTPMethodNotAllowed as exc:
            allowed = sorted(exc.allowed_methods)
            return respond(
                request,
                405,
                {"error": f"{request.method} is not allowed on {request.path}", "allowed": allowed},
            )
        except web.HTTPException:
            raise
        except Exception as exc:
            logger.exception("web view %s %s failed", request.method, request.path)
            return respond(request, 500, {"error": f"internal error {type(exc).__name__}: {exc}"})

    return middleware
