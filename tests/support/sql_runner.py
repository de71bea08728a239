"""The offline runner (``python -m sql run``) driven by tests: as a subprocess and in-process.

Shared by the runner's contract tests and the window tests that run through it (a test module
is no library: they import these from here rather than from each other).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from sql.runner import main

ROOT = Path(__file__).resolve().parents[2]


def write(tmp: Path, name: str, text: str) -> str:
    """``text`` into ``tmp/name``; its path, as the runner's arguments take it."""
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``python -m sql run ARGS`` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sql", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_inproc(args: list[str]) -> tuple[int, str, str]:
    """The same through ``sql.runner.main`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()
