#!/usr/bin/env bash
# Webhook delivery under load (issue 14) with a real `likeness-control serve` (release build)
# and the real receiver (deploy/webhook-receiver.py, verifying every request with the Standard
# Webhooks reference library from PyPI, installed by deploy/webhook-deps.sh): throughput of
# consent.withdrawn webhooks, a backlog queued while the receiver answers 503, and the receiver
# stopped for a minute: nothing lost, duplicates counted (bench/webhooks_bench.py explains each
# phase).
#
#   cargo build --release -p likeness-control
#   bench/webhooks.sh              # SQLite
#   bench/webhooks.sh postgres     # PostgreSQL (the server of deploy/postgres.sh)
#
# Environment: LIKENESS_CONTROL_BIN (default target/release/likeness-control), N (1000),
# OUTAGE (60 s), OUTAGE_N (500), RESULTS (default bench/results/webhooks-<backend>.json), PG_URL
# (default postgres://postgres@127.0.0.1:55432), BINARY_COMMIT (the commit the binary was built
# from; default the checkout's HEAD), KEEP=1 (keep the temporary directory). The server runs
# with the default [webhooks] settings (poll 200 ms, 16 requests in flight, 10 s timeout).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${LIKENESS_CONTROL_BIN:-target/release/likeness-control}"
if [ ! -x "$bin" ]; then
  echo "webhooks.sh: $bin is missing: cargo build --release -p likeness-control" >&2
  exit 1
fi
backend="${1:-sqlite}"
pg_base="${PG_URL:-postgres://postgres@127.0.0.1:55432}"
pg_db=likeness_webhooks_bench
results="${RESULTS:-bench/results/webhooks-$backend.json}"
tenant=bench
python="$(deploy/webhook-deps.sh)"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$backend" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
    psql -X -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "webhooks.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
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
  *) echo "webhooks.sh: unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
esac
export LIKENESS_CONTROL__DATABASE__URL="$db_url"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
export LIKENESS_CONTROL__SERVER__COOKIE_SECURE=false
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
export LIKENESS_CONTROL__LOG__FILTER=warn
export LIKENESS_CONTROL__SIGNING__KEY_FILE="$tmp/evidence-signing.key"

# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
echo "== $backend: migrate, create-admin, serve" >&2
start_control_server "$bin" "$tmp" "$tenant" webhooks-bench

rc=0
"$python" bench/webhooks_bench.py "$base" "$token" "$tmp/result.json" --python "$python" \
  --n "${N:-1000}" --outage "${OUTAGE:-60}" --outage-n "${OUTAGE_N:-500}" || rc=$?

python3 - "$results" "$tmp/result.json" "$bin" "$backend" "$tmp/server.log" "$python" <<'PY'
import json, os, subprocess, sys
out, result, binary, backend, log, py = sys.argv[1:7]
def sh(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
res = {
    "command": "bench/webhooks.sh " + backend,
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
    "binary": binary,
    "commit": os.environ.get("BINARY_COMMIT") or sh("git rev-parse --short HEAD"),
    "backend": backend,
    "receiver": "deploy/webhook-receiver.py, standardwebhooks "
                + sh(py + " -c 'import importlib.metadata as m; print(m.version(\"standardwebhooks\"))'"),
    "webhooks_config": "defaults: poll_ms 200, concurrency 16, timeout_ms 10000, max_attempts 15",
    "machine": {"nproc": sh("nproc"), "cpu": sh("lscpu | grep 'Model name' | sed 's/.*: *//'"),
                "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
                "loadavg_after": sh("cat /proc/loadavg")},
    "server_warnings": int(sh(f"grep -c WARN {log} || true") or 0),
    "server_errors": int(sh(f"grep -c ERROR {log} || true") or 0),
}
if os.path.exists(result):
    res.update(json.load(open(result)))
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(res, open(out, "w"), indent=2)
open(out, "a").write("\n")
print(f"webhooks.sh: results in {out}", file=sys.stderr)
PY
if grep -q 'ERROR\|panicked' "$tmp/server.log"; then
  echo "webhooks.sh: the server logged errors (last 10):" >&2
  grep 'ERROR\|panicked' "$tmp/server.log" | tail -10 >&2
fi
exit "$rc"
