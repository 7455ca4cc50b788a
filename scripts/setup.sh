#!/usr/bin/env bash
# Create .venv/ at the repo root and install Driftline with its pinned dependencies.
# Idempotent: re-running only installs what changed. Prerequisites: Python 3.11+.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "setup.sh: Python 3.11+ is required (found $("$python" --version 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  echo "setup.sh: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.driftline-installed
extras="${DRIFTLINE_EXTRAS:-test,faust,otel}"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup.sh: installing driftline[$extras] into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
fi
# Debian packages the tests use, installed as root after apt-get update when missing
# (quick once there): promtool and amtool (tests/unit/deploy/test_prometheus.py) and the
# Prometheus server of the dashboard-queries test (prometheus, prometheus-alertmanager);
# chromium for the live page's browser test, driven by playwright, which downloads no
# browser. In a container they start no daemon; on a host with systemd the Prometheus
# services start too (the tests use their own loopback ports).
case ",$extras," in
  *,test,*)
    missing=()
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    if [ "${#missing[@]}" -gt 0 ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: apt-get install ${missing[*]}" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          "${missing[@]}") >/dev/null \
          || echo "setup.sh: WARNING: apt-get install ${missing[*]} failed; the tests that use them will fail" >&2
      else
        echo "setup.sh: WARNING: missing ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
      fi
    fi ;;
esac
# The validators of tests/unit/deploy (kubeconform, compose-check, Kubernetes schemas) in
# .cache/deploy-tools/; instant once installed. Without Go this warns and goes on (the demo
# does not need them); those tests then fail and say how to install them.
case ",$extras," in
  *,test,*) scripts/deploy_tools.sh \
    || echo "setup.sh: WARNING: deploy validators not installed; tests/unit/deploy will fail" >&2
    # The AsyncAPI parser that tests/unit/docs/test_asyncapi.py runs on docs/asyncapi.json,
    # pinned by scripts/asyncapi/package-lock.json, in .cache/asyncapi/node_modules.
    if ! command -v npm >/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup.sh: installing nodejs and npm (apt-get)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
      else
        echo "setup.sh: WARNING: npm not found (install Node.js 18+); tests/unit/docs/test_asyncapi.py will fail" >&2
      fi
    fi
    lock="$(sha256sum scripts/asyncapi/package-lock.json | cut -c1-16)"
    if command -v npm >/dev/null && [ "$(cat .cache/asyncapi/.installed 2>/dev/null)" != "$lock" ]; then
      echo "setup.sh: installing the AsyncAPI parser into .cache/asyncapi" >&2
      mkdir -p .cache/asyncapi
      cp scripts/asyncapi/package.json scripts/asyncapi/package-lock.json .cache/asyncapi/
      (cd .cache/asyncapi && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
        && echo "$lock" > .cache/asyncapi/.installed \
        || echo "setup.sh: WARNING: AsyncAPI parser not installed; tests/unit/docs/test_asyncapi.py will fail" >&2
    fi ;;
esac
# The servers of tests/integration/shared: SeaweedFS (S3) built from the Go module proxy into
# .cache/seaweedfs/, PostgreSQL from Debian. Instant once there.
case ",$extras," in
  *,test,*) scripts/seaweedfs.sh >/dev/null \
    || echo "setup.sh: WARNING: SeaweedFS not built; tests/integration/shared will fail" >&2
    scripts/postgres.sh install \
    || echo "setup.sh: WARNING: PostgreSQL not installed; tests/integration/shared will fail" >&2 ;;
esac
