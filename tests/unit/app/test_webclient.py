"""app.webclient against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.broker import free_port
from app.webclient import get_json, try_get_json

_ANSWERS = {
    "/ok": (200, b'{"a": [1, 2]}'),
    "/missing": (404, b'{"error": "no such table"}'),
    "/broken": (500, b"not json \xff"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = _ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_status_and_body_of_success_and_of_errors(server: str) -> None:
    assert get_json(f"{server}/ok") == (200, {"a": [1, 2]})
    assert get_json(f"{server}/missing") == (404, {"error": "no such table"})
    assert get_json(f"{server}/broken") == (500, "not json \ufffd")
    assert try_get_json(f"{server}/missing") == (404, {"error": "no such table"})


def test_a_server_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}/ok"
    with pytest.raises(urllib.error.URLError):
        get_json(url, timeout=2)
    status, reason = try_get_json(url, timeout=2)
    assert status == 0
    assert "refused" in reason.lower()
