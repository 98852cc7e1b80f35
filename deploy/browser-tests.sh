#!/usr/bin/env bash
# The admin console (/admin) in a real browser: Playwright (npm @playwright/test, pinned in
# control/console-tests/package-lock.json) drives Debian's chromium through the console's
# journeys, runs axe-core on every page and writes a screenshot of each main page to
# control/console-tests/screenshots/. See control/console-tests/README.md.
#
# Installs chromium from Debian if /usr/bin/chromium is missing (Playwright's own browser
# download is not used), runs `npm ci` in control/console-tests, then starts a throwaway system on
# 127.0.0.1 (ports chosen by the system): the real likeness-matcher (models from
# ../shared/models, override LIKENESS_MODELS_DIR) and a likeness-control on a fresh SQLite
# database with a tenant `console` and an admin, both from the debug binaries the test run built
# (target/debug/likeness-control and target/debug/likeness-matcher; built if missing; override
# with LIKENESS_CONTROL_BIN / LIKENESS_MATCHER_BIN), and the test mail servers
# (deploy/test-mail-servers.sh: a real SMTP server, aiosmtpd, writing a Maildir the signing
# journey reads, and the recording SMS gateway) on free ports, with the control plane's [mail],
# [sms] and [signing] pointed at them, and the Standard Webhooks receiver the CMS journey hands
# its endpoint's secret (deploy/webhook-receiver.py). Everything is stopped on exit.
#
#   deploy/browser-tests.sh                      # deploy/test.sh calls it last
#   deploy/browser-tests.sh -g "axe"             # arguments go to `playwright test`
#   BROWSER_TESTS_KEEP=1 deploy/browser-tests.sh # keep the temporary folder (logs, database)
#
# Reports: the list reporter on the terminal; JUnit, the server and matcher logs and Playwright's
# traces of failed tests in .cache/browser-tests-report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
who="browser-tests.sh"

export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(deploy/fetch-onnxruntime.sh)}"
models="$(cd "${LIKENESS_MODELS_DIR:-../shared/models}" 2>/dev/null && pwd || true)"
if [ -z "$models" ] || [ ! -f "$models/yunet_s_dynamic.onnx" ]; then
  echo "$who: models not found in ${LIKENESS_MODELS_DIR:-../shared/models} (see models/README.md)" >&2
  exit 1
fi
data="$(cd "${LIKENESS_DATA_DIR:-../shared/data}" 2>/dev/null && pwd || true)"
if [ -z "$data" ] || [ ! -d "$data/group" ] || [ ! -d "$data/faces_dev" ]; then
  echo "$who: test data not found in ${LIKENESS_DATA_DIR:-../shared/data}" >&2
  exit 1
fi

# The browser: Debian's chromium.
chromium="${LIKENESS_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "$who: installing chromium from Debian" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
fi
export LIKENESS_CHROMIUM="$chromium"

# Playwright and axe-core, exactly as locked (Playwright 1.65 needs Node.js 20 or later; Debian
# 12's own nodejs is 18, so it is not installed from here).
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null; then
  echo "$who: Node.js 20 or later with npm is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
