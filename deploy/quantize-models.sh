#!/usr/bin/env bash
# Makes the derived (8-bit) models listed in models/src/manifest.rs (entries with `made_by`)
# from the fp32 files in ../shared/models (LIKENESS_MODELS_DIR), calibrated on ../shared/data
# (LIKENESS_DATA_DIR), into .cache/derived-models (LIKENESS_DERIVED_MODELS_DIR), with
# models/quantize/quantize.py in a virtual environment pinned by models/quantize/requirements.txt
# (.cache/quantize-venv; PyPI is needed once). Idempotent: does nothing when every derived file
# is there with the manifest's sha256. The output is byte-identical from machine to machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${LIKENESS_DERIVED_MODELS_DIR:-.cache/derived-models}"
# file sha256 of each derived entry of the manifest (the entries with made_by: Some(...)).
wanted="$(python3 - <<'PY'
import re
text = open("models/src/manifest.rs").read()
for entry in re.split(r"\n    ModelSpec \{", text)[1:]:
    if "made_by: Some(" in entry:
        f = re.search(r'file: "([^"]+)"', entry).group(1)
        h = re.search(r'sha256: "([0-9a-f]{64})"', entry).group(1)
        print(f, h)
PY
)"
ok=1
while read -r file sha; do
  [ -n "$file" ] || continue
  if [ ! -f "$out/$file" ] || [ "$(sha256sum "$out/$file" | cut -d' ' -f1)" != "$sha" ]; then ok=0; fi
done <<<"$wanted"
if [ "$ok" = 1 ]; then
  echo "quantize-models: derived models up to date in $out" >&2
  exit 0
fi
venv=.cache/quantize-venv
req=models/quantize/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  cp "$req" "$venv/requirements.txt"
fi
"$venv/bin/python" models/quantize/quantize.py --out "$out" 2> >(grep -v "^WARNING:root:\|pre-process\|quantization/image_classification" >&2)
status=0
while read -r file sha; do
  [ -n "$file" ] || continue
  got="$(sha256sum "$out/$file" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    echo "quantize-models: $out/$file has sha256 $got, the manifest expects $sha" >&2
    status=1
  fi
done <<<"$wanted"
exit "$status"
