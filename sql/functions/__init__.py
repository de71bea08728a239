"""The one function registry: every SQL function the engine runs, described once.

Binding checks a call's arity and argument types against it, compilation builds the call's
closure from it, ``suggest`` offers its names for typos, and docs/SQL.md's function table is
generated from it (``python -m sql.functions``; a test keeps the two equal). Each function module
registers its entries on import; add a module here when you add one.
"""

from __future__ import annotations

from sql.functions import aggregates, scalar, temporal
from sql.functions.registry import (
    BY_NODE,
    REGISTRY,
    Arg,
    Function,
    Null,
    UnsupportedCallError,
    call_args,
    call_name,
    lookup,
    register,
)

#: Syntax that reads like a function call but is not one (offered as suggestions too).
SYNTAX_NAMES = ("CAST", "TRY_CAST", "CASE")

__all__ = [
    "BY_NODE",
    "REGISTRY",
    "SYNTAX_NAMES",
    "Arg",
    "Function",
    "Null",
    "UnsupportedCallError",
    "aggregates",
    "call_args",
    "call_name",
    "docs_table",
    "functions",
    "lookup",
    "names",
    "register",
    "scalar",
    "temporal",
]


def functions() -> list[Function]:
    """Every registered function once (aliases folded), by kind then name."""
    seen: dict[int, Function] = {id(f): f for f in REGISTRY.values()}
    return sorted(seen.values(), key=lambda f: (f.kind != "scalar", f.name))


def names() -> list[str]:
    """Every callable name, aliases included, plus the call-like syntax: for suggestions."""
    return [*REGISTRY, *SYNTAX_NAMES]


def docs_table() -> str:
    """The Markdown table docs/SQL.md shows between its ``functions`` markers."""
    # Pipes inside a cell would end it: escaped as Markdown wants.
    rows = [
        "| function | kind | arguments | NULL | what it returns |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in functions():
        kinds = ", ".join(a.label for a in f.args)
        rows.append(f"| `{f.signature}` | {f.kind} | {kinds} | {f.null.value} | {f.doc} |")
    return "\n".join(rows)
