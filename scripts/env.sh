# Sourced by scripts/setup.sh, scripts/test.sh and scripts/serve.sh: picks the Rust toolchain that can build
# both native and wasm32 code on this machine, and one shared target directory.
#
# - If rustup has the wasm32-unknown-unknown target, rustup's toolchain is used as it is.
# - Otherwise Debian's rustc-web (/usr/bin/rustc, which ships the std sources) builds wasm32 with
#   -Zbuild-std; RUSTC_BOOTSTRAP lets that stable compiler accept -Z flags. Native code is built with the
#   same compiler so that one toolchain serves the whole workspace.

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    export MLR_TOOLCHAIN=rustup
    export MLR_BUILD_STD=""
else
    export MLR_TOOLCHAIN=debian
    export PATH="/usr/bin:$HOME/.cargo/bin:$PATH"
    export RUSTC_BOOTSTRAP=1
    export MLR_BUILD_STD="-Zbuild-std=std,panic_abort"
fi
export PATH="$PATH:$HOME/.cargo/bin"
if [ "$MLR_TOOLCHAIN" = debian ]; then
    # Debian's rustc has no bundled rust-lld for wasm32: link with LLVM 19's wasm-ld.
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER:-/usr/lib/llvm-19/bin/wasm-ld}"
fi
# wasm32 code uses 128-bit SIMD (every current browser runs it: Chrome 91+, Firefox 89+, Safari
# 16.4+): the CPU path's GEMMs and row loops vectorise to it. With build-std, std is built so too.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:--C target-feature=+simd128}"
# One target directory outside the checkout, so a fresh clone (and CI) reuses what was built before.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlr/target}"
export MLR_CACHE="${MLR_CACHE:-$HOME/.cache/mlr}"
# wasm32 builds get a directory of their own, so they can run while a native build holds the lock
# of the other. The browser tests and trunk (the page and its WebGPU worker) share it: the same
# std variant (build-std with panic=abort, wasm SIMD) and the same dependency units, 466 of the
# page's 468 (cargo's unit graphs of the two builds), so whichever runs second compiles only the
# workspace crates whose features differ; each has its own units, so neither rebuilds the other's.
export MLR_WASM_TARGET_DIR="${MLR_WASM_TARGET_DIR:-$HOME/.cache/mlr/target-wasm}"
export MLR_TRUNK_TARGET_DIR="${MLR_TRUNK_TARGET_DIR:-$MLR_WASM_TARGET_DIR}"
# The page's threaded encoder worker (scripts/build_threaded_worker.sh, a trunk hook): another std
# variant (shared memory), so another directory.
export MLR_THREADS_TARGET_DIR="${MLR_THREADS_TARGET_DIR:-$HOME/.cache/mlr/target-threads}"
# Its flags (and bench-mt's): wasm SIMD as above, plus shared memory for threads.
export MLR_THREADS_RUSTFLAGS="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals"
export MLR_MODEL_DIR="${MLR_MODEL_DIR:-$MLR_CACHE/models/multilingual-e5-small}"
# What the web demo serves (`mlr demo build`; Trunk.toml links it into dist/).
export MLR_DEMO_DIR="${MLR_DEMO_DIR:-$MLR_CACHE/demo}"
# Builds the demo's data: the default model (multilingual-e5-small), plus the fine-tuned models
# named as arguments (runs of `mlr train` under $MLR_CACHE/runs/NAME/best, when they exist; shown
# side by side in the language-bias view). Corpus vectors come from the embedding cache after the
# first run (the first encodes 26,104 texts per model: ~30 min on 2 cores).
mlr_demo_build() {
    local args=(--model "e5-small=$MLR_MODEL_DIR") run
    for run in "$@"; do
        [ -f "$MLR_CACHE/runs/$run/best/model.safetensors" ] && args+=(--model "$run=$MLR_CACHE/runs/$run/best")
    done
    "$CARGO_TARGET_DIR/release/mlr" demo build --data data/xquad-r --out "$MLR_DEMO_DIR" "${args[@]}"
}
# The demo's fine-tuned model: hybrid batches (α 0.5) with the experiment's recorded config and
# seed 1 (results/train/hybrid-xquad-r.md), trained once into $MLR_CACHE/runs/hybrid (about 5 min
# on 2 cores); an interrupted run resumes from its checkpoint, a finished one is kept.
mlr_demo_train() {
    local run="$MLR_CACHE/runs/hybrid" resume=()
    [ -f "$run/summary.json" ] && [ -f "$run/best/model.safetensors" ] && return 0
    [ -d "$run/checkpoint" ] && resume=(--resume)
    "$CARGO_TARGET_DIR/release/mlr" train --out "$run" "${resume[@]}" --sampler hybrid --alpha 0.5 --seed 1 \
        --steps 40 --batch-size 64 --mini-batch 16 --warmup-steps 4 --eval-every 20 --checkpoint-every 10 \
        --max-query-tokens 32 --max-passage-tokens 64
}
# trunk calls cargo without -Z flags: give it build-std through cargo's environment config (only
# for trunk: native builds have no --target and must not see it).
# Trunk.toml has `offline = true`, so the crates (build-std's included: dlmalloc, …) are fetched
# first; on a fresh machine nothing else would download them.
mlr_trunk() {
    if [ -n "$MLR_BUILD_STD" ]; then
        CARGO_TARGET_DIR="$MLR_TRUNK_TARGET_DIR" CARGO_UNSTABLE_BUILD_STD="std,panic_abort" cargo fetch -q --target wasm32-unknown-unknown
        CARGO_TARGET_DIR="$MLR_TRUNK_TARGET_DIR" CARGO_UNSTABLE_BUILD_STD="std,panic_abort" trunk "$@"
    else
        cargo fetch -q --target wasm32-unknown-unknown
        CARGO_TARGET_DIR="$MLR_TRUNK_TARGET_DIR" trunk "$@"
    fi
}