tests="$root/control/console-tests"
if ! (cd "$tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2); then
  echo "$who: npm ci failed in $tests" >&2
  exit 1
fi

# The binaries the tests built (debug).
ctl="${LIKENESS_CONTROL_BIN:-target/debug/likeness-control}"
matcher="${LIKENESS_MATCHER_BIN:-target/debug/likeness-matcher}"
if [ ! -x "$ctl" ] || [ ! -x "$matcher" ]; then
  echo "$who: building the debug binaries" >&2
  cargo build --locked -p likeness-control -p likeness-matcher >&2
fi
ctl="$(realpath "$ctl")"
matcher="$(realpath "$matcher")"

tmp="$(mktemp -d)"
report="$root/.cache/browser-tests-report"
server_pid=""
matcher_pid=""
hooks_pid=""
cleanup() {
  local pid
  for pid in "$server_pid" "$matcher_pid" "$hooks_pid"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  LIKENESS_MAIL_DIR="$tmp/mail" "$root/deploy/test-mail-servers.sh" stop 2>/dev/null || true
  mkdir -p "$report"
  cp "$tmp/server.log" "$tmp/matcher.log" "$tmp/hooks.log" "$report/" 2>/dev/null || true
  cp "$tmp/mail/smtp.log" "$report/smtp.log" 2>/dev/null || true
  if [ -n "${BROWSER_TESTS_KEEP:-}" ]; then
    echo "$who: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$report" && mkdir -p "$report"

# The matcher: port 0 (it announces the real one), its gallery in the temporary folder.
key="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
LIKENESS_MODELS_DIR="$models" \
  LIKENESS_MATCHER__SERVER__GRPC_ADDR=127.0.0.1:0 \
  LIKENESS_MATCHER__SERVER__METRICS_ADDR=127.0.0.1:0 \
  LIKENESS_MATCHER__PIPELINE__THREADS=1 \
  LIKENESS_MATCHER__GALLERY__DATA_DIR="$tmp/gallery" \
  LIKENESS_MATCHER__GALLERY__MASTER_KEY="$key" \
  NO_COLOR=1 \
  "$matcher" serve >"$tmp/matcher.out" 2>"$tmp/matcher.log" &
matcher_pid=$!
grpc=""
for _ in $(seq 1 900); do
  if [ -z "$grpc" ]; then
    line="$(head -n1 "$tmp/matcher.out" 2>/dev/null || true)"
    [ -z "$line" ] || grpc="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["listening"]["grpc"])' "$line")"
  fi
  # Models loaded: it logs "serving gRPC" once it answers.
  if [ -n "$grpc" ] && grep -q "serving gRPC" "$tmp/matcher.log" 2>/dev/null; then
    break
  fi
  kill -0 "$matcher_pid" 2>/dev/null || { echo "$who: the matcher exited" >&2; cat "$tmp/matcher.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "serving gRPC" "$tmp/matcher.log" || { echo "$who: the matcher did not start within 90 s" >&2; tail -20 "$tmp/matcher.log" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (closed again at once; the server that takes it follows soon).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The test mail servers: SMTP (a Maildir the signing journey reads) and the SMS gateway.
export LIKENESS_MAIL_DIR="$tmp/mail"
export LIKENESS_SMTP_PORT="$(free_port)"
export LIKENESS_SMS_PORT="$(free_port)"
eval "$(deploy/test-mail-servers.sh start)"
export LIKENESS_MAILDIR LIKENESS_SMS_LOG

# The CMS's webhook receiver: verifies every request with the Standard Webhooks reference
# library (deploy/webhook-receiver.py; journey 9 hands it the endpoint's secret).
hooks_python="$(deploy/webhook-deps.sh)"
"$hooks_python" deploy/webhook-receiver.py --port 0 --out "$tmp/hooks.jsonl" \
  >"$tmp/hooks.out" 2>"$tmp/hooks.log" &
hooks_pid=$!
hooks_port=""
for _ in $(seq 1 100); do
  hooks_port="$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/hooks.out" 2>/dev/null | head -1)"
  [ -z "$hooks_port" ] || break
  kill -0 "$hooks_pid" 2>/dev/null || { echo "$who: the webhook receiver exited" >&2; cat "$tmp/hooks.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$hooks_port" ] || { echo "$who: the webhook receiver did not start" >&2; exit 1; }
export LIKENESS_WEBHOOK_RECEIVER="http://127.0.0.1:$hooks_port"

# The control plane: the whole configuration here (nothing inherited from the caller's
# LIKENESS_CONTROL__*), plain HTTP on localhost (so the session cookie is not Secure), fast job
# polling so detection and re-matching finish within the tests' waits.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^LIKENESS_CONTROL' || true)
export LIKENESS_CONTROL__DATABASE__URL="$tmp/control.sqlite"
# A fixed port (not 0): the links sent by e-mail name the public address before it starts.
http_port="$(free_port)"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:$http_port"
export LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL="http://127.0.0.1:$http_port"
export LIKENESS_CONTROL__SIGNING__KEY_FILE="$tmp/evidence-signing.key"
export LIKENESS_CONTROL__MAIL__SMTP_URL="$LIKENESS_SMTP_URL"
export LIKENESS_CONTROL__MAIL__FROM="Likeness browser tests <no-reply@console.test>"
export LIKENESS_CONTROL__SMS__URL="$LIKENESS_SMS_URL"
export LIKENESS_CONTROL__SERVER__WORKERS=2
export LIKENESS_CONTROL__SERVER__COOKIE_SECURE=false
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://$grpc"
export LIKENESS_CONTROL__MATCHER__TIMEOUT_MS=60000
export LIKENESS_CONTROL__JOBS__POLL_MS=100
export LIKENESS_CONTROL__JOBS__BACKOFF_BASE_MS=200
export LIKENESS_CONTROL__JOBS__BACKOFF_MAX_MS=2000
export LIKENESS_CONTROL__LOG__FILTER="${LIKENESS_CONTROL_LOG:-info}"
export NO_COLOR=1
tenant=console
# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
start_control_server "$ctl" "$tmp" "$tenant" browser-tests

# The tests' own login (start_control_server keeps its admin's password to itself): a second
# admin of the same tenant.
password="pw-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
LIKENESS_ADMIN_PASSWORD="$password" "$ctl" create-admin --tenant "$tenant" \
  --email "staff@$tenant.test" >/dev/null

export LIKENESS_BASE_URL="$base"
export LIKENESS_TENANT="$tenant"
export LIKENESS_ADMIN_EMAIL="staff@$tenant.test"
export LIKENESS_ADMIN_PASSWORD="$password"
export LIKENESS_API_TOKEN="$token"
export LIKENESS_DATA_DIR="$data"
export LIKENESS_BROWSER_REPORT="$report"
echo "$who: console at $base/admin (matcher $grpc), chromium $("$chromium" --version 2>/dev/null | head -1)" >&2
cd "$tests"
unset NO_COLOR  # Playwright sets FORCE_COLOR for its workers; both set makes node warn
npx --no-install playwright test "$@"
