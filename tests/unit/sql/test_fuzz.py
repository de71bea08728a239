"""Fuzzing the compiler: any mutation of a valid query compiles or raises the project's error
with a line and column, never another exception (issue 11 found RecursionError, ValueError,
decimal.InvalidOperation and IndexError this way).

Bounded: a fixed number of examples per test, no deadline per example (the machine is shared),
about half a minute in all. The larger offline campaign is ``bench/sql_fuzz.py``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sql import Catalog
from tests.support.sql_fuzz import KEYWORDS, WEIRD, catalog, mutate, outcome, seeds

SEEDS = seeds()
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def shared_catalog() -> Catalog:
    return catalog()


def _assert_typed(sql: str, cat: Catalog) -> None:
    result = outcome(sql, cat)
    assert result.kind in ("ok", "typed"), f"{type(result.error).__name__}: {result.error}\n{sql!r}"


def test_every_seed_compiles(shared_catalog: Catalog) -> None:
    for sql in SEEDS:
        result = outcome(sql, shared_catalog)
        assert result.kind == "ok", (sql, result.error)


@FUZZ
@given(seed=st.sampled_from(SEEDS), rng_seed=st.integers(0, 2**32 - 1))
def test_random_mutations(seed: str, rng_seed: int) -> None:
    """The campaign's mutations (token deletion, duplication, swaps, stray keywords, deep
    nesting, long IN lists, unicode and control characters), drawn by hypothesis."""
    _assert_typed(mutate(seed, random.Random(rng_seed), heavy=False), catalog())


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.floats(0, 1),
    insert=st.one_of(
        st.sampled_from(KEYWORDS + WEIRD),
        st.text(min_size=1, max_size=8),
    ),
)
def test_insertions(seed: str, cut: float, insert: str) -> None:
    """Arbitrary text (any unicode, NUL included) inserted anywhere."""
    i = int(cut * len(seed))
    _assert_typed(seed[:i] + insert + seed[i:], catalog())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.sampled_from(SEEDS), start=st.floats(0, 1), length=st.integers(1, 40))
def test_truncations_and_deletions(seed: str, start: float, length: int) -> None:
    i = int(start * len(seed))
    _assert_typed(seed[:i] + seed[i + length :], catalog())
    _assert_typed(seed[:i], catalog())
