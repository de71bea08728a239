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


def int_alias(key: Any) -> int | None:
    """The int whose text is ``key`` exactly (``"42"`` → 42, ``"-7"`` → -7), else None.

    Caches in front of a table keep a row under the probe the query used, and queries probe
    integer keys with the int (no ``str()`` per lookup): a change of the key ``"42"`` must drop
    the entry under ``42`` too. Texts that ``int()`` accepts but that are not an int's own text
    (``"042"``, ``"4_2"``, ``" 42"``, other scripts' digits) are no alias: no int probe maps
    to them.
    """
    # The cheap test first: most text keys do not end in a digit.
    if type(key) is not str or not key[-1:].isdigit():
        return None
    try:
        as_int = int(key)
    except ValueError:
        return None
    return as_int if str(as_int) == key else None


def drop_key(cache: dict[Any, Any], key: Any) -> None:
    """Drop a changed table key from a cache in front of the table: the entry under ``key`` and
    the one under its :func:`int_alias`, if any (the int probe of the same row)."""
    cache.pop(key, None)
    alias = int_alias(key)
    if alias is not None:
        cache.pop(alias, None)
