#!/usr/bin/env bash
# The demo: sets up .venv, starts the embedded broker (or uses $TABLESTREAM_BROKER), runs
# `faust -A app worker` with the
# pipeline examples/orders/pipeline.sql (reference tables users and limits, an orders stream, three
# continuous queries), then produces orders and changes the tables live while printing the outputs.
# Ctrl-C stops everything. `scripts/demo.sh --duration 30` stops by itself after 30 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

DEMO_DIR=${DEMO_DIR:-.demo}
WEB_PORT=${TABLESTREAM_WEB_PORT:-6066}
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -n "${TABLESTREAM_BROKER:-}" ]; then
  BROKER=$TABLESTREAM_BROKER  # a running broker (the tests run the demo on Tansu and on Kafka)
  echo "== broker from TABLESTREAM_BROKER: $BROKER"
else
  .venv/bin/python -m app.broker > "$DEMO_DIR/broker.url" 2> "$DEMO_DIR/broker.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$DEMO_DIR/broker.url" ] && break; sleep 0.1; done
  BROKER=$(head -1 "$DEMO_DIR/broker.url")
  echo "== embedded broker (Tansu) on $BROKER"
fi

export TABLESTREAM_BROKER=$BROKER
export TABLESTREAM_PIPELINE=examples/orders/pipeline.sql
export TABLESTREAM_DATA_DIR=$DEMO_DIR/data
export TABLESTREAM_WEB_PORT=$WEB_PORT
export TABLESTREAM_SESSION_TIMEOUT=${TABLESTREAM_SESSION_TIMEOUT:-6}
.venv/bin/faust -A app worker -l info > "$DEMO_DIR/worker.log" 2>&1 &
pids+=($!)
echo "== worker: faust -A app worker (log: $DEMO_DIR/worker.log)"
echo "== inspector: http://127.0.0.1:$WEB_PORT/  (JSON: /tables/  ·  /tables/users/42  ·  /queries/)"

.venv/bin/python -m examples.orders.generate --broker "$BROKER" \
  --web "http://127.0.0.1:$WEB_PORT" --dlq "${TABLESTREAM_DLQ_TOPIC:-tablestream-dlq}" "$@"
