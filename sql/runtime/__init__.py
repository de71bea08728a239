"""The runtime vocabulary shared by compilation and the operators, below both of them.

A compiled query is closures over one *env* (a Python list, one slot per relation value and
metadata, see ``sql.bind.scope.Slots``). ``sql.compile`` builds closures and operators,
``sql.operators`` runs them; both import these names from here and neither imports the other's
internals for them, so there is no import circle between the two packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sql.types import SqlType
from tables.keys import key_text

#: The evaluation environment of one record: slot values read by compiled closures.
Env = list[Any]
#: A compiled expression or row source: env in, value out.
Fn = Callable[[Env], Any]
#: A plain column read, for generated code to inline: (slot, field, Python type, converter).
Read = tuple[int, str, type | None, Fn | None]
#: A read of a scaled DECIMAL column of a table row, for generated code to inline: (slot, field,
#: quantum, context, converter) — a finite Decimal quantized under the context, anything else
#: (or a quantize that fails) through the converter, as :func:`sql.compile.columns.column_reader`.
ScaledRead = tuple[int, str, Any, Any, Fn]


@dataclass(slots=True)
class Compiled:
    """A compiled expression: its closure and static type (and value, when constant)."""

    fn: Fn
    type: SqlType
    const: bool = False
    value: Any = None
    #: What ``fn`` does when it is a plain column read, for generated code to inline.
    read: Read | None = None
    #: What ``fn`` does when it reads a scaled DECIMAL column (converted on every read).
    scaled: ScaledRead | None = None


def constant(value: Any, t: SqlType) -> Compiled:
    return Compiled(lambda e: value, t, True, value)


def row_key(k: Any) -> str:
    """The text form of a key that found a row (ints and strings, the common keys, inline)."""
    tk = type(k)
    if tk is str:
        return k  # type: ignore[no-any-return]
    if tk is int:
        return str(k)
    return key_text(k)


__all__ = ["Compiled", "Env", "Fn", "Read", "ScaledRead", "constant", "row_key"]
