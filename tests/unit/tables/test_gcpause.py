"""The restore's collector pause: counted across loaders, never enabling what others disabled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tables import gcpause


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_interleaved_pauses_resume_after_the_last() -> None:
    a, b = gcpause.paused(), gcpause.paused()
    a.__enter__()
    assert not gc.isenabled()
    b.__enter__()
    a.__exit__(None, None, None)  # the first loader's step ends while the second's runs
    assert not gc.isenabled()
    b.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    with gcpause.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_resumed_after_an_error() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("a step failed")
    assert gc.isenabled()
