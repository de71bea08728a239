from __future__ import annotations

from decimal import Decimal

import pytest

from core import codec


def test_decimal_round_trip_keeps_digits_and_scale() -> None:
    value = codec.loads_exact(b'{"px": 22.50, "n": 3, "big": 12345678901234567890.123456789}')
    assert value == {
        "px": Decimal("22.50"),
        "n": 3,
        "big": Decimal("12345678901234567890.123456789"),
    }
    assert codec.dumps(value) == b'{"px":22.50,"n":3,"big":12345678901234567890.123456789}'


def test_non_finite_decimal_is_refused() -> None:
    with pytest.raises(TypeError):
        codec.dumps(Decimal("NaN"))


def test_fast_decoder_raises_the_shared_error() -> None:
    with pytest.raises(codec.JSONDecodeError):
        codec.loads(b"{x")
    with pytest.raises(codec.JSONDecodeError):
        codec.loads_exact(b"{x")
