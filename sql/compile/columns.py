"""Column reads: the closure reading one column of the environment, specialised per case (a
stream or a table row, a pseudo-column, a declared type to convert to, a JSON path), and its
inlinable description for generated code. The hot path of every query."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sql.bind.scope import META_INDEX, TIME_COLUMNS, Ref
from sql.runtime import Env, Fn, Read, ScaledRead, row_key
from sql.types import ANY, JSON, converter, decimal_context, event_timestamp

#: A plain column read: (value slot, column name, Python type kept as is or None, converter).


def _converts(ref: Ref, typed_streams: bool) -> bool:
    """Whether reading ``ref`` converts the value to the column's declared type: declared
    columns do, except a stream's when its records arrive decoded into those types already."""
    rel = ref.relation
    assert rel is not None
    if typed_streams and rel.is_stream:
        return False
    return rel.schema.declared and ref.type not in (ANY, JSON)


def inline_read(ref: Ref, typed_streams: bool = False) -> Read | None:
    """What :func:`column_reader` does, for generated code to inline: ``e[vs].get(name)``, the
    value kept when of type ``py`` (else converted), or None when it is not a plain read."""
    rel = ref.relation
    if ref.alias_fn is not None or rel is None or ref.pseudo or ref.path:
        return None
    conv = converter(ref.type) if _converts(ref, typed_streams) else None
    if conv is None:
        return rel.value_slot, ref.name, None, None
    py = {"DOUBLE": float, "BIGINT": int, "STRING": str, "BOOLEAN": bool}.get(ref.type.name)
    return None if py is None else (rel.value_slot, ref.name, py, conv)


def scaled_read(ref: Ref, typed_streams: bool = False) -> ScaledRead | None:
    """What :func:`column_reader` does for a scaled DECIMAL column it converts, for generated
    code to inline (:data:`sql.runtime.ScaledRead`), or None for any other read."""
    rel = ref.relation
    if ref.alias_fn is not None or rel is None or ref.pseudo or ref.path:
        return None
    if ref.type.name != "DECIMAL" or ref.type.scale is None or not _converts(ref, typed_streams):
        return None
    conv = converter(ref.type)
    assert conv is not None
    quantum = Decimal(1).scaleb(-ref.type.scale)
    return rel.value_slot, ref.name, quantum, decimal_context(ref.type.precision), conv


def column_reader(ref: Ref, typed_streams: bool = False) -> Fn:
    """The closure reading one column: the hot path of everything, so specialised per case."""
    if ref.alias_fn is not None:
        return ref.alias_fn
    rel = ref.relation
    assert rel is not None
    vs, ms, name = rel.value_slot, rel.meta_slot, ref.name
    if ref.pseudo:
        if not rel.is_stream:
            # A table row's meta slot holds the key that found it, as probed: its text form
            # is made here, on the rare read, not on every lookup.
            def base(e: Env) -> Any:
                k = e[ms]
                return k if k is None or type(k) is str else row_key(k)

        elif name == "_key":
            # Drivers may pass the message key as its bytes: decoded on read, not per record.
            def base(e: Env) -> Any:
                k = e[ms][0]
                return k.decode("utf-8", "replace") if type(k) is bytes else k

        elif name in TIME_COLUMNS:
            i = META_INDEX[name]
            base = lambda e: event_timestamp(e[ms][i])  # noqa: E731 - TIMESTAMP(3)
        else:
            i = META_INDEX[name]
            base = lambda e: e[ms][i]  # noqa: E731
    else:
        conv = converter(ref.type) if _converts(ref, typed_streams) else None
        if conv is None:
            base = lambda e: e[vs].get(name)  # noqa: E731
        else:
            py = {
                "DECIMAL": Decimal,
                "DOUBLE": float,
                "BIGINT": int,
                "STRING": str,
                "BOOLEAN": bool,
            }
            exact = py.get(ref.type.name)
            scale = ref.type.scale

            if exact is Decimal and scale is not None:
                quantum = Decimal(1).scaleb(-scale)
                ctx = decimal_context(ref.type.precision)  # refuses more than p digits

                def base(e: Env) -> Any:
                    v = e[vs].get(name)
                    if v is None:
                        return None
                    if type(v) is Decimal and v.is_finite():
                        # Cheaper than reading the exponent; a no-op when the scale fits.
                        # (Positional arguments: keywords cost _decimal 3x here.)
                        try:
                            return v.quantize(quantum, None, ctx)
                        except ArithmeticError:
                            pass  # too many digits: conv raises the CastError
                    return conv(v)  # NaN/Infinity: conv raises the CastError
            elif exact is not None:

                def base(e: Env) -> Any:
                    v = e[vs].get(name)
                    return v if v is None or type(v) is exact else conv(v)
            else:

                def base(e: Env) -> Any:
                    v = e[vs].get(name)
                    return None if v is None else conv(v)

    if not ref.path:
        return base
    path = ref.path

    def walk(e: Env) -> Any:
        v = base(e)
        for p in path:
            if isinstance(v, dict):
                v = v.get(p)
            else:
                return None
        return v

    return walk
