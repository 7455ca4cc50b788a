#!/usr/bin/env bash
# The benchmark suite: Driftline against River's bare loop and two peers, on a
# real local Kafka broker. One command:
#
#   scripts/bench.sh            # full run (~15-20 min): tables, bench-results/*.json,
#                               # and docs/benchmarks.md + docs/benchmarks.png rewritten
#   scripts/bench.sh --quick    # ~3-4 min smoke run: tables and bench-results/ only
#   scripts/bench.sh --quick --docs            # also rewrite the docs from a quick run
#   scripts/bench.sh --sections throughput,profile --models logistic_regression
#   scripts/bench.sh --sections scaling --no-docs   # keyed mode: 1 vs 2 workers with CPU
#                               # shares, fail-over after kill -9, rebalance cost (~10 min)
#
# Sets up .venv with the `bench` extra (scripts/setup.sh), the faust peer's own venv in
# .cache/venv-faust (faust-streaming cannot share Driftline's venv: see
# scripts/bench/peers/requirements-faust.txt), starts a broker with scripts/kafka.sh on
# KAFKA_PORT (default 49092, so it does not collide with the test broker) and stops it
# at the end if this script started it (--keep-broker to leave it running).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

docs=1 keep=0 quick=0
suite_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; docs=0; suite_args+=(--quick) ;;
    --docs) docs=2 ;;
    --no-docs) docs=0 ;;
    --keep-broker) keep=1 ;;
    --sections|--models|--peers) suite_args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$docs" = 2 ] && docs=1

DRIFTLINE_EXTRAS="${DRIFTLINE_EXTRAS:-test,bench,faust}" scripts/setup.sh

faust_venv=.cache/venv-faust
faust_req=scripts/bench/peers/requirements-faust.txt
faust_stamp="$faust_venv/.installed"
if [ "$(cat "$faust_stamp" 2>/dev/null)" != "$(sha256sum < "$faust_req" | cut -c1-16)" ]; then
  echo "bench.sh: installing the faust peer's venv ($faust_venv)" >&2
  mkdir -p .cache
  [ -x "$faust_venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$faust_venv"
  if "$faust_venv/bin/python" -m pip install -q -r "$faust_req"; then
    sha256sum < "$faust_req" | cut -c1-16 > "$faust_stamp"
  else
    echo "bench.sh: the faust peer could not be installed; its column will show the error" >&2
  fi
fi

export KAFKA_PORT="${KAFKA_PORT:-49092}"
started=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then started=1; fi
boot="$(scripts/kafka.sh start | cut -d= -f2)"
cleanup() { if [ "$started" = 1 ] && [ "$keep" = 0 ]; then scripts/kafka.sh stop || true; fi; }
trap cleanup EXIT

mkdir -p bench-results
cmd="scripts/bench.sh"
[ "$quick" = 1 ] && cmd="$cmd --quick"
.venv/bin/python scripts/bench/suite.py --bootstrap "$boot" --command "$cmd" "${suite_args[@]}"
render_args=()
[ "$docs" = 1 ] && render_args+=(--docs)
.venv/bin/python scripts/bench/render.py bench-results/latest.json "${render_args[@]}"
