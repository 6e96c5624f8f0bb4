#!/usr/bin/env bash
# Builds the page's threaded encoder worker (app/'s `worker-mt` bin: the wasm CPU on every core,
# app/src/threads.rs) into trunk's staging directory, as /worker-mt.js + /worker-mt_bg.wasm beside
# the /worker.js trunk builds. A trunk hook (Trunk.toml); run it through `mlr_trunk` (scripts/env.sh).
#
# Why outside trunk's own pipeline: this bin needs shared memory (`+atomics,+bulk-memory,
# +mutable-globals`, std rebuilt with them), and those flags must be the wasm32 target's rustflags
# (cargo decides target-specific dependencies, such as getrandom's js-sys under atomics, from
# them), while the page's other two builds must not get them: burn-wgpu, which the WebGPU worker
# needs, does not build with shared memory. One cargo invocation per set of flags, one target
# directory for this std variant ($MLR_THREADS_TARGET_DIR).
set -euo pipefail
: "${TRUNK_STAGING_DIR:?run through trunk: mlr_trunk build (scripts/env.sh)}"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${MLR_THREADS_TARGET_DIR:-$HOME/.cache/mlr/target-threads}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${MLR_THREADS_RUSTFLAGS:?run through mlr_trunk (scripts/env.sh)}"
# build-std is a -Z flag: Debian's rustc-web and rustup's stable both accept it this way (rustup's
# needs `rustup component add rust-src`, which scripts/setup.sh does).
export RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD="std,panic_abort"
case "${TRUNK_PROFILE:-release}" in
    release) profile=release dir=release ;;
    *) profile=dev dir=debug ;;
esac
cargo fetch -q --target wasm32-unknown-unknown
cargo build -q --offline --profile "$profile" --target wasm32-unknown-unknown \
    -p mlr-app --bin worker-mt --no-default-features
wasm-bindgen --target no-modules --no-typescript --out-dir "$TRUNK_STAGING_DIR" --out-name worker-mt \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/worker-mt.wasm"
