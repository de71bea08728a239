#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml with pip-compile (pip-tools):
#   requirements.lock      the runtime dependencies, pinned (the Dockerfile installs these)
#   requirements-dev.lock  runtime + the `dev` and `demo` extras (scripts/bootstrap.sh)
# Run it after changing a dependency in pyproject.toml and commit both files. Each file ends with
# the sha256 of the pyproject.toml it was compiled from: bootstrap.sh says when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./scripts/bootstrap.sh
if ! .venv/bin/python -m piptools --version > /dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet 'pip-tools>=7.5,<8'
fi
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
compile() {
  local out=$1
  shift
  echo "== $out"
  # --upgrade: newest versions within pyproject's bounds, not the old lock's pins.
  .venv/bin/python -m piptools compile --quiet --upgrade --strip-extras --no-emit-index-url --no-emit-find-links \
    --output-file "$out" "$@" pyproject.toml
  echo "# pyproject.toml sha256: $hash" >> "$out"
}
compile requirements.lock
compile requirements-dev.lock --extra dev --extra demo
