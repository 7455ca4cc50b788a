#!/usr/bin/env bash
# A PostgreSQL server for the registry's tests, from Debian's `postgresql`:
#   scripts/postgres.sh install   apt-get install postgresql when initdb is missing (as root)
#   scripts/postgres.sh start     initdb a cluster in $PG_DIR (once) and run it on 127.0.0.1:$PG_PORT;
#                                 prints the registry URL (no password) on stdout
#   scripts/postgres.sh stop      stop it (fast shutdown); a stopped server is not an error
#   scripts/postgres.sh url       the URL again, without starting anything
# The cluster listens on loopback only and asks for a password (scram-sha-256): user and
# database `driftline`, the password generated at initdb in $PG_DIR/password (mode 600). A
# client reads it from the environment (PGPASSWORD or ~/.pgpass), never from the URL.
# PostgreSQL refuses to run as root: as root the server runs as $PG_USER (Debian's `postgres`,
# made when missing) and owns $PG_DIR/data; otherwise it runs as the current user.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PG_PORT="${PG_PORT:-23543}"
PG_DIR="${PG_DIR:-$root/.cache/postgres}"
PG_USER="${PG_USER:-postgres}"
data="$PG_DIR/data"
say() { echo "postgres.sh: $*" >&2; }

bindir() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return; fi
  found="$(command -v initdb 2>/dev/null)" && { dirname "$(readlink -f "$found")"; return; }
  return 1
}

install() {
  bindir >/dev/null && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL not found: as root, apt-get install postgresql"; exit 1
  fi
  local start=$SECONDS
  say "apt-get install postgresql"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql) >/dev/null
  say "postgresql installed in $((SECONDS - start)) s"
}

as_server() {  # run a server binary as the user that owns the cluster
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

url() { echo "postgresql://driftline@127.0.0.1:$PG_PORT/driftline"; }

start() {
  install
  local bin; bin="$(bindir)"
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data" "$PG_DIR/run"
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$PG_DIR/password")
    if [ "$(id -u)" = 0 ]; then
      chown "$PG_USER" "$data" "$PG_DIR/run"
      cp "$PG_DIR/password" "$PG_DIR/run/pwfile"; chown "$PG_USER" "$PG_DIR/run/pwfile"
    else
      cp "$PG_DIR/password" "$PG_DIR/run/pwfile"
    fi
    chmod 700 "$data"
    as_server "$bin/initdb" -D "$data" -U driftline --pwfile="$PG_DIR/run/pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale >/dev/null
    rm -f "$PG_DIR/run/pwfile"
    as_server "$bin/postgres" --single -D "$data" postgres <<<"CREATE DATABASE driftline;" >/dev/null
  fi
  if as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then url; return; fi
  as_server "$bin/pg_ctl" -D "$data" -l "$PG_DIR/run/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/run -c fsync=off" >/dev/null \
    || { say "the server did not start; its log:"; tail -n 20 "$PG_DIR/run/server.log" >&2; exit 1; }
  url
}

stop() {
  local bin; bin="$(bindir)" || return 0
  [ -s "$data/PG_VERSION" ] || return 0
  if as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: scripts/postgres.sh install|start|stop|url" >&2; exit 2 ;;
esac
