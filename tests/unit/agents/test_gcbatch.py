"""The collector is off inside a batch and back on after it, whatever the block does."""

from __future__ import annotations

import gc

import pytest

from agents.gcbatch import collect_after


def test_off_inside_on_after_also_after_an_error() -> None:
    assert gc.isenabled()
    with collect_after():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="boom"), collect_after():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    try:
        with collect_after():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
