#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library from the PyPI wheel (onnxruntime==1.32.0) into
# .cache/onnxruntime/ and prints its path. The `ort` crate loads it at run time (load-dynamic).
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.32.0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/onnxruntime"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$lib" ]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
  wheel="$(ls "$tmp"/onnxruntime-*.whl)"
  python3 - "$wheel" "$lib" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]
    if not names:
        sys.exit(f"no libonnxruntime.so in {wheel}")
    with z.open(sorted(names)[-1]) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$lib.part" "$lib"
  rm -rf "$tmp"
fi
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so"
echo "$dest/libonnxruntime.so"
