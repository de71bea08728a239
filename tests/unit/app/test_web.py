"""The web layer served by aiohttp's test server, over in-memory tables: every view's answers,
validated parameters, JSON errors from the middleware, pull queries, /metrics, escaped pages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.web import register_web
from tables.memory import MemoryTable
from tables.protocol import Table, TableStats

XSS = "<script>alert(1)</script>"


class BrokenTable(MemoryTable):
    """A table kind whose stats fail: the views must answer 500 as JSON, not crash."""

    def stats(self) -> TableStats:
        raise RuntimeError("stats unavailable")


def tables() -> list[MemoryTable]:
    users = MemoryTable("users", key_field="id")
    for i in range(1, 31):
        users.put(str(i), {"id": i, "name": XSS if i == 7 else f"u{i}", "gold": i % 10 == 0})
    prices = MemoryTable("prices", key_field="sku", versions=5)
    prices.put("a", {"sku": "a", "px": 1}, 1000)
    prices.put("a", {"sku": "a", "px": 2}, 2000)
    return [users, prices]


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = faust.App("webtest", autodiscover=False, web_host="127.0.0.1")
    register_web(app, tables(), None, bootstrap_servers="127.0.0.1:1", dead_letter_topic="dlq")
    web_app = app.web.web_app  # type: ignore[attr-defined]
    async with TestClient(TestServer(web_app)) as c:
        yield c


async def get(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    resp = await client.get(path, allow_redirects=False)
    text = await resp.text()
    if resp.content_type == "application/json":
        return resp.status, json.loads(text)
    return resp.status, text


async def test_table_views_and_parameter_errors(client: TestClient[Any, Any]) -> None:
    status, body = await get(client, "/tables/")
    assert status == 200
    assert [t["name"] for t in body["tables"]] == ["prices", "users"]
    status, body = await get(client, "/tables/users/?limit=5")
    assert [r["key"] for r in body["rows"]] == ["1", "10", "11", "12", "13"]
    assert body["next"] == "13"
    status, body = await get(client, "/tables/users/?limit=2&after=13")
    assert [r["key"] for r in body["rows"]] == ["14", "15"]
    assert await get(client, "/tables/users/?limit=abc") == (
        400,
        {"error": "limit must be an integer from 1 to 10000, got 'abc'", "parameter": "limit"},
    )
    assert (await get(client, "/tables/users/?limit=10001"))[0] == 400
    status, body = await get(client, "/tables/nope/")
    assert (status, body["tables"]) == (404, ["prices", "users"])
    status, body = await get(client, "/tables/users/99")
    assert (status, body["error"]) == (404, "no key '99' in table 'users'")
    status, body = await get(client, "/tables/prices/a/history?as_of=1500")
    assert body == {"key": "a", "as_of": 1500, "value": {"sku": "a", "px": 1}}
    status, body = await get(client, "/tables/prices/a/history?as_of=1970-01-01T00:00:02")
    assert body["value"] == {"sku": "a", "px": 2}


async def test_where_is_a_pull_query_with_positions(client: TestClient[Any, Any]) -> None:
    status, body = await get(client, "/tables/users/?where=gold")
    assert [r["key"] for r in body["rows"]] == ["10", "20", "30"]
    status, body = await get(client, "/tables/users/?where=gold%20AND%0Anme%20%3D%201")
    assert status == 400
    assert (body["line"], body["column"], body["parameter"]) == (2, 1, "where")
    assert "unknown column 'nme'" in body["error"]
    assert "did you mean 'name'" in body["error"]


async def test_middleware_redirects_and_json_errors(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/tables?a=1", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (308, "/tables/?a=1")
    resp = await client.get("/tables/users/3/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (308, "/tables/users/3")
    assert await get(client, "/nowhere") == (404, {"error": "no page at /nowhere"})
    status, body = await get(client, "/query")
    assert status == 405
    assert "POST" in body["allowed"]
    status, page = await get(client, "/ui/nowhere/")
    assert status == 404
    assert "no page at /ui/nowhere/" in page


async def test_a_crashing_view_answers_json_500() -> None:
    app = faust.App("webtest-broken", autodiscover=False)
    broken = BrokenTable("broken")
    register_web(app, [broken], None, bootstrap_servers="127.0.0.1:1", dead_letter_topic="d")
    async with TestClient(TestServer(app.web.web_app)) as c:  # type: ignore[attr-defined]
        status, body = await get(c, "/tables/")
    assert status == 500
    assert body == {"error": "internal error RuntimeError: stats unavailable"}


async def test_pull_query_endpoint(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/query", json={"sql": "SELECT name FROM users WHERE id IN (2, 3)"})
    body = await resp.json()
    assert body["rows"] == [{"name": "u2"}, {"name": "u3"}]
    assert body["strategy"] == "key lookup"
    resp = await client.post("/query", json={"sql": "SELECT id FROM users", "limit": 4})
    body = await resp.json()
    assert (len(body["rows"]), body["stopped"]) == (4, "row limit")
    resp = await client.post("/query", json={"sql": "SELEC id FROM users"})
    body = await resp.json()
    assert resp.status == 400
    assert (body["line"], body["column"], body["kind"]) == (1, 1, "ParseError")
    assert "did you mean 'SELECT'" in body["error"]
    resp = await client.post("/query", json={"sql": "SELECT 1 FROM users", "limit": "x"})
    assert resp.status == 400
    resp = await client.post("/query", data=b"not json")
    assert resp.status == 400


async def test_metrics(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'tablestream_table_rows{table="users"} 30.0' in text
    assert 'tablestream_table_changes_total{op="insert",table="prices"} 1.0' in text
    assert 'tablestream_table_changes_total{op="update",table="prices"} 1.0' in text
    assert 'tablestream_table_ready{table="users"} 1.0' in text


async def test_pages_escape_data(client: TestClient[Any, Any]) -> None:
    status, page = await get(client, "/ui/tables/users/?key=7")
    assert status == 200
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    status, page = await get(client, f"/ui/tables/users/?where={XSS}")
    assert status == 200
    assert XSS not in page
    assert 'role="alert"' in page  # the predicate does not parse: shown inline
    status, page = await get(client, "/ui/tables/prices/?key=a")
    assert "History (2 versions, newest first)" in page
    for path in ("/ui/", "/ui/tables/", "/ui/queries/"):
        assert (await get(client, path))[0] == 200
    status, body = await get(client, "/ui/tables/users/?limit=x")
    assert status == 400
    assert "limit must be an integer" in body


class SourceStatsLike:
    def as_dict(self) -> dict[str, Any]:
        return {
            "name": "ext",
            "kind": "postgres",
            "source": "postgres db=x table=t",
            "ready": True,
            "lookups": 5,
            "latency_ms_p99": 1.5,
            "breaker": {"state": "closed", "consecutive_failures": 0},
        }


class ExternalLike:
    """A table kind with only the core capabilities (lookups, stats): no scan, no change feed,
    no history — as an external database's table is."""

    name = "ext"
    kind = "postgres"
    key_field = "id"
    is_ready = True

    def get(self, key: Any, default: Any = None) -> Any:
        return {"id": key, "v": XSS} if key == "k" else default

    def stats(self) -> SourceStatsLike:
        return SourceStatsLike()


