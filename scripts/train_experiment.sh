#!/usr/bin/env bash
# The hybrid-training experiment of results/train/: trains x-x-mono, x-y and hybrid (α 0.25, 0.5, 0.75)
# with one seed and budget, evaluates each best-on-dev model on the XQuAD-R test articles, adds the
# training-free rows (base model, base + language centering) and writes the table and plots.
#
#   bash scripts/train_experiment.sh            # all runs, one after another (~2.5 h on 2 cores)
#   RUNS="hybrid x-y" bash scripts/train_experiment.sh
#
# Runs live in $MLR_CACHE/runs/<name> (checkpoints and Hugging Face exports; an interrupted run is
# resumed). The runs of results/train were made before `mask_shared_answers` existed, hence
# `--mask-shared-answers false` here (the same computation).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bash scripts/setup.sh
cargo build --release
mlr="$CARGO_TARGET_DIR/release/mlr"
runs="$MLR_CACHE/runs"
mkdir -p "$runs" results/train/runs

declare -A sampler=([x-x-mono]=x-x-mono [x-y]=x-y [hybrid]=hybrid [hybrid-a0.25]=hybrid [hybrid-a0.75]=hybrid)
declare -A alpha=([x-x-mono]=1 [x-y]=0 [hybrid]=0.5 [hybrid-a0.25]=0.25 [hybrid-a0.75]=0.75)
names=(${RUNS:-x-x-mono x-y hybrid hybrid-a0.25 hybrid-a0.75})

for name in "${names[@]}"; do
    out="$runs/$name"
    resume=()
    [ -e "$out/checkpoint/state.json" ] || [ -e "$out/checkpoint.old/state.json" ] && resume=(--resume)
    if [ ! -e "$out/summary.json" ]; then
        "$mlr" train --out "$out" --sampler "${sampler[$name]}" --alpha "${alpha[$name]}" --steps 80 --batch-size 16 \
            --warmup-steps 8 --eval-every 40 --checkpoint-every 40 --max-query-tokens 32 --max-passage-tokens 64 \
            --seed 42 --mask-shared-answers false "${resume[@]}"
    fi
    "$mlr" eval --model "$out/best" --split test --out "results/train/runs/$name-test.json"
done
"$mlr" eval --split test --out results/eval/e5-small-xquad-r-test.json
"$mlr" eval --split dev --out results/train/runs/base-dev.json
"$mlr" eval --split test --center-langs train --out results/train/runs/base-centered-test.json
args=()
for name in "${names[@]}"; do args+=(--run "$name"); done
"$MLR_CACHE/venv/bin/python" scripts/train_report.py --runs-dir "$runs" "${args[@]}" --out results/train
