"""The README's first command, run for a few seconds: the table follows live changes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_demo_script_shows_the_table_following_its_topic(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEMO_DIR": str(tmp_path / "demo"),
        "TABLESTREAM_WEB_PORT": str(free_port()),
    }
    result = subprocess.run(
        ["./scripts/demo.sh", "--duration", "8", "--rate", "4", "--users", "300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "worker table ready: 300 rows" in out
    changes = [line for line in out.splitlines() if "-> GET /tables/users/" in line]
    assert len(changes) >= 5, out
    # Every change the generator made is what the worker's web view answered right after.
    disagreements = [line for line in changes if "web view says" in line]
    assert not disagreements, out
    assert "final table stats:" in out
