#!/usr/bin/env bash
# Set up from a fresh clone and run the whole suite: unit tests (no network), then
# integration tests against a real Kafka broker that this script starts (scripts/kafka.sh).
# Extra arguments go to pytest, e.g. scripts/test.sh -k recovery
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
# Below the kernel's ephemeral range (32768-60999 here): an outgoing connection of the suite
# can otherwise hold the broker's port (or its controller's, +1000) when it starts.
export KAFKA_PORT="${KAFKA_TEST_PORT:-28092}"
bootstrap="$(scripts/kafka.sh start)"
export DRIFTLINE_TEST_BOOTSTRAP="${bootstrap#bootstrap.servers=}"
echo "== unit tests and doctests" >&2
.venv/bin/python -m pytest tests/unit src -q "$@"
echo "== integration tests against $DRIFTLINE_TEST_BOOTSTRAP" >&2
.venv/bin/python -m pytest tests/integration -q --durations=15 "$@"
echo "== fault-injection suite (CI size) against $DRIFTLINE_TEST_BOOTSTRAP" >&2
FAULTS_REPORT="${FAULTS_REPORT:-$root/.cache/faults-report.jsonl}" \
    .venv/bin/python -m pytest tests/faults -m faults -q "$@"
