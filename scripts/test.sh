#!/usr/bin/env bash
# The whole test suite: sets up .venv, then pytest (which also runs ruff and mypy, and starts the
# brokers itself). Extra arguments go to pytest. Exits non-zero on any failure.
#
# Two pytest-xdist processes by default (TABLESTREAM_TEST_PROCESSES=N to change, 0 for one plain
# pytest process): most of the suite waits on brokers and worker processes, not on the CPU.
# --dist loadgroup keeps each broker kind's tests in one process (tests/conftest.py), so every
# session broker starts once in the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONDONTWRITEBYTECODE=1
processes=${TABLESTREAM_TEST_PROCESSES:-2}
parallel=()
if [ "$processes" != 0 ]; then
  parallel=(-n "$processes" --dist loadgroup)
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider ${parallel[@]+"${parallel[@]}"} "$@"
