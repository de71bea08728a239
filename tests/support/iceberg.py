"""A real Iceberg table for the tests: pyiceberg's SQL catalog in a sqlite file and a local
warehouse, written with pyiceberg, and the model of what each snapshot holds.

:func:`market_stats` writes the table the time-travel tests read — appends, an overwrite that
changes a row, a schema change (a rename with a type promotion, an added column) — and returns
every snapshot in the log with the rows it holds, tracked here independently of the reader.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sources.iceberg import IcebergTable

#: The declared columns of the tests' table (the current schema's names).
COLUMNS = "symbol VARCHAR, volume_30d BIGINT, px DOUBLE, PRIMARY KEY (symbol)"
#: The tests' table in its catalog.
IDENT = "analytics.market_stats"
#: The stream the tests' queries join the table with.
STREAM = "CREATE STREAM trades (id BIGINT, symbol VARCHAR, ts BIGINT) WITH (topic='trades');\n"


class Catalogs(Protocol):
    """A lake the writers below use: :class:`Lake` (SQL catalog) or
    :class:`tests.support.iceberg_rest.RestLake` (REST catalog)."""

    def catalog(self) -> Any: ...

    def options(self, table: str, extra: str = "") -> str: ...


def declaration(lake: Catalogs, extra: str = "", columns: str = COLUMNS) -> str:
    """The CREATE TABLE of :data:`IDENT` in ``lake``, with ``extra`` options."""
    return f"CREATE TABLE market_stats ({columns}) WITH ({lake.options(IDENT, extra)});\n"


@dataclass
class Lake:
    """A catalog and warehouse under a test's directory."""

    root: Path
    name: str = "default"
    #: The SQL catalog's database (default: a sqlite file under ``root``).
    database: str | None = None

    @property
    def uri(self) -> str:
        return self.database or f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def warehouse(self) -> str:
        return f"file://{self.root / 'warehouse'}"

    def catalog(self) -> Any:
        from pyiceberg.catalog import load_catalog

        (self.root / "warehouse").mkdir(parents=True, exist_ok=True)
        return load_catalog(self.name, type="sql", uri=self.uri, warehouse=self.warehouse)

    def options(self, table: str, extra: str = "") -> str:
        text = (
            f"connector='iceberg', catalog_uri='{self.uri}', warehouse='{self.warehouse}', "
            f"catalog='{self.name}', table='{table}'"
        )
        return f"{text}, {extra}" if extra else text


@dataclass
class History:
    """Snapshot id → the rows it holds (symbol → declared-column row), and the log's times."""

    rows: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    log: list[tuple[int, int]] = field(default_factory=list)  # (timestamp_ms, snapshot id)

    def at(self, ts: int) -> int | None:
        current = None
        for t, sid in self.log:
            if t <= ts:
                current = sid
        return current

    def row(self, ts: int, symbol: str) -> dict[str, Any] | None:
        sid = self.at(ts)
        return None if sid is None else self.rows[sid].get(symbol)


def _record(table: Any, history: History, states: list[dict[str, dict[str, Any]]]) -> None:
    """The log entries added since the last call get ``states`` (one per new snapshot). A
    commit of two snapshots (an overwrite: delete, then append) logs both in pyiceberg's SQL
    catalog, only the last in Iceberg's Java REST server: the one never current gets no entry."""
    table.refresh()
    new = [(e.timestamp_ms, e.snapshot_id) for e in table.metadata.snapshot_log][len(history.log) :]
    assert 1 <= len(new) <= len(states), (new, len(states))
    states = states[len(states) - len(new) :]
    for (ts, sid), state in zip(new, states, strict=True):
        history.log.append((ts, sid))
        history.rows[sid] = {k: dict(v) for k, v in state.items()}
    time.sleep(0.02)  # the next commit gets a later timestamp


