#!/usr/bin/env bash
# Server time of the admin console's pages with 100,000 files, 10,000 persons and 200,000 faces,
# on SQLite and on PostgreSQL (issue 12, target p95 <= 100 ms).
#
#   cargo build --release -p likeness-control
#   bench/console_pages.sh                # both databases
#   bench/console_pages.sh sqlite         # or: postgres
#
# Per database: a fresh database (SQLite: a temporary file; PostgreSQL: the database
# likeness_console_bench, dropped and created again, on the server of deploy/postgres.sh),
# `migrate` + `create-admin` + `serve` through deploy/control-server.sh, the server stopped, a
# second admin with a known password created, the archive seeded by bench/seed_console.py
# (direct SQL), the server started again, and bench/console_pages.py logs in, checks that the
# seeded rows read back through the REST API and times each page (N sequential requests after
# WARMUP, keep-alive, loopback).
#
# Environment: LIKENESS_CONTROL_BIN (default target/release/likeness-control), N (200), WARMUP
# (20), PG_URL (default postgres://postgres@127.0.0.1:55432; started with deploy/postgres.sh if it
# does not answer), RESULTS (default bench/results/console-pages.json), PERSONS_DEEP / FILES_DEEP
# (paths of the deep pages, see bench/console_pages.py), SEED_ASSETS / SEED_PERSONS / SEED_FACES
# (defaults 100000 / 10000 / 200000), BINARY_COMMIT (the commit the binary was built from, for the
# results file; default the checkout's HEAD), SQLITE_ANALYZE=1 (run ANALYZE on the seeded SQLite file,
# which the server itself never does), KEEP=1 (keep the temporary directory and the database).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${LIKENESS_CONTROL_BIN:-target/release/likeness-control}"
if [ ! -x "$bin" ]; then
  echo "console_pages.sh: $bin is missing: cargo build --release -p likeness-control" >&2
  exit 1
fi
backends=("$@")
[ "${#backends[@]}" -gt 0 ] || backends=(sqlite postgres)
pg_base="${PG_URL:-postgres://postgres@127.0.0.1:55432}"
pg_db=likeness_console_bench
results="${RESULTS:-bench/results/console-pages.json}"
tenant=bench
email=bench@bench.test
password="pw-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"

tmp="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  stop_server
  if [ "${KEEP:-0}" = 1 ]; then
    echo "console_pages.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

# Starts `serve` again on the seeded database (start_control_server did the first start).
serve_again() {
  local dir="$1" line
  rm -f "$dir/server.out"
  "$bin" serve >"$dir/serve-again.out" 2>>"$dir/server.log" &
  server_pid=$!
  base=""
  for _ in $(seq 1 300); do
    line="$(head -n1 "$dir/serve-again.out" 2>/dev/null || true)"
    if [ -n "$line" ]; then
      base="http://$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["listening"]["http"])' "$line")"
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "console_pages.sh: the server exited" >&2; cat "$dir/server.log" >&2; return 1; }
    sleep 0.1
  done
  echo "console_pages.sh: the server announced no address" >&2
  return 1
}

# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh

run_backend() {
  local backend="$1" dir="$tmp/$1" db_url seed_args t0 t1
  mkdir -p "$dir"
  while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^LIKENESS_CONTROL' || true)
  case "$backend" in
    sqlite)
      db_url="$dir/control.sqlite"
      seed_args=(--sqlite "$db_url")
      [ "${SQLITE_ANALYZE:-0}" = 1 ] && seed_args+=(--analyze)
      ;;
    postgres)
      if ! psql -X -q "$pg_base/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
        # shellcheck source=deploy/postgres.sh
        source deploy/postgres.sh
      fi
      psql -X -q -v ON_ERROR_STOP=1 "$pg_base/postgres" \
        -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" >/dev/null
      db_url="$pg_base/$pg_db"
      seed_args=(--postgres "$db_url")
      ;;
    *) echo "console_pages.sh: unknown backend $backend (sqlite or postgres)" >&2; return 1 ;;
  esac
  export LIKENESS_CONTROL__DATABASE__URL="$db_url"
  export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
  export LIKENESS_CONTROL__SERVER__COOKIE_SECURE=false
  export LIKENESS_CONTROL__STORAGE__DIR="$dir/blobs"
  export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
  export LIKENESS_CONTROL__LOG__FILTER=warn

  echo "== $backend: migrate, create-admin, serve (deploy/control-server.sh)" >&2
  start_control_server "$bin" "$dir" "$tenant" console-pages
  stop_server
  LIKENESS_ADMIN_PASSWORD="$password" "$bin" create-admin --tenant "$tenant" --email "$email" >/dev/null

  echo "== $backend: seeding" >&2
  t0=$(date +%s.%N)
  python3 bench/seed_console.py "${seed_args[@]}" --tenant "$tenant" --targets "$dir/targets.json" \
    --assets "${SEED_ASSETS:-100000}" --persons "${SEED_PERSONS:-10000}" --faces "${SEED_FACES:-200000}"
  t1=$(date +%s.%N)
  seed_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
  echo "== $backend: seeded in $seed_s s; audit chain: $("$bin" audit verify)" >&2

  serve_again "$dir"
  echo "== $backend: timing the pages on $base" >&2
  python3 bench/console_pages.py "$base" "$tenant" "$email" "$password" "$dir/targets.json" \
    "$backend" "$dir/result.json" | tee "$dir/table.md"
  local rc=${PIPESTATUS[0]}
  [ -f "$dir/result.json" ] && python3 - "$dir/result.json" "$dir/targets.json" "$seed_s" <<'PY'
import json, sys
path, targets, seed_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
r = json.load(open(path))
r["seed_seconds"] = seed_s
r["seeded"] = json.load(open(targets))
json.dump(r, open(path, "w"), indent=2)
PY
  if grep -q 'ERROR\|panicked' "$dir/server.log"; then
    echo "console_pages.sh: $backend: the server logged errors:" >&2
    grep 'ERROR\|panicked' "$dir/server.log" | tail -20 >&2
  fi
  stop_server
  if [ "$backend" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
    psql -X -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null || true
  fi
  return "$rc"
}

status=0
for b in "${backends[@]}"; do
  run_backend "$b" || status=1
done

# One results file: machine, command, date, commit and each database's rows.
python3 - "$results" "$tmp" "$bin" "${backends[@]}" <<'PY'
import json, os, subprocess, sys
out, tmp, binary, backends = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def sh(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
res = {
    "command": "bench/console_pages.sh " + " ".join(backends),
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
    "binary": binary,
    # The commit the binary was built from (BINARY_COMMIT when it is not the checkout's HEAD).
    "commit": os.environ.get("BINARY_COMMIT") or sh("git rev-parse --short HEAD"),
    "sqlite_analyze": os.environ.get("SQLITE_ANALYZE") == "1",
    "machine": {"nproc": sh("nproc"), "cpu": sh("lscpu | grep 'Model name' | sed 's/.*: *//'"),
                "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
                "loadavg_after": sh("cat /proc/loadavg")},
    "postgres": sh("psql -X -Atc 'SHOW server_version' postgres://postgres@127.0.0.1:55432/postgres 2>/dev/null"),
    "results": {},
}
for b in backends:
    p = os.path.join(tmp, b, "result.json")
    if os.path.exists(p):
        res["results"][b] = json.load(open(p))
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
open(out, "a").write("\n")
print(f"console_pages.sh: results in {out}", file=sys.stderr)
PY
exit "$status"
