"""A join on a non-key column of an Iceberg table probes a hash index of the served snapshot
(not a scan per record): its rows equal the model's, and the index follows a new snapshot (built
with it in the loading thread, swapped in with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sql import compile_query
from sql.catalog import Catalog
from tests.support.iceberg import COLUMNS, IDENT, Lake, append, iceberg, market_stats

pytestmark = pytest.mark.slow

STREAM = "CREATE STREAM trades (id BIGINT, v BIGINT) WITH (topic='trades');\n"


async def test_a_non_key_join_probes_the_snapshot_index(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    history = market_stats(lake, IDENT)
    options = lake.options(IDENT, "refresh='snapshot', poll_interval='1h'")
    decl = f"CREATE TABLE market_stats ({COLUMNS}) WITH ({options});\n"
    table = iceberg(decl, data_dir=tmp_path)
    try:
        query = compile_query(
            decl + STREAM + "SELECT t.id, m.symbol FROM trades t"
            " LEFT JOIN market_stats m ON m.volume_30d = t.v",
            Catalog.of({"market_stats": table}),
        )
        assert "ON m.volume_30d = t.v: index probe [source: iceberg" in query.explain()
        assert "FULL SCAN" not in query.explain()

        def joined(rows: dict[str, dict[str, Any]], probes: list[int]) -> None:
            for i, v in enumerate(probes):
                got = sorted(r["symbol"] or "" for r in query.process({"id": i, "v": v}))
                want = sorted(s for s, row in rows.items() if row["volume_30d"] == v) or [""]
                assert got == want, (v, got, want)

        latest = dict(history.rows[history.log[-1][1]])
        joined(latest, [100, 150, 200, 300, 400, 999])  # 100 was A's before the overwrite
        stats = table.stats().as_dict()
        assert (stats["indexes"], stats["index_builds"]) == (["volume_30d"], 1)
        lookups = stats["lookups"]

        append(lake, IDENT, [{"symbol": "E", "volume_30d": 200, "px": None}])
        assert await table.refresh()
        latest["E"] = {"symbol": "E", "volume_30d": 200, "px": None}
        joined(latest, [200, 150, 999])
        stats = table.stats().as_dict()
        assert stats["index_builds"] == 2  # the new snapshot's, built as it loaded
        # Candidates come from the index: one key read per matching row, no scan.
        assert stats["lookups"] - lookups == 3
    finally:
        table.close_sync()
