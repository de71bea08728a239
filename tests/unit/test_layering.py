"""The layering rules of docs and STYLE.md, checked on the source (a static check, like ruff).

- other modules use a module's public names only (no ``from x import _y`` across modules);
- the environment is read at the edge only (app/settings.py and the broker launcher);
- app/ and sql/ reach the table protocols through ``tables``' public API;
- what ``tables`` re-exports (its ``__all__``) is imported from ``tables``, not from the module
  behind it;
- packages import along the data flow only: core <- tables <- sql, sources <- agents <- app.

``KNOWN`` lists what is still left to fix (see each entry); new code must not add to it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "core", "sql", "tables", "agents", "sources")

#: (file, module, name) private imports still to remove.
KNOWN_PRIVATE: set[tuple[str, str, str]] = set()
#: Files that may read the environment: settings, and the command-line edges of their own (the
#: broker launcher, ``python -m sql``). Sources get secrets through ``TableEnv.secrets``.
ENV_READERS = {
    "app/settings.py",
    "app/broker/kafka.py",
    "sql/__main__.py",
}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb"}
#: Modules of app/ and sql/ still importing tables.protocol directly.
KNOWN_PROTOCOL_IMPORTS: set[str] = set()
#: Modules still importing a name ``tables`` re-exports from the module behind it (their owners
#: change them to ``from tables import ...``).
KNOWN_TABLES_INTERNALS = {
    "agents/compiling.py",
    "agents/fused.py",
    "agents/pipeline.py",
    "agents/process.py",
    "agents/stateful.py",
    "sources/clickhouse.py",
    "sources/duckdb.py",
    "sources/iceberg.py",
    "sources/iceberg_reads.py",
    "sources/iceberg_snapshots.py",
    "sources/lookup.py",
    "sources/postgres.py",
    "sources/snapshot.py",
    "sources/table.py",
}


@functools.cache
def sources() -> list[tuple[str, ast.Module]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            out.append((rel, ast.parse(path.read_text(), filename=rel)))
    return out


def module_of(rel: str) -> str:
    name = rel.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def test_no_private_names_imported_across_modules() -> None:
    found = set()
    for rel, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                continue
            if node.module == module_of(rel):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((rel, node.module, alias.name))
    assert found <= KNOWN_PRIVATE, sorted(found - KNOWN_PRIVATE)


def test_environment_is_read_at_the_edge_only() -> None:
    found = set()
    for rel, tree in sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ENV_NAMES
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                found.add(rel)
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and {a.name for a in node.names} & ENV_NAMES
            ):
                found.add(rel)
    assert found <= ENV_READERS, sorted(found - ENV_READERS)


def test_app_and_sql_import_the_table_protocols_from_tables() -> None:
    found = set()
    for rel, tree in sources():
        if not rel.startswith(("app/", "sql/")):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tables.protocol":
                found.add(rel)
    assert found <= KNOWN_PROTOCOL_IMPORTS, sorted(found - KNOWN_PROTOCOL_IMPORTS)


def test_what_tables_exports_is_imported_from_tables() -> None:
    import tables

    public = set(tables.__all__)
    found = set()
    for rel, tree in sources():
        if rel.startswith("tables/"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").startswith("tables.")
                and {a.name for a in node.names} & public
            ):
                found.add(rel)
    assert found <= KNOWN_TABLES_INTERNALS, sorted(found - KNOWN_TABLES_INTERNALS)


#: The packages each package may import (the data flow: a topic becomes a table, queries and
#: external sources read tables, agents run queries, the app wires agents). A table that needed
#: an agent's helper got it moved down to ``core`` instead (core/fetch.py).
MAY_IMPORT = {
    "core": set(),
    "tables": {"core"},
    "sql": {"core", "tables"},
    "sources": {"core", "tables"},
    "agents": {"core", "tables", "sql", "sources"},
    "app": {"core", "tables", "sql", "sources", "agents"},
}


def test_packages_import_along_the_data_flow() -> None:
    found = set()
    for rel, tree in sources():
        own = rel.split("/")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != own and top not in MAY_IMPORT[own]:
                    found.add((rel, name))
    assert not found, sorted(found)


def test_the_checks_see_the_tree() -> None:
    # A check that reads no files passes vacuously: make sure the walk finds the packages.
    files = [rel for rel, _ in sources()]
    assert "app/settings.py" in files
    assert "sql/plan/shape.py" in files
    assert len(files) > 100
