#!/usr/bin/env bash
# A bounded schemathesis run (PyPI) against a running control plane: the OpenAPI document at
# /api/v1/openapi.json drives generated requests (valid and invalid) with an admin's API token;
# the run fails on any 5xx answer or any answer that does not conform to the document (status
# code, content type, headers, body schema), and on a wrong method answered other than 405 with
# a correct Allow header.
#
# Builds nothing: it uses the likeness-control binary that the test run built
# (target/debug/likeness-control; override with LIKENESS_CONTROL_BIN). The server runs on a
# fresh SQLite database in a temporary folder on 127.0.0.1, port 0 (the binary prints the port
# it got), with no matcher (its URL points at a closed port). Schemathesis and its dependencies
# are installed in .cache/schemathesis-venv from deploy/schemathesis-requirements.txt (every
# version pinned, so that a run does not change with what PyPI serves that day) on first use and
# whenever that file changes.
#
#   deploy/schemathesis.sh                 # deploy/test.sh calls it after the tests
#   SCHEMATHESIS_MAX_EXAMPLES=200 deploy/schemathesis.sh
#
# Bounds: SCHEMATHESIS_MAX_EXAMPLES test cases per operation and phase (default 100; phases
# examples, coverage, fuzzing; the stateful phase is left out: it feeds empty IDs into paths), a
# fixed seed (SCHEMATHESIS_SEED), one worker: about 13,800 requests in 2.5 minutes on 2 cores.
# Not 2 workers (they were no faster): they are threads of one Python process, and on Debian's
# Python 3.11 two threads that build ASTs at once (Hypothesis does, to describe its strategies)
# can fail with "SystemError: AST constructor recursion depth mismatch" (CPython issue 106905),
# an error of the fuzzer itself that failed a CI run. Reports (JUnit, and the server's log) are
# left in .cache/schemathesis-report; `.cache/schemathesis-venv/bin/schemathesis run --help`
# explains the options.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

requirements=deploy/schemathesis-requirements.txt
bin="${LIKENESS_CONTROL_BIN:-target/debug/likeness-control}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
seed="${SCHEMATHESIS_SEED:-1}"
venv="$PWD/.cache/schemathesis-venv"
report="$PWD/.cache/schemathesis-report"

if [ ! -x "$bin" ]; then
  echo "schemathesis.sh: $bin is missing: build it first (cargo build -p likeness-control)" >&2
  exit 1
fi
mkdir -p .cache
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
  echo "schemathesis.sh: installing $requirements into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$venv/.requirements.sha256"
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  mkdir -p "$report"
  cp "$tmp/server.log" "$report/server.log" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server's whole configuration (nothing inherited from the caller's LIKENESS_CONTROL__*).
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^LIKENESS_CONTROL' || true)
export LIKENESS_CONTROL__DATABASE__URL="$tmp/control.sqlite"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
export LIKENESS_CONTROL__SERVER__WORKERS=2
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
export LIKENESS_CONTROL__LOG__FILTER="${LIKENESS_CONTROL_LOG:-warn}"
# Fuzzed logins must not lock the run out (the throttle has its own tests).
export LIKENESS_CONTROL__SERVER__LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000
export LIKENESS_CONTROL__SERVER__LOGIN_MAX_FAILURES_PER_IP=1000000
# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
start_control_server "$bin" "$tmp" fuzz schemathesis

# Operations that can take the run's own credentials away (revoke its token, change the admin's
# role or its permissions, deactivate it: schemathesis learns real IDs from earlier answers) run
# last, in a second pass; the first pass leaves them out.
risky=(--include-name "DELETE /api/v1/tokens/{token_id}" --include-name "PUT /api/v1/roles/{role}"
       --include-name "PATCH /api/v1/users/{user_id}")
safe=(--exclude-name "DELETE /api/v1/tokens/{token_id}" --exclude-name "PUT /api/v1/roles/{role}"
      --exclude-name "PATCH /api/v1/users/{user_id}")
# Run from .cache: schemathesis keeps its own cache (failures to replay first) in ./.schemathesis.
run() {
  (cd .cache && "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance,missing_required_header \
    --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 30 \
    --suppress-health-check all \
    --no-shrink \
    --report junit --report-dir "$report" "$@")
}
echo "schemathesis.sh: $base/api/v1/openapi.json, $max_examples examples per operation, seed $seed" >&2
rm -rf "$report" && mkdir -p "$report"
set +e
run "${safe[@]}" --report-junit-path "$report/junit.xml"
status=$?
run "${risky[@]}" --report-junit-path "$report/junit-credentials.xml"
status2=$?
[ "$status" -ne 0 ] || status=$status2
set -e
if [ "$status" -ne 0 ]; then
  echo "schemathesis.sh: failures (exit $status); server log: $report/server.log" >&2
fi
exit "$status"
