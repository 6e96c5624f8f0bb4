#!/usr/bin/env bash
# The seeded hybrid-training experiment of results/train/: X-X-mono, X-Y and hybrid (α 0.5, and the α
# sweep 0.25 / 0.75 when SAMPLERS names them), each with several sampler seeds at batch 64 (cached
# InfoNCE in mini-batches of 16) on the XQuAD-R train articles; every best-on-dev model tested on the test
# articles (with per-question scores for the paired bootstrap) and on Tatoeba bitext (out of domain);
# plus the training-free rows (base model, base + language centering) and hybrid + language centering.
# Then scripts/train_report.py writes the table with seed intervals, the paired tests and the plots.
#
#   bash scripts/train_experiment.sh                        # train, evaluate, report
#   PHASE=train bash scripts/train_experiment.sh            # only train (resumable: run it again)
#   PHASE=eval bash scripts/train_experiment.sh             # only evaluate what is trained (no report)
#   PHASE=report bash scripts/train_experiment.sh           # only evaluate what is trained, and report
#   SEEDS="1 2 3 4 5" SAMPLERS="x-x-mono x-y hybrid hybrid-a0.25 hybrid-a0.75" bash scripts/train_experiment.sh
#   MLR_BIN=/path/to/mlr bash scripts/train_experiment.sh   # use this binary (no setup, no build)
#
# Runs live in $MLR_CACHE/runs/<sampler>-s<seed> (checkpoints and Hugging Face exports); an interrupted
# run is resumed. Per-question reports go to $MLR_CACHE/runs/<run>/test-per-query.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ -n "${MLR_BIN:-}" ]; then
    mlr="$MLR_BIN"
else
    bash scripts/setup.sh
    cargo build --release
    mlr="$CARGO_TARGET_DIR/release/mlr"
fi
runs="$MLR_CACHE/runs"
mkdir -p "$runs" results/train/runs

phase="${PHASE:-all}"
seeds=(${SEEDS:-1 2 3})
samplers=(${SAMPLERS:-x-x-mono x-y hybrid})
declare -A sampler=([x-x-mono]=x-x-mono [x-y]=x-y [hybrid]=hybrid [hybrid-a0.25]=hybrid [hybrid-a0.75]=hybrid)
declare -A alpha=([x-x-mono]=1 [x-y]=0 [hybrid]=0.5 [hybrid-a0.25]=0.25 [hybrid-a0.75]=0.75)
# One budget for every run: 40 steps × 64 pairs (2,560 pairs, about three passes over the 32 train
# articles' questions), dev evaluation at steps 20 and 40, the better one tested.
budget=(--steps 40 --batch-size 64 --mini-batch 16 --warmup-steps 4 --eval-every 20 --checkpoint-every 10
    --max-query-tokens 32 --max-passage-tokens 64)

names=()
for seed in "${seeds[@]}"; do # seed-major: an early stop leaves whole seeds
    for s in "${samplers[@]}"; do names+=("$s-s$seed"); done
done

if [ "$phase" = all ] || [ "$phase" = train ]; then
    for name in "${names[@]}"; do
        s="${name%-s*}"
        seed="${name##*-s}"
        out="$runs/$name"
        [ -e "$out/summary.json" ] && continue
        resume=()
        if [ -e "$out/checkpoint/state.json" ] || [ -e "$out/checkpoint.old/state.json" ]; then resume=(--resume); fi
        "$mlr" train --out "$out" --sampler "${sampler[$s]}" --alpha "${alpha[$s]}" --seed "$seed" "${budget[@]}" \
            "${resume[@]}"
    done
fi
[ "$phase" = train ] && exit 0

# Tatoeba (out of domain): the ten XQuAD-R languages it has, each paired with English.
tatoeba=ara,cmn,deu,ell,hin,rus,spa,tha,tur,vie
evaluated=()
for name in "${names[@]}"; do
    out="$runs/$name"
    [ -e "$out/summary.json" ] || continue
    evaluated+=(--run "$name")
    [ -e "results/train/runs/$name-test.json" ] ||
        "$mlr" eval --model "$out/best" --split test --per-query "$out/test-per-query.jsonl" \
            --out "results/train/runs/$name-test.json"
    [ -e "results/train/runs/$name-tatoeba.json" ] ||
        "$mlr" eval --model "$out/best" --data data/tatoeba --langs "$tatoeba" --out "results/train/runs/$name-tatoeba.json"
    if [[ "$name" == hybrid-s* ]] && [ ! -e "results/train/runs/$name-centered-test.json" ]; then
        "$mlr" eval --model "$out/best" --split test --center-langs train --per-query "$out/centered-per-query.jsonl" \
            --out "results/train/runs/$name-centered-test.json"
    fi
done
base="$MLR_CACHE/models/multilingual-e5-small"
[ -e results/train/runs/base-test.json ] ||
    "$mlr" eval --split test --per-query "$runs/base-per-query.jsonl" --out results/train/runs/base-test.json
[ -e results/train/runs/base-dev.json ] || "$mlr" eval --split dev --out results/train/runs/base-dev.json
[ -e results/train/runs/base-centered-test.json ] ||
    "$mlr" eval --split test --center-langs train --per-query "$runs/base-centered-per-query.jsonl" \
        --out results/train/runs/base-centered-test.json
[ -e results/train/runs/base-tatoeba.json ] ||
    "$mlr" eval --model "$base" --data data/tatoeba --langs "$tatoeba" --out results/train/runs/base-tatoeba.json
[ "$phase" = eval ] && exit 0
"$MLR_CACHE/venv/bin/python" scripts/train_report.py --runs-dir "$runs" "${evaluated[@]}" --out results/train
