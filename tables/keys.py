"""Table keys are compared by their text form, as Kafka compares message keys by their bytes.

A keyed topic cannot hold both ``5`` and ``"5"`` (both are the message key ``b"5"``), and a
tombstone carries only the message key, so the text form is the one identity every path agrees on.
Numbers that are equal as SQL values share a form: ``5``, ``5.0`` and ``Decimal("5.00")`` are "5".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def key_text(key: Any) -> str:
    """The canonical text of a key value (raises TypeError for objects, arrays and NULL)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return str(int(key)) if key.is_integer() else repr(key)
    if isinstance(key, Decimal):
        if not key.is_finite():
            raise TypeError(f"key {key} is not a finite number")
        if key == key.to_integral_value():
            return str(int(key))
        return format(key.normalize(), "f")
    if isinstance(key, bytes):
        return key.decode("utf-8")
    raise TypeError(f"a {type(key).__name__} cannot be a table key")


def key_bytes(key: Any) -> bytes:
    return key_text(key).encode("utf-8")
