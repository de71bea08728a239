"""The README's first command, run for a few seconds: outputs follow live table changes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from app.broker import Broker, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_demo_pipeline_outputs_follow_table_changes(broker: Broker, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TABLESTREAM_BROKER": broker.url,
        "DEMO_DIR": str(tmp_path / "demo"),
        "TABLESTREAM_WEB_PORT": str(free_port()),
    }
    result = subprocess.run(
        [
            "./scripts/demo.sh",
            "--duration",
            "20",
            "--rate",
            "20",
            "--every",
            "1.5",
            "--users",
            "50",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    log = (tmp_path / "demo" / "worker.log").read_text(errors="replace")
    assert result.returncode == 0, out + result.stderr + log[-5000:]
    assert "seeded 50 users and 4 limits" in out
    # The inspector's URL, printed by the script and by the generator once the worker is ready.
    assert f"== inspector: http://127.0.0.1:{env['TABLESTREAM_WEB_PORT']}/" in out
    assert f"worker ready; inspector: http://127.0.0.1:{env['TABLESTREAM_WEB_PORT']}/" in out
    # Rows of all three continuous queries were printed from their output topics.
    for sink in ("[checked_orders]", "[gold_orders]", "[volume_by_symbol]"):
        assert sink in out, out
    for status in ("-> accepted", "-> over limit", "-> unknown symbol", "-> blocked user"):
        assert status in out, out
    # Every probe decided by a table change saw that change; several of each kind ran.
    summary = re.search(
        r"probes ok=(\d+) failed=(\d+); malformed=(\d+); valid orders dead-lettered=(\d+)", out
    )
    assert summary is not None, out
    ok, failed, malformed, valid_dead = map(int, summary.groups())
    assert failed == 0, out
    assert ok >= 6, out
    assert malformed >= 1, out
    assert "PROBE FAILED" not in out
    # The dead letters read back from the topic: each malformed order, once per query that reads
    # orders, and no valid order — none late, none for any other reason.
    assert valid_dead == 0, out
    reasons = dict(re.findall(r"^dead letters: (query:\S+ [^:]+): (\d+)$", out, re.M))
    assert reasons == {
        f"query:{q} value is not valid JSON": str(malformed)
        for q in ("checked_orders", "gold_orders", "volume_by_symbol")
    }, out
    assert not re.search(r"^dead letters: \S+ late: ", out, re.M), out
