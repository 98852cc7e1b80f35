#!/usr/bin/env bash
# Fresh machine to a running matcher on the default (commercially usable) models:
# fetches the ONNX Runtime library, builds the release binary, verifies the models and starts
# `likeness-matcher serve` on 127.0.0.1:50051 (gRPC) and 127.0.0.1:9464 (/metrics).
# Models are read from ../shared/models (override: LIKENESS_MODELS_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(deploy/fetch-onnxruntime.sh)}"
cargo build --release --locked -p likeness-matcher
bin=target/release/likeness-matcher
# Galleries are encrypted at rest under a master key. For a local trial one is generated into
# .data/dev-master.key; in production keep the key outside the data directory (a secret store).
if [ -z "${LIKENESS_MATCHER__GALLERY__MASTER_KEY_FILE:-}${LIKENESS_MATCHER__GALLERY__MASTER_KEY:-}" ]; then
  mkdir -p .data
  [ -f .data/dev-master.key ] || { "$bin" generate-key > .data/dev-master.key; chmod 600 .data/dev-master.key; }
  export LIKENESS_MATCHER__GALLERY__MASTER_KEY_FILE="$PWD/.data/dev-master.key"
fi
"$bin" check-config ${LIKENESS_MATCHER_CONFIG:+--config "$LIKENESS_MATCHER_CONFIG"} | head -4
cat <<'MSG'

likeness-matcher is starting. From another terminal:
  target/release/likeness-matcher call ../shared/data/group/insightface_t1.jpg     # Analyze over gRPC
  target/release/likeness-matcher analyze --embeddings some.jpg                   # in-process, no server
  curl -s 127.0.0.1:9464/metrics | grep likeness_                                 # Prometheus metrics
  grpcurl -plaintext 127.0.0.1:50051 list                                         # reflection, if you have grpcurl
Stop with Ctrl-C.
MSG
exec "$bin" serve
