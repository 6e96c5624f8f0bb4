#!/usr/bin/env bash
# Writes results/demo/: what the f16 download costs in accuracy (the evaluator on XQuAD-R with f32
# weights, f16 weights, and f16 weights + f16-stored vectors, which is what the page uses), and the
# page's download size and times (the end-to-end test's measurements). Needs `bash scripts/serve.sh`
# or `bash scripts/test.sh` to have run once (demo data, trunk build, embedding cache).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
mlr="$CARGO_TARGET_DIR/release/mlr"
out=results/demo
mkdir -p "$out"
for split in all test; do
    # f16 weights, vectors kept in f32 (from the embedding cache `mlr demo build` filled).
    "$mlr" eval --model "$MLR_DEMO_DIR/models/e5-small" --split "$split" --out "$out/e5-small-f16-weights-xquad-r-$split.json" >/dev/null
    # What the page scores with: f16 weights and the vectors stored as f16.
    "$mlr" eval --vectors "$MLR_DEMO_DIR/corpus/e5-small.mlrv" --split "$split" --out "$out/e5-small-page-xquad-r-$split.json" >/dev/null
done
MLR_E2E_REPORT="$PWD/$out/e2e.json" MLR_SCREENSHOT="$PWD/docs/screenshot.png" \
    cargo test --release -p mlr-tests --test e2e -- --ignored --nocapture
"$MLR_CACHE/venv/bin/python" scripts/demo_report.py
