"""SQL modulo on DECIMAL: the sign of the dividend, and no negative zero (as PostgreSQL/DuckDB)."""

from __future__ import annotations

from decimal import Decimal

from sql import logic


def test_decimal_remainder_zero_has_no_sign() -> None:
    r = logic.mod(-2, Decimal("-1.00"))
    assert str(r) == "0.00"
    assert str(logic.mod(Decimal("-4.0"), 2)) == "0.0"


def test_decimal_remainder_keeps_the_dividends_sign() -> None:
    assert logic.mod(Decimal("-7.5"), 2) == Decimal("-1.5")
    assert logic.mod(Decimal("7.5"), -2) == Decimal("1.5")
