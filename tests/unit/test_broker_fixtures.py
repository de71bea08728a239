"""Without Java/Maven the Kafka half of the suite is skipped, saying why — or fails under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_KAFKA_TEST = "tests/integration/tables/test_reference_table.py"


#: One plain pytest process, and two xdist ones as scripts/test.sh runs them: the skip reason and
#: the exit status must come through the xdist controller too.
PROCESSES = pytest.mark.parametrize(
    "processes", [(), ("-n", "2", "--dist", "loadgroup")], ids=["one-process", "xdist"]
)


def run_without_java(
    tmp_path: Path, ci: bool, processes: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TABLESTREAM_BROKER")}
    env["PATH"] = str(tmp_path)  # no java, no mvn (pytest runs from sys.executable)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_KAFKA_TEST,
         "-k", "kafka and malformed", *processes],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
@PROCESSES
def test_the_kafka_half_is_skipped_with_its_reason_in_the_summary(
    tmp_path: Path, processes: tuple[str, ...]
) -> None:
    done = run_without_java(tmp_path, ci=False, processes=processes)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "Apache Kafka half skipped: java and mvn not on PATH" in done.stdout


@pytest.mark.slow
@PROCESSES
def test_under_ci_a_missing_java_is_a_failure(tmp_path: Path, processes: tuple[str, ...]) -> None:
    done = run_without_java(tmp_path, ci=True, processes=processes)
    assert done.returncode != 0
    assert "1 error" in done.stdout
    assert "java and mvn not on PATH" in done.stdout
