#!/usr/bin/env bash
# Creates or updates .venv with tablestream and its dev tools. Safe to run again: it reinstalls
# only when pyproject.toml or requirements-dev.lock changed since the last install.
#
# Reproducible: the pinned versions of requirements-dev.lock first (scripts/lock.sh writes it),
# then tablestream itself. When the lock is older than pyproject.toml (a dependency was added or
# changed since scripts/lock.sh ran), pyproject's own requirements are installed on top of the
# lock, and this script says so: the lock is then a floor, not the whole truth.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LOCK=requirements-dev.lock
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "tablestream needs Python >= 3.11 (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tablestream-installed
project=$(sha256sum pyproject.toml | cut -d' ' -f1)
want=$(cat pyproject.toml "$LOCK" 2> /dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing tablestream and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ -f "$LOCK" ]; then
    .venv/bin/python -m pip install --quiet -r "$LOCK"
  else
    echo "== no $LOCK: installing from pyproject.toml's ranges (scripts/lock.sh writes it)"
  fi
  if [ -f "$LOCK" ] && grep -qx "# pyproject.toml sha256: $project" "$LOCK"; then
    .venv/bin/python -m pip install --quiet --no-deps -e .
  else
    [ -f "$LOCK" ] && echo "== $LOCK is stale (pyproject.toml changed since scripts/lock.sh ran):" \
      "installing pyproject.toml's dependencies on top of it; run scripts/lock.sh to refresh it"
    .venv/bin/python -m pip install --quiet -e '.[dev]'
  fi
  echo "$want" > "$stamp"
fi
