"""Apache Iceberg through a real REST catalog (Iceberg's own REST adapter and servlet, run from
its published jars by tests/support/iceberg_rest.py): the three-snapshot table written through
pyiceberg's REST client, then joined per record, at a literal snapshot and at a literal time
against the model; the bearer token passed through from ``token_env``; a snapshot committed
later followed. One server for the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from sql import compile_query
from sql.catalog import Catalog
from sql.temporal import millis_to_timestamp
from tests.support.brokers import IN_CI
from tests.support.iceberg import (
    IDENT,
    STREAM,
    History,
    append,
    customers,
    declaration,
    events,
    iceberg,
    market_stats,
)
from tests.support.iceberg_rest import TOKEN_ENV, IcebergRestServer, RestLake, missing

pytestmark = pytest.mark.slow  # one server a module: conftest groups the module on one worker


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RestLake, History]]:
    why = missing()
    if why is not None:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    with IcebergRestServer(tmp_path_factory.mktemp("rest"), token="t0k-rest") as server:
        lake = RestLake(server)
        yield lake, market_stats(lake, IDENT)


def test_rest_catalog_time_travel_matches_the_model(rest: tuple[RestLake, History]) -> None:
    lake, history = rest
    table = iceberg(declaration(lake), secrets=lake.secrets)
    try:
        assert "iceberg rest catalog 'default' (http://127.0.0.1:" in table.describe()
        catalog = Catalog.of({"market_stats": table})
        query = compile_query(
            declaration(lake) + STREAM + "SELECT t.id, m.volume_30d, m.px FROM trades t"
            " LEFT JOIN market_stats FOR SYSTEM_TIME AS OF t.ts AS m ON m.symbol = t.symbol",
            catalog,
        )
        got, want = [], []
        for e in events(history):
            got.extend(query.process(e))
            row = history.row(e["ts"], e["symbol"])
            want.append(
                {"id": e["id"], "volume_30d": row and row["volume_30d"], "px": row and row["px"]}
            )
        assert got == want
        assert table.stats().as_dict()["snapshot_loads"] == len(history.log)  # each once

        def latest_and(form: str, symbol: str) -> list[dict[str, Any]]:
            sql = (
                declaration(lake) + STREAM + "SELECT t.id, c.volume_30d AS now, m.volume_30d AS"
                f" then FROM trades t JOIN market_stats c ON c.symbol = t.symbol"
                f" LEFT JOIN market_stats {form} AS m ON m.symbol = t.symbol"
            )
            return compile_query(sql, catalog).process({"id": 1, "symbol": symbol, "ts": 0})

        (t1, s1), (t2, s2) = history.log[0], history.log[1]
        latest = history.rows[history.log[-1][1]]
        assert latest_and(f"AT SNAPSHOT {s1}", "A") == [
            {"id": 1, "now": latest["A"]["volume_30d"], "then": history.rows[s1]["A"]["volume_30d"]}
        ]
        between = millis_to_timestamp((t1 + t2) // 2).isoformat(sep=" ")
        assert latest_and(f"FOR SYSTEM_TIME AS OF TIMESTAMP '{between}'", "C") == [
            {"id": 1, "now": latest["C"]["volume_30d"], "then": None}  # C came with s2
        ]
        assert latest_and(f"FOR SYSTEM_VERSION AS OF {s2}", "C") == [
            {"id": 1, "now": 300, "then": history.rows[s2]["C"]["volume_30d"]}
        ]
    finally:
        table.close_sync()


def test_rest_credentials_are_passed_through(rest: tuple[RestLake, History]) -> None:
    lake, _ = rest
    with pytest.raises(ConfigError) as err:  # the variable is not among the secrets
        iceberg(declaration(lake), secrets={})
    assert f"environment variable {TOKEN_ENV} (token_env) is not set" in str(err.value)
    with pytest.raises(ConfigError) as err:  # the server checks the token
        iceberg(declaration(lake), secrets={TOKEN_ENV: "wrong"})
    text = str(err.value)
    assert "cannot read Iceberg table 'analytics.market_stats'" in text
    assert "Unauthorized" in text
    assert "wrong" not in text


async def test_rest_catalog_snapshots_are_followed(
    rest: tuple[RestLake, History], tmp_path: Path
) -> None:
    lake, _ = rest
    ident = "analytics.followed"  # a table of its own: the module's stays as it is
    customers(lake, ident, {1: ("gold", None, "FR")})
    options = lake.options(ident, "refresh='snapshot', poll_interval='1h'")
    decl = (
        f"CREATE TABLE market_stats (id BIGINT, tier VARCHAR, PRIMARY KEY (id)) WITH ({options});\n"
    )
    table = iceberg(decl, secrets=lake.secrets, data_dir=tmp_path)
    try:
        assert table.get(2) is None
        before = table.snapshot_id
        assert before is not None
        sid = append(lake, ident, [{"id": 2, "tier": "basic", "credit": None, "country": None}])
        assert await table.refresh()
        assert (table.snapshot_id, table.get(2)) == (sid, {"id": 2, "tier": "basic"})
        assert table.get_at_version(2, before) is None
    finally:
        table.close_sync()
