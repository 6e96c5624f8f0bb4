#!/usr/bin/env bash
# Writes results/demo/: what the compact download costs in accuracy (the evaluator on XQuAD-R with
# the f32 model, the shipped weights with f32 vectors, and the shipped weights with the shipped
# int8 vectors, which is what the page scores with), the size of each shipped file, and the page's
# download and times (the end-to-end test's measurements). Needs `bash scripts/test.sh` (or
# scripts/serve.sh) to have run once: demo data, trunk build, embedding cache.
#   MLR_DEMO_MODELS="e5-small hybrid" also measures the fine-tuned model of scripts/serve.sh, on the
#   test articles (its f32 weights are $MLR_CACHE/runs/hybrid/best).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
mlr="$CARGO_TARGET_DIR/release/mlr"
out=results/demo
mkdir -p "$out"
for model in ${MLR_DEMO_MODELS:-e5-small}; do
    splits="all test"
    [ "$model" = e5-small ] || splits=test
    for split in $splits; do
        if [ "$model" != e5-small ]; then
            "$mlr" eval --model "$MLR_CACHE/runs/$model/best" --split "$split" --out "$out/$model-f32-xquad-r-$split.json" >/dev/null
        fi
        # The shipped weights, vectors kept in f32 (from the embedding cache `mlr demo build` filled).
        "$mlr" eval --model "$MLR_DEMO_DIR/models/$model" --split "$split" --out "$out/$model-shipped-weights-xquad-r-$split.json" >/dev/null
        # What the page scores with: the shipped weights' vectors as stored (int8).
        "$mlr" eval --vectors "$MLR_DEMO_DIR/corpus/$model.mlrv" --split "$split" --out "$out/$model-page-xquad-r-$split.json" >/dev/null
    done
done
if [ -z "${MLR_SKIP_E2E:-}" ]; then
    MLR_E2E_REPORT="$PWD/$out/e2e.json" MLR_SCREENSHOT="$PWD/docs/screenshot.png" \
        cargo test --release -p mlr-tests --test e2e -- --ignored --nocapture
fi
MLR_DEMO_DIR="$MLR_DEMO_DIR" "$MLR_CACHE/venv/bin/python" scripts/demo_report.py
