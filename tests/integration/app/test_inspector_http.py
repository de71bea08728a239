"""The web server of a live worker over HTTP: validated parameters and JSON errors, pull
queries, ``/metrics``, dead letters read back, and the inspector's pages escaping data."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.app.inspector_support import XSS, Inspected
from tests.integration.app.inspector_support import live as live  # the fixture
from tests.support.worker import get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def fetch(url: str, data: bytes | None = None) -> tuple[int, str, str]:
    """(status, content type, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        ctype = exc.headers.get("Content-Type") or ""
        if 300 <= exc.code < 400:
            return exc.code, ctype, exc.headers.get("Location") or ""
        return exc.code, ctype, exc.read().decode()


def post_query(web: str, body: Any) -> tuple[int, Any]:
    status, _, text = fetch(f"{web}/query", json.dumps(body).encode())
    return status, json.loads(text)


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/tables/users/?limit=abc", 400, "limit must be an integer from 1 to 10000, got 'abc'"),
        ("/tables/users/?limit=0", 400, "limit must be an integer"),
        ("/tables/nope/", 404, "no table named 'nope'"),
        ("/tables/users/999999", 404, "no key '999999' in table 'users'"),
        ("/tables/users/5/history?as_of=soon", 400, "neither epoch milliseconds nor an ISO"),
        ("/tables/totals/1/history", 400, "keeps no history"),
        ("/tables/users/?where=tier+%3D%3D+1", 400, "line 1, column"),
        ("/no/such/page", 404, "no page at /no/such/page"),
        ("/dead-letters/?limit=-1", 400, "limit must be an integer"),
    ],
)
def test_bad_requests_answer_json_errors(
    live: Inspected, path: str, status: int, needle: str
) -> None:
    got, ctype, text = fetch(live.web + path)
    assert got == status, text
    assert ctype.startswith("application/json")
    body = json.loads(text)
    if needle == "line 1, column":
        assert body["line"] == 1
        assert body["column"] >= 1
        assert body["parameter"] == "where"
    else:
        assert needle in body["error"]


def test_trailing_slash_variants_redirect(live: Inspected) -> None:
    assert fetch(f"{live.web}/tables?x=1")[::2] == (308, "/tables/?x=1")
    assert fetch(f"{live.web}/tables/users/5/")[::2] == (308, "/tables/users/5")
    assert fetch(f"{live.web}/ui/queries")[::2] == (308, "/ui/queries/")
    assert fetch(f"{live.web}/ready/")[0] == 308
    assert get_json(f"{live.web}/tables/users")[0] == 200  # urllib follows the redirect


def test_where_filters_rows_through_the_pull_query_engine(live: Inspected) -> None:
    status, body = get_json(f"{live.web}/tables/users/?where=tier+%3D+'gold'+AND+id+%3E+20")
    assert status == 200
    assert [r["key"] for r in body["rows"]] == ["30", "40", "50", "60"]
    status, body = get_json(f"{live.web}/tables/users/?where=tier+%3D+'gold'&limit=2")
    assert len(body["rows"]) == 2
    assert body["next"] == body["rows"][-1]["key"]
    status, rest = get_json(
        f"{live.web}/tables/users/?where=tier+%3D+'gold'&limit=100&after={body['next']}"
    )
    assert [r["key"] for r in body["rows"] + rest["rows"]] == [
        "10",
        "20",
        "30",
        "40",
        "5",
        "50",
        "60",
    ]


def test_pull_queries(live: Inspected) -> None:
    status, body = post_query(live.web, {"sql": "SELECT id, name FROM users WHERE id = 3"})
    assert status == 200, body
    assert body["rows"] == [{"id": 3, "name": "user3"}]
    assert body["strategy"] == "key lookup"
    assert body["scanned"] == 1
    assert body["plan"].startswith("PullQuery users: key lookup")
    status, body = post_query(
        live.web, {"sql": "SELECT tier, COUNT(*) AS n FROM users GROUP BY tier", "limit": 10}
    )
    assert sorted((r["tier"], r["n"]) for r in body["rows"]) == [("basic", 53), ("gold", 7)]
    status, body = post_query(live.web, {"sql": "SELECT id FROM users LIMIT 4"})
    assert len(body["rows"]) == 4
    assert body["complete"]

    status, body = post_query(live.web, {"sql": "SELECT id\nFROM users\nWHERE nope = 1"})
    assert status == 400
    assert (body["line"], body["column"], body["kind"]) == (3, 7, "BindError")
    assert "unknown column 'nope'" in body["error"]
    status, body = post_query(live.web, {"sql": "SELECT * FROM orders"})
    assert status == 400
    assert "not a table" in body["error"]
    assert post_query(live.web, {"query": "x"})[0] == 400
    assert fetch(f"{live.web}/query", b"{not json")[0] == 400
    status, _, text = fetch(f"{live.web}/query")
    assert status == 405
    assert "GET is not allowed" in json.loads(text)["error"]


def test_metrics_in_prometheus_format(live: Inspected) -> None:
    status, ctype, text = fetch(f"{live.web}/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    assert 'tablestream_table_rows{table="users"} 60.0' in text
    assert 'tablestream_query_records_in_total{query="checked",stage="stateless"} 21.0' in text
    assert (
        'tablestream_query_dead_letters_total{query="checked",reason="DivisionByZeroError",'
        'stage="stateless"} 5.0'
    ) in text
    assert (
        'tablestream_query_batch_latency_seconds_count{query="checked",stage="stateless"}' in text
    )
    assert 'tablestream_query_state{query="checked",stage="stateless",state="running"} 1.0' in text
    assert 'tablestream_table_restore_progress_ratio{table="users"} 1.0' in text


def test_dead_letters_read_back_with_reason_and_source(live: Inspected) -> None:
    status, body = get_json(f"{live.web}/dead-letters/?query=checked&reason=division")
    assert status == 200
    letters = body["dead_letters"]
    assert len(letters) == 5
    assert {d["topic"] for d in letters} == {live.names["orders"]}
    assert all(d["source"] == "query:checked" and "DivisionByZero" in d["reason"] for d in letters)
    status, body = get_json(f"{live.web}/dead-letters/?reason=JSON&query=checked")
    (binary,) = body["dead_letters"]
    assert binary["value"]["encoding"] == "hex"
    assert binary["value"]["text"].startswith("00 ff 3c 62 3e")


def test_pages_escape_data(live: Inspected) -> None:
    status, ctype, text = fetch(f"{live.web}/ui/tables/users/?key=7")
    assert status == 200
    assert ctype.startswith("text/html")
    assert XSS not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    status, ctype, text = fetch(f"{live.web}/ui/tables/nope/")
    assert status == 404
    assert ctype.startswith("text/html")
    assert "no table named" in text
    for page in ("/ui/", "/ui/queries/", "/ui/dead-letters/", "/ui/tables/totals/"):
        assert fetch(live.web + page)[0] == 200, page
    assert fetch(f"{live.web}/")[::2] == (302, "/ui/")
