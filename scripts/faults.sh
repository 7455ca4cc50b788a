#!/usr/bin/env bash
# Set up and run the fault-injection suite (tests/faults) against a real Kafka broker.
#
#   scripts/faults.sh                 # CI size (a few minutes)
#   scripts/faults.sh --soak          # soak size: >=100 kill -9s over 1,000,000 events, ...
#   FAULTS_SCALE=5 scripts/faults.sh  # CI sizes times 5
#   scripts/faults.sh -k crash        # extra arguments go to pytest
#
# The shared test broker runs on KAFKA_TEST_PORT (default 28092); the broker-restart and
# secured-cluster scenarios start their own brokers on other ports (29192; 29592 + SASL_SSL 29593).
# Measured figures are appended as JSON lines to FAULTS_REPORT (default .cache/faults-report.jsonl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
args=()
for arg in "$@"; do
    case "$arg" in
        --soak) export FAULTS_SOAK=1 ;;
        *) args+=("$arg") ;;
    esac
done
scripts/setup.sh
export KAFKA_PORT="${KAFKA_TEST_PORT:-28092}"
bootstrap="$(scripts/kafka.sh start)"
export DRIFTLINE_TEST_BOOTSTRAP="${bootstrap#bootstrap.servers=}"
mkdir -p .cache
export FAULTS_REPORT="${FAULTS_REPORT:-$root/.cache/faults-report.jsonl}"
echo "== fault-injection suite against $DRIFTLINE_TEST_BOOTSTRAP (soak=${FAULTS_SOAK:-0}, scale=${FAULTS_SCALE:-1})" >&2
.venv/bin/python -m pytest tests/faults -m faults -q -p no:cacheprovider "${args[@]}"
