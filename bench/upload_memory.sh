#!/usr/bin/env bash
# Peak memory of the control plane while it receives large uploads.
#
# Starts `likeness-control serve` on a temporary SQLite database and blob store, sends
# UPLOADS (default 4) concurrent raw uploads of a SIZE-byte (default 260,000,000) video-like
# file (an MP4 `ftyp` header followed by zeros: the probe accepts it as video/mp4 without
# decoding), then reports the server's peak resident memory (VmHWM from /proc/<pid>/status)
# before and after, and checks that no spooled temporary file is left behind, also after an
# upload cut off half way.
#
#   cargo build --release -p likeness-control
#   LIKENESS_CONTROL_BIN=target/release/likeness-control bench/upload_memory.sh
#
# Environment: LIKENESS_CONTROL_BIN (default target/release/likeness-control, else
# target/debug/likeness-control), UPLOADS, SIZE, MULTIPART=1 (send multipart/form-data forms
# with a `file` part instead of raw bodies).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${LIKENESS_CONTROL_BIN:-}"
if [ -z "$bin" ]; then
  bin=target/release/likeness-control
  [ -x "$bin" ] || bin=target/debug/likeness-control
fi
uploads="${UPLOADS:-4}"
size="${SIZE:-260000000}"
if [ ! -x "$bin" ]; then
  echo "upload_memory.sh: $bin is missing: build it first (cargo build --release -p likeness-control)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^LIKENESS_CONTROL' || true)
export LIKENESS_CONTROL__DATABASE__URL="$tmp/control.sqlite"
export LIKENESS_CONTROL__SERVER__HTTP_ADDR="127.0.0.1:0"
export LIKENESS_CONTROL__SERVER__WORKERS=2
export LIKENESS_CONTROL__SERVER__MAX_BODY_BYTES=$((size + 1024))
export LIKENESS_CONTROL__STORAGE__DIR="$tmp/blobs"
export LIKENESS_CONTROL__STORAGE__MASTER_KEY="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
export LIKENESS_CONTROL__MATCHER__URL="http://127.0.0.1:9"
export LIKENESS_CONTROL__LOG__FILTER=warn
# shellcheck source=deploy/control-server.sh
source deploy/control-server.sh
start_control_server "$bin" "$tmp" bench upload-memory

# A video-like file: an MP4 header, then zeros (sparse on disk).
python3 - "$tmp/video.mp4" "$size" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.write(b"\0\0\0\x18ftypisom\0\0\0\0isommp41")
    f.truncate(size)
PY

hwm() { awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }
before="$(hwm)"

upload() {
  if [ "${MULTIPART:-0}" = 1 ]; then
    curl -sS -o "$tmp/answer.$1" -w '%{http_code}' -F "file=@$tmp/video.mp4;filename=video-$1.mp4" \
      -H "Authorization: Bearer $token" "$base/api/v1/assets"
  else
    curl -sS -o "$tmp/answer.$1" -w '%{http_code}' -X POST -T "$tmp/video.mp4" \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
      "$base/api/v1/assets?filename=video-$1.mp4"
  fi
}
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$uploads"); do
  upload "$i" >"$tmp/status.$i" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)
for i in $(seq 1 "$uploads"); do
  code="$(cat "$tmp/status.$i")"
  if [ "$code" != 201 ]; then
    echo "upload_memory.sh: upload $i answered $code: $(cat "$tmp/answer.$i")" >&2
    exit 1
  fi
done
after="$(hwm)"

# An upload cut off half way: its spooled file must go too.
curl -sS -o /dev/null -X POST -T "$tmp/video.mp4" --limit-rate 20M --max-time 2 \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
  "$base/api/v1/assets?filename=cut.mp4" 2>/dev/null || true
sleep 1
left="$( (find "$tmp/blobs/.upload-tmp" -type f 2>/dev/null || true) | wc -l)"
stored="$(find "$tmp/blobs" -path '*/.upload-tmp' -prune -o -type f -size +1M -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d blobs, %d bytes", n, s}')"

echo "binary:            $bin"
echo "uploads:           $uploads concurrent x $size bytes (video/mp4), all 201 in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s"
echo "server peak RSS:   $(mib "$before") before the uploads, $(mib "$after") after (VmHWM)"
echo "blob store:        $stored"
echo "spooled files left: $left (after the uploads and one cut off)"
[ "$left" = 0 ] || { echo "upload_memory.sh: temporary upload files were left behind" >&2; exit 1; }
