#!/usr/bin/env bash
# ANN benchmark of the gallery index: our HNSW graph against hnswlib and hnsw_rs (same M=16,
# ef_construction=200, ef, same vectors) — build time (2 threads and 1), recall@10 against
# exact search, queries/s with 1 and 2 threads, resident memory — plus exact-search queries/s
# at 10k and 100k, and the erasure rewrite (RemovePerson) at 100k / 1M templates with the
# latency of searches running meanwhile. Writes bench/results/ann.json (or the --out given).
#
#   bench/ann.sh            # 128-d and 512-d at 100k, 128-d at 1M; hnsw_rs at 128-d x 100k;
#                           # erasure at 100k and 1M (~60 min on 2 cores)
#   bench/ann.sh --quick    # 128-d x 100k, erasure at 100k only (~8 min)
#   bench/ann.sh --sets 128x100000 --efs 64,128 --out /tmp/ann.json   # see `ann run --help`
#
# Set-up, all under the git-ignored .cache/: a venv with numpy and hnswlib (.cache/ann-venv;
# hnswlib 0.8.0 has no wheel, pip builds it with -O3 -march=native), the data sets
# (.cache/ann/d<dim>-n<n>/*.npy, made by the `ann` binary) and the calibration against real
# templates (needs ../shared/models, ../shared/data and libonnxruntime; skipped if missing).
# Each measurement runs in a fresh process and waits (at most --max-wait s, default 120) until
# the machine is otherwise idle; the CPU other processes used meanwhile is recorded per run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv=.cache/ann-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import hnswlib, numpy' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy==2.4.6 hnswlib==0.8.0
fi

deploy/fetch-onnxruntime.sh >/dev/null 2>&1 || echo "no onnxruntime: calibration will be skipped" >&2
cargo build --release --quiet -p likeness-bench --bin ann

exec target/release/ann run --python "$venv/bin/python" "$@"
