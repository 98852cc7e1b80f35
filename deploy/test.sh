#!/usr/bin/env bash
# The whole test suite on a fresh machine: fetches the ONNX Runtime library, then runs the
# format check, clippy (warnings are errors) and every test with cargo-nextest (falls back to
# cargo test), then a bounded schemathesis run against the control plane's API
# (deploy/schemathesis.sh), then the admin console's browser tests (deploy/browser-tests.sh:
# Playwright and Debian's chromium). Models are read from ../shared/models (override: LIKENESS_MODELS_DIR).
# The control plane's tests run on SQLite and on a throwaway PostgreSQL that deploy/postgres.sh
# installs (Debian packages) and starts on 127.0.0.1:55432 (it exports LIKENESS_TEST_PG_URL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(deploy/fetch-onnxruntime.sh)}"
export LIKENESS_NVRTC_PATH="${LIKENESS_NVRTC_PATH:-$(deploy/fetch-nvrtc.sh)}"  # kernels: NVRTC from PyPI
models="${LIKENESS_MODELS_DIR:-../shared/models}"
if [ ! -f "$models/yunet_s_dynamic.onnx" ]; then
  echo "models not found in $models: put the ONNX files there (see models/README.md) or set LIKENESS_MODELS_DIR" >&2
  exit 1
fi
bash deploy/quantize-models.sh  # the derived 8-bit models (.cache/derived-models, PyPI once; no-op when present)
# shellcheck source=deploy/postgres.sh
source deploy/postgres.sh
deploy/mail-servers.sh  # python3-aiosmtpd: the real SMTP server of the outbox and signing tests
# sqlite3 (Debian): the erasure tests scan a full `.dump` of the SQLite database.
if ! command -v sqlite3 >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends sqlite3 >&2
fi
deploy/webhook-deps.sh >/dev/null  # standardwebhooks (PyPI) in .cache/webhooks-venv: the webhook receiver of the tests
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
# The running control plane against its own OpenAPI document (no 5xx, no answer off the
# document), with the binary the tests just built.
deploy/schemathesis.sh
# The admin console in a real browser (Debian's chromium, Playwright from npm): the journeys,
# axe-core on every page, screenshots (control/console-tests/README.md).
deploy/browser-tests.sh
