#!/usr/bin/env bash
# Installs what the test mail servers need: Debian's python3-aiosmtpd (the real SMTP server the
# tests and the outbox bench deliver to; run by /usr/bin/python3, since a `python3` on PATH may
# be another Python without it). The SMS gateway (deploy/sms-gateway.py) needs only Python's
# standard library. Idempotent: installs only when `import aiosmtpd` fails, and runs
# `apt-get update` only when the package is not known yet. Run it (do not source it).
set -euo pipefail

if /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show python3-aiosmtpd >/dev/null 2>&1; then
  "${sudo_cmd[@]}" apt-get update -qq
fi
"${sudo_cmd[@]}" apt-get install -y -qq python3-aiosmtpd >/dev/null
/usr/bin/python3 -c 'import aiosmtpd' || {
  echo "python3-aiosmtpd installed but /usr/bin/python3 cannot import aiosmtpd" >&2
  exit 1
}
echo "installed python3-aiosmtpd" >&2
