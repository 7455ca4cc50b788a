#!/usr/bin/env bash
# The drift benchmark (docs/drift-benchmark.md): concept drift per detector and policy, data
# drift, Elec2, and one run through the processor on a real broker.
# Usage: scripts/bench_drift.sh [extra args for scripts/bench/drift_bench.py]
# Needs a broker for the "broker" section: KAFKA_PORT=9092 scripts/kafka.sh start
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" scripts/bench/drift_bench.py --out bench-results/drift.json "$@"
