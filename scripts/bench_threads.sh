#!/usr/bin/env bash
# The browser's threads, measured (results/bench/browser-threads.json/.md): mlr's wasm CPU encoder
# on one thread and on every core (its threaded build, as the demo runs it on a cross-origin
# isolated page), beside transformers.js's WASM backend (ONNX Runtime Web) with numThreads 1 and
# numThreads = cores, all in headless Chromium on one isolated page server (scripts/bench_browser.py)
# and one run, on the ids of `mlr-bench inputs` (batch 1/8/64 × seq 16/64/256). Reports the
# speed-ups per shape and their geometric means. Environment: MLR_BENCH_MIN_TIME /
# MLR_BENCH_MIN_RUNS (default 1 / 1). About 20 min on 2 cores after the first build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. scripts/bench_browser_setup.sh
# `mlr-bench`, built as scripts/setup.sh builds the workspace (another set of targets resolves
# other features and builds burn again).
cargo build --release --all-targets
bench_browser_setup
py="$MLR_CACHE/venv/bin/python"
out="$CARGO_TARGET_DIR/bench-browser-threads.json"
"$py" scripts/bench_browser.py --inputs "$bench_inputs" --model "$MLR_MODEL_DIR" --onnx "$bench_onnx" \
    --mlr-dist "$bench_dist" --node-modules "$bench_npm" \
    --engines mlr-wasm-cpu,mlr-wasm-cpu-threads,transformersjs-wasm,transformersjs-wasm-threads \
    --min-time "${MLR_BENCH_MIN_TIME:-1}" --min-runs "${MLR_BENCH_MIN_RUNS:-1}" --out "$out"
"$py" scripts/bench_threads_report.py --rows "$out" --out results/bench/browser-threads \
    --command "bash scripts/bench_threads.sh"
