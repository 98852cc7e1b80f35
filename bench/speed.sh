#!/usr/bin/env bash
# Pipeline speed benchmark, end to end: the Rust pipeline (in process, one image per call and
# batched) side by side with the reference Python pipeline in bench/peer/ (onnxruntime + numpy
# + OpenCV, same models, stages and threads). Writes bench/results/speed.json.
#
#   bench/speed.sh                 # set up (venv, ORT, release build, image set) and run
#   bench/speed.sh --reps 5        # extra arguments go to the `speed` binary (see --help)
#
# Set-up, all under the git-ignored .cache/: a venv with bench/peer/requirements.txt
# (.cache/bench-venv), libonnxruntime.so (deploy/fetch-onnxruntime.sh), the image set
# (.cache/bench-images, built from ../shared/data by bench/peer/make_images.py).
# LIKENESS_MODELS_DIR (default ../shared/models) and LIKENESS_DATA_DIR (../shared/data).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv=.cache/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
want="$(sha256sum bench/peer/requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bench/peer/requirements.txt
  echo "$want" >"$venv/.requirements.sha256"
fi

deploy/fetch-onnxruntime.sh >/dev/null
cargo build --release --quiet -p likeness-bench --bin speed

data="${LIKENESS_DATA_DIR:-../shared/data}"
if [ ! -f .cache/bench-images/set.json ]; then
  "$venv/bin/python" bench/peer/make_images.py --data "$data" --out .cache/bench-images
fi

exec target/release/speed --python "$venv/bin/python" --data "$data" "$@"
