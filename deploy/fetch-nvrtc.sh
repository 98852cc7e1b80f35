#!/usr/bin/env bash
# Fetches NVRTC (libnvrtc.so.12 + its builtins) from the PyPI wheel
# nvidia-cuda-nvrtc-cu12==12.9.86 into .cache/nvrtc/ and prints that directory. The kernels
# crate loads it through LIKENESS_NVRTC_PATH to compile its CUDA sources to PTX; this works on
# a machine without a GPU or driver (CI compiles every kernel this way).
set -euo pipefail
NVRTC_VERSION="${NVRTC_VERSION:-12.9.86}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/nvrtc/$NVRTC_VERSION"
if [ ! -f "$dest/libnvrtc.so.12" ]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "nvidia-cuda-nvrtc-cu12==$NVRTC_VERSION" -d "$tmp" >&2
  wheel="$(ls "$tmp"/nvidia_cuda_nvrtc_cu12-*.whl)"
  python3 - "$wheel" "$dest" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    libs = [n for n in z.namelist()
            if n.startswith("nvidia/cuda_nvrtc/lib/libnvrtc") and ".alt." not in n]
    if not any(n.endswith("/libnvrtc.so.12") for n in libs):
        sys.exit(f"no libnvrtc.so.12 in {wheel}")
    # The main library last: its presence marks a complete extraction.
    for n in sorted(libs, key=lambda n: n.endswith("/libnvrtc.so.12")):
        out = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + ".part", out)
PY
fi
echo "$dest"
