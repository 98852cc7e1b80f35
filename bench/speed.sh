#!/usr/bin/env bash
# Pipeline speed benchmark, end to end: the Rust pipeline (in process, one image per call and
# batched) side by side with the reference Python pipeline in bench/peer/ (onnxruntime + numpy
# + OpenCV, same models, stages and threads). Writes bench/results/speed.json.
#
#   bench/speed.sh                 # set up (venv, ORT, release build, image set) and run
#   bench/speed.sh --reps 5        # extra arguments go to the `speed` binary (see --help)
#   bench/speed.sh --plain [ARGS]  # issue 16: Likeness's defaults vs the plain Python peer
#                                  # (bench/peer/plain.py; fp32, and 8-bit when the files
#                                  # exist) on the speed set and on the small photos;
#                                  # writes bench/results/speed-cpu.json
#
# 8-bit models for --plain: LIKENESS_INT8_DETECTOR / LIKENESS_INT8_EMBEDDER, else
# yunet_s_int8.onnx / mobilefacenet_128d_int8.onnx (bash deploy/quantize-models.sh), else the
# first *yunet*int8*.onnx / *mobilefacenet*int8*.onnx (or *quant*), in
# LIKENESS_DERIVED_MODELS_DIR (default .cache/derived-models) or the models folder.
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

if [ "${1:-}" != "--plain" ]; then
  exec target/release/speed --python "$venv/bin/python" --data "$data" "$@"
fi
shift

# Issue 16: Likeness's defaults vs the Python script a user would write, on both sets.
if [ ! -f .cache/bench-photos/set.json ]; then
  "$venv/bin/python" bench/peer/make_images.py --small --data "$data" --out .cache/bench-photos
fi
find_model() { # $1: the manifest's file name, $2: a glob fragment (yunet or mobilefacenet)
  local d f
  for d in "${LIKENESS_DERIVED_MODELS_DIR:-.cache/derived-models}" "${LIKENESS_MODELS_DIR:-../shared/models}"; do
    for f in "$d/$1" "$d"/*"$2"*int8*.onnx "$d"/*"$2"*quant*.onnx; do
      if [ -f "$f" ]; then echo "$f"; return; fi
    done
  done
}
# No 8-bit detector is kept (models/README "8-bit models": slower than fp32 on this CPU), so
# the 8-bit peer gets what Likeness's defaults run: fp32 YuNet-s and the 8-bit embedder.
int8_det="${LIKENESS_INT8_DETECTOR:-$(find_model yunet_s_int8.onnx yunet)}"
int8_det="${int8_det:-${LIKENESS_MODELS_DIR:-../shared/models}/yunet_s_dynamic.onnx}"
int8_emb="${LIKENESS_INT8_EMBEDDER:-$(find_model mobilefacenet_128d_int8.onnx mobilefacenet)}"
int8=()
if [ -n "$int8_det" ] && [ -n "$int8_emb" ]; then
  int8=(--int8-detector "$int8_det" --int8-embedder "$int8_emb")
  echo "8-bit models: $int8_det, $int8_emb" >&2
else
  echo "8-bit models not found: the python plain int8 modes are skipped" >&2
fi
mkdir -p .cache/speed-cpu
# The set name, the set.json and the timed passes per mode (a small-photo pass lasts ~1 s).
for run in "speed_set .cache/bench-images/set.json 3" "photos .cache/bench-photos/set.json 10"; do
  read -r name set reps <<<"$run"
  echo "== $name ($set)" >&2
  target/release/speed --python "$venv/bin/python" --data "$data" --set "$set" \
    --mode "likeness defaults" --mode "python plain" "${int8[@]}" --reps "$reps" \
    --out ".cache/speed-cpu/$name.json" "$@"
done
"$venv/bin/python" - .cache/speed-cpu/speed_set.json .cache/speed-cpu/photos.json <<'PY'
import json, sys
runs = {p.split("/")[-1][:-5]: json.load(open(p)) for p in sys.argv[1:]}
with open("bench/results/speed-cpu.json", "w") as f:
    json.dump({"benchmark": "issue 16: Likeness defaults vs the plain Python peer", "sets": runs}, f, indent=1)
    f.write("\n")
for name, r in runs.items():
    s = r["set"]
    print(f"\n{name}: {s['images']} images, {s['megapixels_min']:.2f}-{s['megapixels_max']:.2f} MP; "
          f"faces {s['faces']}")
    print(f"  {'mode':<48} {'img/s':>7} {'CPU ms':>7} {'faces':>6}")
    for m in r["modes"]:
        print(f"  {m['name']:<48} {m['images_per_s']:>7.2f} {m['cpu_ms_per_image']:>7.1f} "
              f"{m['faces'] // max(m['passes'], 1):>6}")
    for peer, rows in r["speedup_likeness_defaults_over_plain"].items():
        for k, v in rows.items():
            print(f"  likeness defaults / {peer} [{k}]: {v['overall']:.2f}x images/s, "
                  f"{v['cpu_per_image']:.2f}x less CPU per image")
    for k, a in r.items():
        if k.startswith("agreement_likeness_defaults_vs_python_plain"):
            print(f"  {k[10:]}: {a['images'] - a['images_same_count']} of {a['images']} images "
                  f"differ in face count ({a['faces_a']} vs {a['faces_b']}) {a['count_mismatches']}")
print("\nresults: bench/results/speed-cpu.json")
PY
