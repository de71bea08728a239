"""A worker's JSON views read over HTTP, as a client does (the demo's viewer, the tests).

Kept apart from :mod:`app.cli` so that a client imports neither faust nor the SQL compiler.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def get_json(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    """GET a JSON view: (status, body). An error status is returned with its body (JSON, else
    its text); a server that does not answer raises URLError or OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")


def try_get_json(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    """:func:`get_json`, with status 0 and the reason as body when the server does not answer
    (for a caller polling a server that may not be up yet)."""
    try:
        return get_json(url, timeout)
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)
