"""The restore's collector pause: counted across loaders, never enabling what others disabled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core import gcpause


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


def full_collections(resumes: int, periodic_full: bool) -> int:
    """Full collections during ``resumes`` pauses (automatic ones kept out by high thresholds)."""
    seen = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    thresholds = gc.get_threshold()
    gc.set_threshold(1_000_000, 1_000, 1_000)
    gc.callbacks.append(watch)
    try:
        for _ in range(resumes):
            with gcpause.paused(periodic_full=periodic_full):
                pass
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*thresholds)
    return len(seen)


def test_a_restore_collects_fully_every_so_often_a_query_batch_never() -> None:
    assert full_collections(2 * gcpause.FULL_EVERY, periodic_full=True) == 2
    assert full_collections(2 * gcpause.FULL_EVERY, periodic_full=False) == 0
