"""The output half of the generated stateless batch function (:mod:`sql.codegen.batch`): the
projected row of a record that passed the joins and the late WHERE terms, its key, its bytes,
appended to the sink's open record batch (the C record builder called inline).

The stateful generator's counterpart is :mod:`sql.codegen.fold_output`.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from sql.codegen.batch_spec import Encoding
from sql.codegen.expr import ExprGen
from sql.codegen.writer import Writer
from sql.plan.shape import StreamShape


def write_output(w: Writer, gen: ExprGen, shape: StreamShape, enc: Encoding, keyed: bool) -> None:
    """The lines that project the record's row, key and encode it and append it to the sink.
    ``keyed``: the namespace holds ``key_of`` (the output key of a row); else the source
    record's key is the output's."""
    values = [gen.compiled(c) for c in shape.outputs]
    names = shape.names
    items = ", ".join(f"{n!r}: {v}" for n, v in zip(names, values, strict=True))
    as_dict = f"{{{items}}}"
    key = "rec.key"
    # The fast encoder writes a struct of the output columns as it writes their dict (the
    # same names in the same order), at ~1,400 fewer instructions per row; the key
    # function and the reference encoder read the dict.
    struct = enc.fast is not None and not keyed and len(set(names)) == len(names)
    if struct:
        out_type = w.bind(_output_struct(names), "Out")
        w.line(f"row = {out_type}({', '.join(values)})")
    else:
        w.line(f"row = {as_dict}")
    if keyed:
        w.line("key = key_of(row)")
        key = "key"
    slow = f"enc_slow({as_dict})" if struct else "enc_slow(row)"
    if enc.fast is None:
        w.line(f"out = {slow}")
    else:
        with w.block("try:"):
            w.line("out = enc_fast(row)")
        with w.block("except (TypeError, ValueError, OverflowError):"):
            w.line(f"out = {slow}")
        if enc.scan_nonfinite:
            # The fast encoder writes NaN/Infinity decimals; the reference refuses them. A
            # DECIMAL output not known finite is checked (as agents.codec.make_encoder does).
            dec = w.bind(Decimal, "T")
            checks = [
                f"(type({v}) is {dec} and not {v}.is_finite())"
                for c, v in zip(shape.outputs, values, strict=True)
                if c.type.name == "DECIMAL" and v not in gen.finite and v != "None"
            ]
            if checks:
                with w.block(f"if {' or '.join(checks)}:"):
                    w.line(f"out = {slow}")
    # The sink's C record builder called inline (sql.codegen.sink).
    with w.block(f"if append(n_rec, None, {key}, out, NO_HEADERS) is None:"):
        w.line("n_out += n_rec")
        w.line("append, n_rec = sink.roll(n_rec)")
        with w.block(f"if append(0, None, {key}, out, NO_HEADERS) is None:"):
            w.line(f"sink.too_large({key}, out)")
    w.line("n_rec += 1")


def _output_struct(names: list[str]) -> type:
    """A struct of the output columns, in order, encoded under their names (no GC: it holds
    scalars and lives until its row is encoded)."""
    fields = [f"f{i}" for i in range(len(names))]
    return msgspec.defstruct(
        "Output", fields, rename=dict(zip(fields, names, strict=True)), gc=False
    )
