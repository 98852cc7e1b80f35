#!/usr/bin/env bash
# Installs what the webhook receiver (deploy/webhook-receiver.py) needs: the Standard Webhooks
# reference library (`standardwebhooks` on PyPI, pinned) in a venv at .cache/webhooks-venv, made
# with `python3 -m venv` like .cache/schemathesis-venv. Prints that venv's python. Idempotent
# and safe to run from several test processes at once (flock); installs only when the pinned
# version is missing. deploy/test.sh runs it before the tests; the webhook tests run it when the
# venv is missing.
set -euo pipefail
version="${STANDARDWEBHOOKS_VERSION:-1.1.0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.cache/webhooks-venv"
want="standardwebhooks==$version"
installed() {
  [ -x "$venv/bin/python" ] &&
    [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("standardwebhooks"))' 2>/dev/null)" = "$version" ]
}
if ! installed; then
  mkdir -p "$root/.cache"
  exec 9>"$root/.cache/webhooks-venv.lock"
  flock 9
  if ! installed; then
    echo "webhook-deps.sh: installing $want into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$want" >&2
  fi
fi
echo "$venv/bin/python"