async def test_a_table_kind_without_scan_or_feed_is_shown_by_its_capabilities() -> None:
    app = faust.App("webtest-ext", autodiscover=False)
    ext = cast(Table, ExternalLike())
    register_web(app, [ext], None, bootstrap_servers="127.0.0.1:1", dead_letter_topic="d")
    async with TestClient(TestServer(app.web.web_app)) as c:  # type: ignore[attr-defined]
        status, body = await get(c, "/tables/")
        assert body["tables"][0]["kind"] == "postgres"
        assert body["tables"][0]["lookups"] == 5
        status, body = await get(c, "/tables/ext/")
        assert (status, body["error"]) == (
            400,
            "table 'ext' (postgres) cannot list its rows: look up a key",
        )
        assert (await get(c, "/tables/ext/k"))[1] == {"key": "k", "value": {"id": "k", "v": XSS}}
        resp = await c.post("/query", json={"sql": "SELECT v FROM ext WHERE id = 'k'"})
        assert (await resp.json())["rows"] == [{"v": XSS}]
        resp = await c.post("/query", json={"sql": "SELECT v FROM ext WHERE v = 'x'"})
        body = await resp.json()
        assert resp.status == 400
        assert "cannot be scanned" in body["error"]
        assert (body["line"], body["column"]) == (1, 25)  # the predicate
        text = await (await c.get("/metrics")).text()
        assert 'tablestream_source_lookups{table="ext"} 5.0' in text
        assert 'tablestream_source_breaker_state{state="closed",table="ext"} 1.0' in text
        assert 'tablestream_table_ready{table="ext"} 1.0' in text
        status, page = await get(c, "/ui/")
        assert "lookups=5" in page
        status, page = await get(c, "/ui/tables/ext/?key=k")
        assert status == 200
        assert "&lt;script&gt;" in page
        assert XSS not in page
        assert "cannot list its rows" in page
