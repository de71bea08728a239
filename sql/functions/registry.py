"""The function registry's vocabulary: what one SQL function is, and the table of all of them.

A :class:`Function` says everything the engine needs about a name (in the spirit of sqlglot's
``executor/env.py``): how many arguments, which argument types it accepts (checked when the query
compiles), its result type, what it does with NULL, the Python callable that computes it, and
the line docs/SQL.md shows. Binding, compilation, "did you mean" suggestions and the docs table
all read :data:`REGISTRY`; adding a function is one :func:`register` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlglot import exp

from sql.types import ANY, SqlType


class Null(Enum):
    """What a function does with NULL arguments."""

    #: Any NULL argument makes the result NULL; ``impl`` never sees ``None``.
    STRICT = "NULL if any argument is NULL"
    #: ``impl`` receives the values, NULLs included, and decides (NULLIF).
    VALUES = "decides per value"
    #: ``build`` receives the argument closures and evaluates them lazily (COALESCE, IF).
    LAZY = "evaluates arguments lazily"
    #: Aggregates skip NULL inputs (COUNT(*) counts rows).
    SKIP = "NULL inputs skipped"


@dataclass(frozen=True, slots=True)
class Arg:
    """One accepted argument kind: a static check at compile time, a value check at run time.

    The value check runs only for arguments of unknown static type (undeclared columns), so a
    mistyped value is a per-record :class:`~sql.errors.RuntimeTypeError`, never a Python error.
    """

    label: str  # as the error and the docs name it: VARCHAR, numeric, ...
    accepts: Callable[[SqlType], bool]
    value_ok: Callable[[Any], bool]
    #: The type an explicit CAST would give (named in the error's hint), if any.
    cast_to: str | None = None

    def check_type(self, t: SqlType) -> bool:
        return t.is_any or self.accepts(t)


@dataclass(frozen=True, slots=True)
class Function:
    """One SQL function. Exactly one of ``impl`` (on values) and ``build`` (on closures) is set."""

    name: str
    args: tuple[Arg, ...]
    result: SqlType | Callable[[list[SqlType]], SqlType]
    doc: str
    signature: str
    impl: Callable[..., Any] | None = None
    build: Callable[[list[Callable[[list[Any]], Any]]], Callable[[list[Any]], Any]] | None = None
    null: Null = Null.STRICT
    #: Trailing arguments that may be left out.
    optional: int = 0
    #: The last argument kind repeats (COALESCE).
    variadic: bool = False
    #: sqlglot node classes the parser turns this function into (``LEN`` → ``exp.Length``).
    nodes: tuple[type[exp.Expr], ...] = ()
    #: Other spellings accepted when sqlglot has no node class for the name.
    aliases: tuple[str, ...] = ()
    #: Same arguments, same result: constant arguments fold at compile time. NOW() is not.
    deterministic: bool = True
    kind: str = "scalar"  # or "aggregate"
    #: The argument expressions of a call when sqlglot stores them unusually (default: every
    #: expression argument in declaration order, see :func:`call_args`).
    args_of: Callable[[exp.Expr], list[exp.Expr]] | None = None
    #: Aggregates: (append-only factory, retractable factory), and the DISTINCT variant.
    accumulators: tuple[Callable[[], Any], Callable[[], Any]] | None = None
    distinct_accumulators: tuple[Callable[[], Any], Callable[[], Any]] | None = None

    @property
    def min_args(self) -> int:
        return len(self.args) - self.optional

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.args)

    @property
    def arity_text(self) -> str:
        """``1 argument``, ``1 to 2 arguments``, ``at least 1 argument``: for errors."""
        lo, hi = self.min_args, self.max_args
        if hi is None:
            return f"at least {lo} argument{'s' * (lo != 1)}"
        if lo == hi:
            return f"{lo} argument{'s' * (lo != 1)}"
        return f"{lo} to {hi} arguments"

    def arg_kind(self, i: int) -> Arg:
        return self.args[min(i, len(self.args) - 1)]

    def result_type(self, types: Sequence[SqlType]) -> SqlType:
        r = self.result
        return r if isinstance(r, SqlType) else r(list(types))


#: Upper-case name (and alias) → function.
REGISTRY: dict[str, Function] = {}
#: sqlglot node class → function.
BY_NODE: dict[type[exp.Expr], Function] = {}


def register(fn: Function) -> Function:
    """Add ``fn``; a second function of the same name or node class is a programming error."""
    for name in (fn.name, *fn.aliases):
        if name.upper() in REGISTRY:
            raise ValueError(f"function {name} registered twice")
        REGISTRY[name.upper()] = fn
    for node in fn.nodes:
        if node in BY_NODE:
            raise ValueError(f"sqlglot node {node.__name__} registered twice")
        BY_NODE[node] = fn
    return fn


def lookup(node: exp.Expr) -> Function | None:
    """The function a parsed call stands for, if any."""
    fn = BY_NODE.get(type(node))
    if fn is not None:
        return fn
    if isinstance(node, exp.Anonymous):
        return REGISTRY.get(str(node.this).upper())
    return None


def call_name(node: exp.Expr) -> str:
    """The name a person wrote (or sqlglot's canonical one) for an error message."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).upper()
    if isinstance(node, exp.Func):
        return node.sql_name()
    return type(node).__name__.upper()


def _is_string(t: SqlType) -> bool:
    return t.name == "STRING"


def _is_numeric(t: SqlType) -> bool:
    return t.is_numeric


def _is_integer(t: SqlType) -> bool:
    return t.name == "BIGINT"


def _is_boolean(t: SqlType) -> bool:
    return t.name == "BOOLEAN"


def _anything(t: SqlType) -> bool:
    return True


def _number_value(v: Any) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


STRING_ARG = Arg("VARCHAR", _is_string, lambda v: isinstance(v, str), "VARCHAR")
NUMERIC_ARG = Arg("a number", _is_numeric, _number_value, "DECIMAL")
INTEGER_ARG = Arg(
    "BIGINT", _is_integer, lambda v: isinstance(v, int) and not isinstance(v, bool), "BIGINT"
)
BOOLEAN_ARG = Arg("BOOLEAN", _is_boolean, lambda v: isinstance(v, bool), "BOOLEAN")
ANY_ARG = Arg("any type", _anything, lambda v: True)


def call_args(node: exp.Expr, fn: Function | None = None) -> list[exp.Expr]:
    """The argument expressions of a call, in the order sqlglot declares them.

    A non-expression argument (``TRIM(LEADING ...)``'s position) has no place in a registry
    signature: it is returned as the node itself so the caller reports it as unsupported.
    """
    if fn is not None and fn.args_of is not None:
        return fn.args_of(node)
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    out: list[exp.Expr] = []
    for key in node.arg_types:
        v = node.args.get(key)
        if v is None or isinstance(v, bool):  # flags such as COALESCE's is_nvl
            continue
        if isinstance(v, list):
            out.extend(x for x in v if isinstance(x, exp.Expr))
        elif isinstance(v, exp.Expr):
            out.append(v)
        else:
            raise UnsupportedCallError(key)
    return out


class UnsupportedCallError(Exception):
    """A call form the registry cannot describe (an argument that is a keyword, not a value)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def same_type(types: list[SqlType]) -> SqlType:
    """Result type of the first argument (ABS, ROUND keep their input's type)."""
    return types[0] if types else ANY
