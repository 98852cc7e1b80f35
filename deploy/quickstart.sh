#!/usr/bin/env bash
# Fresh machine to a running system on SQLite: fetches the ONNX Runtime library, builds the
# release binaries, verifies the models, starts `likeness-matcher serve` on 127.0.0.1:50051 (gRPC)
# and 127.0.0.1:9464 (/metrics) in the background, creates a demo tenant `demo` with an admin
# login, and runs `likeness-control serve` (REST API on 127.0.0.1:8080) in the foreground.
# Models are read from ../shared/models (override: LIKENESS_MODELS_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(deploy/fetch-onnxruntime.sh)}"
cargo build --release --locked -p likeness-matcher -p likeness-control
# The 8-bit embedder (the default) is made from the fp32 file by a pinned, reproducible script.
bash deploy/quantize-models.sh
bin=target/release/likeness-matcher
# Galleries are encrypted at rest under a master key. For a local trial one is generated into
# .data/dev-master.key; in production keep the key outside the data directory (a secret store).
if [ -z "${LIKENESS_MATCHER__GALLERY__MASTER_KEY_FILE:-}${LIKENESS_MATCHER__GALLERY__MASTER_KEY:-}" ]; then
  mkdir -p .data
  [ -f .data/dev-master.key ] || { "$bin" generate-key > .data/dev-master.key; chmod 600 .data/dev-master.key; }
  export LIKENESS_MATCHER__GALLERY__MASTER_KEY_FILE="$PWD/.data/dev-master.key"
fi
"$bin" check-config ${LIKENESS_MATCHER_CONFIG:+--config "$LIKENESS_MATCHER_CONFIG"} | head -4
"$bin" serve &
matcher_pid=$!
trap 'kill "$matcher_pid" 2>/dev/null || true' EXIT INT TERM

# The control plane: SQLite in .data/, blobs in .data/blobs (a development storage key is
# created there on first use), the matcher above.
ctl=target/release/likeness-control
export LIKENESS_CONTROL__DATABASE__URL="${LIKENESS_CONTROL__DATABASE__URL:-.data/likeness-control.sqlite}"
export LIKENESS_CONTROL__STORAGE__DIR="${LIKENESS_CONTROL__STORAGE__DIR:-.data/blobs}"
# The session cookie is `Secure` by default (browsers send it over HTTPS only). This trial serves
# plain HTTP on localhost, so it turns that off explicitly; behind HTTPS leave the default.
export LIKENESS_CONTROL__SERVER__COOKIE_SECURE="${LIKENESS_CONTROL__SERVER__COOKIE_SECURE:-false}"
mkdir -p .data
# Signing requests, one-time codes and receipts go out by e-mail and SMS. Unless an SMTP server
# is configured, the trial catches them locally: a real SMTP server (Debian's aiosmtpd) writes
# every mail to .data/mail/maildir/new, and a recording SMS gateway writes .data/mail/sms.jsonl.
mail_note="e-mail: ${LIKENESS_CONTROL__MAIL__SMTP_URL:-not configured}"
if [ -z "${LIKENESS_CONTROL__MAIL__SMTP_URL:-}" ]; then
  export LIKENESS_MAIL_DIR="$PWD/.data/mail"
  if mail_env="$(deploy/test-mail-servers.sh start)"; then
    eval "$mail_env"
    export LIKENESS_CONTROL__MAIL__SMTP_URL="$LIKENESS_SMTP_URL"
    export LIKENESS_CONTROL__SMS__URL="${LIKENESS_CONTROL__SMS__URL:-$LIKENESS_SMS_URL}"
    trap 'kill "$matcher_pid" 2>/dev/null || true; deploy/test-mail-servers.sh stop' EXIT INT TERM
    mail_note="mails land in $LIKENESS_MAILDIR/new (SMTP $LIKENESS_SMTP_URL), SMS in $LIKENESS_SMS_LOG"
  else
    mail_note="no local SMTP server could be started: messages wait in the outbox (/admin/outbox)"
  fi
fi
export LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL="${LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL:-http://127.0.0.1:8080}"
# The demo admin's password is kept per database: .data/demo-admin.txt for the default one.
admin_file=.data/demo-admin.txt
if [ "$LIKENESS_CONTROL__DATABASE__URL" != .data/likeness-control.sqlite ]; then
  admin_file=".data/demo-admin-$(printf %s "$LIKENESS_CONTROL__DATABASE__URL" | sha256sum | cut -c1-12).txt"
fi
# A new SQLite file gets the demo admin and a new password (also after the file was removed).
if [ ! -f "$admin_file" ] || { [[ "$LIKENESS_CONTROL__DATABASE__URL" != *://* ]] && [ ! -f "$LIKENESS_CONTROL__DATABASE__URL" ]; }; then
  pw="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  LIKENESS_ADMIN_PASSWORD="$pw" "$ctl" create-admin --tenant demo --tenant-name "Demo" --email admin@demo.test
  printf 'tenant: demo\nemail: admin@demo.test\npassword: %s\n' "$pw" > "$admin_file"
  chmod 600 "$admin_file"
fi
pw="$(sed -n 's/^password: //p' "$admin_file")"
cat <<MSG

likeness-matcher runs in the background (gRPC 127.0.0.1:50051, metrics 127.0.0.1:9464/metrics);
likeness-control is starting on http://127.0.0.1:8080 (SQLite: $LIKENESS_CONTROL__DATABASE__URL).
Plain HTTP on localhost: the session cookie is not Secure here (server.cookie_secure=$LIKENESS_CONTROL__SERVER__COOKIE_SECURE);
keep the default (true) behind HTTPS.

Open  http://127.0.0.1:8080/admin   (the console, in a browser)
Login organisation "demo", e-mail admin@demo.test, password $pw   (also in $admin_file)
Signing: links point at $LIKENESS_CONTROL__SIGNING__PUBLIC_BASE_URL; $mail_note

The REST API: http://127.0.0.1:8080/api/v1/openapi.json (OpenAPI 3), e.g.
  curl -si -c .data/cookies -H 'content-type: application/json' \\
       -d '{"tenant":"demo","email":"admin@demo.test","password":"'"$pw"'"}' http://127.0.0.1:8080/api/v1/auth/login
  curl -s -b .data/cookies http://127.0.0.1:8080/api/v1/me
  target/release/likeness-matcher call ../shared/data/group/insightface_t1.jpg     # the matcher directly
Stop everything with Ctrl-C.
MSG
"$ctl" serve
