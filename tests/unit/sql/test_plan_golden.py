"""Golden plans: each planner rule's fixture file maps queries to their expected EXPLAIN."""

from __future__ import annotations

import os

import pytest

from sql.plan.planner import RULES
from tests.unit.sql.golden import Case, explain, fixture_files, read_cases, write_cases

CASES = [c for f in fixture_files() for c in read_cases(f)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.file.stem}:{c.name}")
def test_plan_matches_golden(case: Case) -> None:
    assert case.expected is not None, "run with SQL_GOLDEN_UPDATE=1 to record the plan"
    assert explain(case.sql) == case.expected


def test_every_rule_has_a_fixture_file() -> None:
    names = {f.stem for f in fixture_files()}
    assert {r.__name__ for r in RULES} <= names


def test_every_rule_is_chosen_somewhere() -> None:
    """Each rule's fixture file really exercises that rule (its strategy name appears)."""
    strategy = {
        "key_lookup": "key lookup",
        "index_probe": "index probe",
        "remote_probe": "remote probe",
        "maintained_in": "maintained IN-set",
        "maintained_exists": "maintained EXISTS count",
        "maintained_aggregate": "maintained aggregate",
        "cached_result": "maintained result",
        "full_scan": "FULL SCAN",
    }
    for f in fixture_files():
        if f.stem in strategy:
            for c in read_cases(f):
                assert any(strategy[f.stem] in line for line in c.expected or []), (f.stem, c.name)


if os.environ.get("SQL_GOLDEN_UPDATE") == "1":  # pragma: no cover - maintenance helper

    def test_update_golden() -> None:
        for f in fixture_files():
            cases = read_cases(f)
            for c in cases:
                c.expected = explain(c.sql)
            write_cases(f, cases)
