#!/usr/bin/env bash
# The whole test suite: sets up .venv, then pytest (which also runs ruff and mypy, and starts the
# embedded broker itself). Extra arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
