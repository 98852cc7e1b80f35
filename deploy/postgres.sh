#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: installs the Debian packages if missing
# (postgresql, libpq-dev), creates a cluster in $LIKENESS_PG_DIR (default /tmp/likeness-pg) and
# starts it on 127.0.0.1:$LIKENESS_PG_PORT (default 55432), trust authentication on loopback only.
# As root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
# Source it to get LIKENESS_TEST_PG_URL exported (deploy/test.sh does); run it to print the URL.
# Stop it with: deploy/postgres.sh stop (exits 0, also when no server runs).
set -euo pipefail

_lk_pg_main() {
  local dir="${LIKENESS_PG_DIR:-/tmp/likeness-pg}" port="${LIKENESS_PG_PORT:-55432}"
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || ! dpkg -s libpq-dev >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql and libpq-dev from Debian" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql libpq-dev >&2
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    as=(runuser -u postgres --)
  fi
  if [ "${1:-}" = "stop" ]; then
    # Stopping a server that is not running (or was never created) is not an error.
    if [ -f "$dir/data/PG_VERSION" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    else
      echo "postgres.sh: no server running in $dir/data" >&2
    fi
    return 0
  fi
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      { echo "postgres.sh: the server did not start; see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; return 1; }
  fi
  export LIKENESS_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

_lk_pg_main "$@"
unset -f _lk_pg_main
# Run (not sourced) to start: print the URL. `stop` exports nothing, prints nothing, exits 0.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" != "stop" ]; then
  echo "LIKENESS_TEST_PG_URL=$LIKENESS_TEST_PG_URL"
fi
