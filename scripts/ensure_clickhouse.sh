#!/usr/bin/env bash
# Installs Debian's ClickHouse server (18.16) for the ClickHouse tests (tests/support/clickhouse.py)
# when no server binary is here (neither an official `clickhouse` on PATH nor clickhouse-server).
# The package's own service is never started (policy-rc.d in containers; the tests run their
# own server on free ports, as the clickhouse user). Needs root (CI runs as root on a clean
# machine); waits for another apt run's lock.
set -euo pipefail
if command -v clickhouse > /dev/null || [ -x /usr/sbin/clickhouse-server ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure_clickhouse: no ClickHouse server here and this is not root: run 'apt-get install -y clickhouse-server'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends clickhouse-server > /dev/null
# The package enables its service; nothing here runs it.
test -x /usr/sbin/clickhouse-server
