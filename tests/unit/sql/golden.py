"""Reads and (with SQL_GOLDEN_UPDATE=1) rewrites the golden plan fixtures in tests/fixtures/sql.

A fixture file holds cases::

    -- case: <name>
    <SQL, possibly several lines>
    -- plan:
    --   <expected EXPLAIN line>

Each case's SQL runs after the shared declarations in ``_schema.sql`` over empty tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sql import Catalog, compile_query
from sql.parse import parse_script
from tables.kinds import TableEnv, table_kind
from tables.memory import MemoryTable
from tables.protocol import Table
from tables.spec import TableSpec

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sql"
SCHEMA = FIXTURES / "_schema.sql"


@dataclass
class Case:
    file: Path
    name: str
    sql: str
    expected: list[str] | None


def read_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    name, in_plan = "", False
    sql: list[str] = []
    plan: list[str] = []
    for line in [*path.read_text().splitlines(), "-- case: <end>"]:
        if line.startswith("-- case:"):
            if name:
                cases.append(Case(path, name, "\n".join(sql).strip(), plan if in_plan else None))
            name, sql, plan, in_plan = line[len("-- case:") :].strip(), [], [], False
        elif line.startswith("-- plan:"):
            in_plan = True
        elif in_plan and line.startswith("--"):
            plan.append(line[len("--   ") :] if line.startswith("--   ") else line[3:])
        elif not in_plan:
            sql.append(line)
    return cases


def explain(sql: str) -> list[str]:
    schema = SCHEMA.read_text()
    decls = parse_script(schema).declarations
    tables: dict[str, Table] = {
        d.name: MemoryTable(
            d.name,
            key_field=d.primary_key,
            versions=int(d.options["versions"]) if "versions" in d.options else None,
        )
        for d in decls.values()
        if d.kind == "table" and "connector" not in d.options
    }
    for d in decls.values():  # external tables: built by their kind, never connected
        if d.kind == "table" and "connector" in d.options:
            spec = TableSpec.from_options(d.name, d.name, d.primary_key, d.options, d.columns)
            tables[d.name] = table_kind(d.name, spec.kind).create(spec, TableEnv())
    q = compile_query(schema + sql, Catalog.of(tables))
    try:
        return q.explain().splitlines()
    finally:
        q.close()


def write_cases(path: Path, cases: list[Case]) -> None:
    out: list[str] = []
    for c in cases:
        out.append(f"-- case: {c.name}")
        out.append(c.sql)
        out.append("-- plan:")
        out.extend(f"--   {line}" for line in c.expected or [])
    path.write_text("\n".join(out) + "\n")


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.sql") if not p.name.startswith("_"))
