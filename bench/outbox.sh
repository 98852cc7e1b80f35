#!/usr/bin/env bash
# The outbox under load (issue 13): 1,000 signing requests through the outbox into a real SMTP
# server with a real `likeness-control serve` (release build): messages per second, then a second
# 1,000 during which the SMTP server is stopped for 30 s and started again: none lost, none sent
# twice (every outbox message looked for by its Message-ID in the Maildir).
#
#   cargo build --release -p likeness-control
#   bench/outbox.sh                 # SQLite
#   bench/outbox.sh postgres        # or PostgreSQL (the server of deploy/postgres.sh)
#   bench/outbox.sh sqlite latency  # instead: from the person's code to the file's compliance
#                                   # (bench/signing_latency.py, N=200 signings and withdrawals)
#   bench/outbox.sh sqlite publishing  # instead: from a withdrawal to the delivery URL's 451 and
#                                   # the verified asset.hidden webhook, with delivery traffic
#                                   # (bench/publishing_latency.py, N=200; PYTHON must import
#                                   # standardwebhooks, default: deploy/webhook-deps.sh's)
#
# Per database: a fresh database, `migrate` + `create-admin` + `serve` through
# deploy/control-server.sh with [mail] smtp_url pointing at aiosmtpd (deploy/test-mail-servers.sh,
# on a free port, Maildir under a temporary directory), then bench/outbox_bench.py: persons and a
# template through the API, POST /api/v1/signing-requests in batches of 100, the Maildir watched.
#
# Environment: LIKENESS_CONTROL_BIN (default target/release/likeness-control), N (1000), OUTAGE
# (30 s), WORKERS (job workers of the server, default the configuration's default: 1),
# RESULTS (default bench/results/outbox-<backend>.json), PG_URL (default
# postgres://postgres@127.0.0.1:55432), BINARY_COMMIT (the commit the binary was built from;
# default the checkout's HEAD), KEEP=1 (keep the temporary directory).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${LIKENESS_CONTROL_BIN:-target/release/likeness-control}"
if [ ! -x "$bin" ]; then
  echo "outbox.sh: $bin is missing: cargo build --release -p likeness-control" >&2
  exit 1
fi
backend="${1:-sqlite}"
what="${2:-outbox}"
case "$what" in outbox|latency|publishing) ;; *) echo "outbox.sh: unknown bench $what (outbox, latency or publishing)" >&2; exit 2 ;; esac
pg_base="${PG_URL:-postgres://postgres@127.0.0.1:55432}"
pg_db=likeness_outbox_bench
if [ "$what" = latency ]; then
  results="${RESULTS:-bench/results/signing-latency-$backend.json}"
elif [ "$what" = publishing ]; then
  results="${RESULTS:-bench/results/publishing-latency-$backend.json}"
else
  results="${RESULTS:-bench/results/outbox-$backend.json}"
fi
tenant=bench

tmp="$(mktemp -d)"
server_pid=""
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LIKENESS_MAIL_DIR="$tmp/mail"
LIKENESS_SMTP_PORT="$(free_port)"
LIKENESS_SMS_PORT="$(free_port)"
export LIKENESS_SMTP_PORT LIKENESS_SMS_PORT
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  deploy/test-mail-servers.sh stop || true
  if [ "$backend" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
    psql -X -q "$pg_base/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "outbox.sh: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

deploy/test-mail-servers.sh start >"$tmp/mail.env"
maildir="$tmp/mail/maildir"

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
  *) echo "outbox.sh: unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
esac
export LIKENESS_CONTROL__DATABASE__URL="$db_url"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
export LIKENESS_CONTROL__SERVER__COOKIE_SECURE=false
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
export LIKENESS_CONTROL__LOG__FILTER=warn
export LIKENESS_CONTROL__MAIL__SMTP_URL="smtp://127.0.0.1:$LIKENESS_SMTP_PORT"
export LIKENESS_CONTROL__MAIL__FROM="Likeness Bench <no-reply@bench.test>"
export LIKENESS_CONTROL__SIGNING__KEY_FILE="$tmp/evidence-signing.key"
export LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL="http://127.0.0.1:8080"
if [ -n "${WORKERS:-}" ]; then
  export LIKENESS_CONTROL__JOBS__WORKERS="$WORKERS"
fi

# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
echo "== $backend: migrate, create-admin, serve; SMTP on $LIKENESS_SMTP_PORT" >&2
start_control_server "$bin" "$tmp" "$tenant" outbox-bench

mail_ctl="LIKENESS_MAIL_DIR=$tmp/mail LIKENESS_SMTP_PORT=$LIKENESS_SMTP_PORT LIKENESS_SMS_PORT=$LIKENESS_SMS_PORT deploy/test-mail-servers.sh"
rc=0
if [ "$what" = publishing ]; then
  photo="${PHOTO:-../shared/data/photos/img1.jpg}"
  "${PYTHON:-$(deploy/webhook-deps.sh)}" bench/publishing_latency.py "$base" "$token" "$tenant" "$maildir" "$photo" \
    "$tmp/result.json" --n "${N:-200}" || rc=$?
elif [ "$what" = latency ]; then
  photo="${PHOTO:-../shared/data/photos/img1.jpg}"
  python3 bench/signing_latency.py "$base" "$token" "$maildir" "$photo" "$tmp/result.json" \
    --n "${N:-200}" || rc=$?
else
  python3 bench/outbox_bench.py "$base" "$token" "$maildir" "$tmp/result.json" \
    --n "${N:-1000}" --outage "${OUTAGE:-30}" \
    --stop-cmd "$mail_ctl stop-smtp" --start-cmd "$mail_ctl start-smtp" || rc=$?
fi

if grep -q 'ERROR\|panicked' "$tmp/server.log"; then
  echo "outbox.sh: the server logged errors (last 10):" >&2
  grep 'ERROR\|panicked' "$tmp/server.log" | tail -10 >&2
fi

python3 - "$results" "$tmp/result.json" "$bin" "$backend" "$tmp/server.log" "$what" <<'PY'
import json, os, subprocess, sys
out, result, binary, backend, log, what = sys.argv[1:7]
def sh(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
res = {
    "command": "bench/outbox.sh " + backend + ("" if what == "outbox" else " " + what),
    "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
    "binary": binary,
    "commit": os.environ.get("BINARY_COMMIT") or sh("git rev-parse --short HEAD"),
    "backend": backend,
    "smtp_server": "aiosmtpd " + sh("/usr/bin/python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)'") + " (Maildir)",
    "job_workers": int(os.environ.get("WORKERS") or 1),
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
print(f"outbox.sh: results in {out}", file=sys.stderr)
PY
exit "$rc"
