#!/usr/bin/env bash
# The delivery endpoint's cached renditions (issue 14) against nginx serving the same files as
# static files from disk, in one run, side by side: requests per second and latency (p50, p99)
# from wrk, with Likeness's compliance check on (every request asks the in-memory allowed set).
#
#   cargo build --release -p likeness-control
#   bench/delivery.sh            # SQLite
#   bench/delivery.sh postgres   # or PostgreSQL (the server of deploy/postgres.sh)
#
# What it does: a fresh database, `migrate` + `create-admin` + `serve` (deploy/control-server.sh);
# bench/delivery_bench.py uploads FILES photos of ../shared/data/photos, gives them the legal
# basis `legitimate_interest`, waits until their delivery URLs serve, fetches RENDITIONS of each
# once through Likeness (generated, stored, then in memory) and writes the same bytes under an
# nginx root at the same paths; nginx (the Debian package, `worker_processes` = the server's
# HTTP workers, sendfile, open_file_cache, no access log) serves that root on another port; then
# PASSES rounds of `wrk -t THREADS -c CONNECTIONS -d DURATION --latency`, nginx and Likeness in
# turn (the order alternates per round) over the same list of URLs, round-robin.
# The result (medians over the rounds, and every round) goes to bench/results/delivery-<db>.json.
#
# Needs: nginx and wrk (apt-get install nginx wrk; installed here when missing).
# Environment: LIKENESS_CONTROL_BIN (default target/release/likeness-control), FILES (20),
# RENDITIONS ("thumb.jpg small.webp medium.jpg"), PASSES (3), DURATION (15s), THREADS (2),
# CONNECTIONS (64), HTTP_WORKERS (server.workers of Likeness and nginx's worker_processes;
# default nproc), RESULTS, PG_URL (default postgres://postgres@127.0.0.1:55432), BINARY_COMMIT
# (default the checkout's HEAD), KEEP=1 (keep the temporary directory).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${LIKENESS_CONTROL_BIN:-target/release/likeness-control}"
if [ ! -x "$bin" ]; then
  echo "delivery.sh: $bin is missing: cargo build --release -p likeness-control" >&2
  exit 1
fi
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx wrk >&2
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
backend="${1:-sqlite}"
results="${RESULTS:-bench/results/delivery-$backend.json}"
pg_base="${PG_URL:-postgres://postgres@127.0.0.1:55432}"
pg_db=likeness_delivery_bench
tenant=bench
workers="${HTTP_WORKERS:-$(nproc)}"

tmp="$(mktemp -d)"
server_pid=""
nginx_pid=""
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -f "$tmp/nginx.pid" ]; then
    kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  fi
  if [ "$backend" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
    psql -X -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "delivery.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^LIKENESS_CONTROL' || true)
case "$backend" in
  sqlite) db_url="$tmp/control.sqlite" ;;
  postgres)
    if ! psql -X -q "$pg_base/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
      # shellcheck source=deploy/postgres.sh
      source deploy/postgres.sh
    fi
    psql -X -q -v ON_ERROR_STOP=1 "$pg_base/postgres" \
      -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="$pg_base/$pg_db"
    ;;
  *) echo "delivery.sh: unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
esac
export LIKENESS_CONTROL__DATABASE__URL="$db_url"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
export LIKENESS_CONTROL__SERVER__WORKERS="$workers"
export LIKENESS_CONTROL__SERVER__COOKIE_SECURE=false
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
export LIKENESS_CONTROL__LOG__FILTER=warn
export LIKENESS_CONTROL__SIGNING__KEY_FILE="$tmp/evidence-signing.key"
export LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL="http://127.0.0.1:8080"

# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
echo "== $backend: migrate, create-admin, serve ($workers HTTP workers)" >&2
start_control_server "$bin" "$tmp" "$tenant" delivery-bench

nginx_port="$(free_port)"
mkdir -p "$tmp/www" "$tmp/nginx-temp"
# nginx's workers run as another user (www-data): they must reach the files.
chmod 755 "$tmp"
cat >"$tmp/nginx.conf" <<EOF
worker_processes $workers;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  types { image/jpeg jpg; image/webp webp; image/png png; video/mp4 mp4; }
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  open_file_cache_valid 60s;
  client_body_temp_path $tmp/nginx-temp;
  proxy_temp_path $tmp/nginx-temp;
  fastcgi_temp_path $tmp/nginx-temp;
  uwsgi_temp_path $tmp/nginx-temp;
  scgi_temp_path $tmp/nginx-temp;
  server {
    listen 127.0.0.1:$nginx_port;
    root $tmp/www;
    location /d/ { add_header Cache-Control "public, max-age=60, s-maxage=60"; }
  }
}
EOF

rc=0
"${PYTHON:-python3}" bench/delivery_bench.py "$base" "$token" "$tenant" "$tmp/www" \
  "http://127.0.0.1:$nginx_port" "$tmp/result.json" \
  --files "${FILES:-20}" --renditions "${RENDITIONS:-thumb.jpg small.webp medium.jpg}" \
  --passes "${PASSES:-3}" --duration "${DURATION:-15s}" --threads "${THREADS:-2}" \
  --connections "${CONNECTIONS:-64}" --nginx-cmd "$nginx_bin -c $tmp/nginx.conf" \
  --photos "${PHOTOS:-../shared/data/photos}" || rc=$?

if grep -q 'ERROR\|panicked' "$tmp/server.log"; then
  echo "delivery.sh: the server logged errors (last 10):" >&2
  grep 'ERROR\|panicked' "$tmp/server.log" | tail -10 >&2
fi

python3 - "$results" "$tmp/result.json" "$bin" "$backend" "$tmp/server.log" "$workers" "$nginx_bin" <<'PY'
import json, os, subprocess, sys
out, result, binary, backend, log, workers, nginx = sys.argv[1:8]
def sh(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
res = {
    "command": "bench/delivery.sh " + backend,
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
    "binary": binary,
    "commit": os.environ.get("BINARY_COMMIT") or sh("git rev-parse --short HEAD"),
    "backend": backend,
    "http_workers": int(workers),
    "nginx": sh(f"{nginx} -v 2>&1"),
    "wrk": sh("wrk -v 2>&1 | head -1"),
    "machine": {"nproc": sh("nproc"), "cpu": sh("lscpu | grep 'Model name' | sed 's/.*: *//'"),
                "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
                "loadavg_after": sh("cat /proc/loadavg")},
    "server_errors": int(sh(f"grep -c ERROR {log} || true") or 0),
}
if os.path.exists(result):
    res.update(json.load(open(result)))
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
open(out, "a").write("\n")
print(f"delivery.sh: results in {out}", file=sys.stderr)
PY
exit "$rc"
