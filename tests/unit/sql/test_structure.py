"""The engine's layering, checked on the import statements themselves.

- ``sql.runtime`` (the env, closures, accumulators) sits below ``sql.compile`` and
  ``sql.operators``; operators never import compilation.
- Planner rules (``sql.plan``) describe plans; they import neither compilation nor operators,
  so they cannot build live structures.
- Other packages use ``sql``'s public API (``from sql import ...``) only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _imports(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("sql/runtime", ("sql.compile", "sql.operators", "sql.plan", "sql.bind")),
        ("sql/operators", ("sql.compile", "sql.plan")),
        ("sql/plan", ("sql.compile", "sql.operators")),
        ("sql/functions", ("sql.compile", "sql.operators", "sql.plan")),
    ],
)
def test_layers(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p in _modules(package)
        for m in _imports(p)
        if m.startswith(forbidden)
    ]
    assert not bad


@pytest.mark.parametrize("package", ["agents", "app", "tables", "bench", "core"])
def test_other_packages_use_the_public_api(package: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p in _modules(package)
        for m in _imports(p)
        if m.startswith("sql.")
    ]
    assert not bad, "import these from `sql` (export them in sql/__init__.py)"
