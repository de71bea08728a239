"""The generated fold's DECIMAL SUM result (:mod:`sql.codegen.fold_output`): without integers
summed, it is the accumulator's ``exact`` itself instead of ``ADD(exact, 0)`` as
:meth:`sql.runtime.accumulators.Sum.result` computes it. Both must be the same value written the
same way (sign, exponent, digits) for every sum a Sum can hold: built by its own adds and
removes from ``Decimal(0)``, and after a state round trip."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sql.runtime.accumulators import Sum
from sql.runtime.state import load_state, to_state
from sql.types import DECIMAL_CONTEXT

decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.decimals(allow_nan=False, allow_infinity=False),  # any exponent, above 0 too
    st.sampled_from([Decimal("-0.00"), Decimal("-0"), Decimal("0E+3"), Decimal("-0E-7")]),
    st.integers(-(10**60), 10**60).map(lambda i: Decimal(i).scaleb(-30)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.booleans(), decimals), max_size=12))
def test_exact_is_its_own_result_without_integers(ops: list[tuple[bool, Decimal]]) -> None:
    acc = Sum()
    for add, v in ops:
        if add:
            acc.add(v)
        else:
            acc.remove(v)
    restored = load_state(Sum(), to_state(acc))
    assert isinstance(restored, Sum)
    for a in (acc, restored):
        assert a.ints == 0
        again = DECIMAL_CONTEXT.add(a.exact, a.ints)
        assert str(a.exact) == str(again)
        assert a.exact.as_tuple() == again.as_tuple()
