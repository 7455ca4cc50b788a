#!/usr/bin/env bash
# The live demo from a fresh clone: venv + install, a local Kafka broker, topics, the
# processor, and a drifting stream replayed into it. The broker keeps running afterwards.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export KAFKA_PORT="${KAFKA_PORT:-9092}"
bootstrap="$(scripts/kafka.sh start)"
export DRIFTLINE_BOOTSTRAP_SERVERS="${bootstrap#bootstrap.servers=}"
if [ -z "${DRIFTLINE_SNAPSHOT_KEY:-}" ]; then
  echo "demo.sh: DRIFTLINE_SNAPSHOT_KEY is not set; using a throwaway demo key (never do this in production)" >&2
  export DRIFTLINE_SNAPSHOT_KEY="demo-only-$(date +%s)-$RANDOM"
fi
name="demo-$(date +%Y%m%d-%H%M%S)"
.venv/bin/driftline --name "$name" --preset hoeffding_tree --log-level WARNING -c deploy/demo.toml demo "$@"
# The demo printed the live page's URL while it ran, and the commands to explore its topics
# (with --bootstrap: they work as printed), the last of which writes the drift report.
cat <<MSG

The report of the last version (self-contained HTML, no JavaScript):
  .venv/bin/driftline --name $name -c deploy/demo.toml report -o report.html
The live page runs with the processor: .venv/bin/driftline ... run --admin-port 8080, then open
  http://127.0.0.1:8080/dashboard

The broker is still running on $DRIFTLINE_BOOTSTRAP_SERVERS.
Stop it with: KAFKA_PORT=$KAFKA_PORT scripts/kafka.sh stop
MSG