def market_stats(lake: Catalogs, ident: str = "analytics.market_stats") -> History:
    """Write the table: S1 append (A, B), S2 append (C), an overwrite of A (a delete snapshot and
    an append snapshot), a schema change (``avg_volume`` int → ``volume_30d`` long, ``px`` added)
    and S5 append (D with a px)."""
    import pyarrow as pa
    from pyiceberg.types import DoubleType, LongType

    cat = lake.catalog()
    namespace = ident.rsplit(".", 1)[0]
    if (namespace,) not in cat.list_namespaces():
        cat.create_namespace(namespace)
    old = pa.schema([("symbol", pa.string()), ("avg_volume", pa.int32())])
    table = cat.create_table(ident, schema=old)
    history = History()

    def row(v: int | None, px: float | None = None) -> dict[str, Any]:
        return {"volume_30d": v, "px": px}

    state = {"A": row(100), "B": row(200)}
    table.append(pa.table({"symbol": ["A", "B"], "avg_volume": [100, 200]}, schema=old))
    _record(table, history, [{k: {"symbol": k, **v} for k, v in state.items()}])
    state["C"] = row(300)
    table.append(pa.table({"symbol": ["C"], "avg_volume": [300]}, schema=old))
    _record(table, history, [{k: {"symbol": k, **v} for k, v in state.items()}])
    table.overwrite(
        pa.table({"symbol": ["A"], "avg_volume": [150]}, schema=old),
        overwrite_filter="symbol = 'A'",
    )
    without_a = {k: {"symbol": k, **v} for k, v in state.items() if k != "A"}
    state["A"] = row(150)
    _record(table, history, [without_a, {k: {"symbol": k, **v} for k, v in state.items()}])
    with table.update_schema() as update:
        update.update_column("avg_volume", LongType())
        update.rename_column("avg_volume", "volume_30d")
        update.add_column("px", DoubleType())
    new = pa.schema([("symbol", pa.string()), ("volume_30d", pa.int64()), ("px", pa.float64())])
    table.append(pa.table({"symbol": ["D"], "volume_30d": [400], "px": [1.5]}, schema=new))
    state["D"] = row(400, 1.5)
    _record(table, history, [{k: {"symbol": k, **v} for k, v in state.items()}])
    return history


def append(lake: Catalogs, ident: str, rows: list[dict[str, Any]]) -> int:
    """Append ``rows`` (current schema) as a new snapshot; its id."""
    import pyarrow as pa

    table = lake.catalog().load_table(ident)
    schema = table.schema().as_arrow()
    table.append(pa.Table.from_pylist(rows, schema=schema))
    return int(table.current_snapshot().snapshot_id)


def customers(lake: Catalogs, ident: str, data: dict[int, tuple[Any, ...]]) -> None:
    """The federation tests' customer rows (:data:`tests.support.federation.CUSTOMERS`) as an
    Iceberg table ``ident`` (one snapshot)."""
    import pyarrow as pa

    cat = lake.catalog()
    namespace = ident.rsplit(".", 1)[0]
    if (namespace,) not in cat.list_namespaces():
        cat.create_namespace(namespace)
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("tier", pa.string()),
            ("credit", pa.decimal128(12, 2)),
            ("country", pa.string()),
        ]
    )
    rows = [
        {"id": k, "tier": t, "credit": c, "country": co} for k, (t, c, co) in sorted(data.items())
    ]
    cat.create_table(ident, schema=schema).append(pa.Table.from_pylist(rows, schema=schema))


def iceberg(
    sql_declaration: str,
    *,
    open_now: bool = True,
    data_dir: Path = Path("data"),
    secrets: Mapping[str, str] | None = None,
) -> IcebergTable:
    """The ``market_stats`` table of a declaration, built by its kind as a worker builds it
    (``secrets``: what the edge passes, ``TableEnv.secrets``), opened unless told not to."""
    from sources.iceberg import IcebergTable
    from sql.parse import parse_script
    from tables.kinds import TableEnv, table_kind
    from tables.spec import TableSpec

    decl = parse_script(sql_declaration + "SELECT 1 FROM s").declarations["market_stats"]
    spec = TableSpec.from_options(
        decl.name, decl.name, decl.primary_key, decl.options, decl.columns
    )
    env = TableEnv(data_dir=data_dir, secrets=secrets or {})
    table = table_kind(spec.name, spec.kind).create(spec, env)
    assert isinstance(table, IcebergTable)
    if open_now:
        table.open_sync()
    return table


def events(history: History) -> list[dict[str, Any]]:
    """Trades at every snapshot's commit time, between commits and before the first one."""
    times = [history.log[0][0] - 1000]
    for i, (ts, _) in enumerate(history.log):
        times.append(ts)
        nxt = history.log[i + 1][0] if i + 1 < len(history.log) else ts + 60_000
        times.append((ts + nxt) // 2)
    out: list[dict[str, Any]] = []
    for ts in times:
        for symbol in ("A", "B", "C", "D", "Z"):
            out.append({"id": len(out), "symbol": symbol, "ts": ts})
    return out
