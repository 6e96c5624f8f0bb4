# Sourced by scripts/bench.sh and scripts/bench_threads.sh (after scripts/env.sh): prepares the
# browser encode benchmark (scripts/bench_browser.py) and sets
#   bench_inputs   the token ids `mlr-bench inputs` wrote,
#   bench_onnx     the ONNX graph of the default model (scripts/build_onnx.py), for transformers.js,
#   bench_npm      node_modules with transformers.js (npm, at scripts/bench_browser/package-lock.json),
#   bench_dist     mlr's pages: bench.html (app/src/bin/bench.rs, one thread, on the page) and
#                  bench-mt.html (app/src/bin/bench_mt.rs, every core, in a worker).
# Needs the native release build (`mlr-bench`).
bench_browser_setup() {
    local bench="$CARGO_TARGET_DIR/release/mlr-bench" py="$MLR_CACHE/venv/bin/python"
    mkdir -p "$MLR_CACHE/bench"
    bench_inputs="$CARGO_TARGET_DIR/bench-inputs.json"
    "$bench" inputs --model "$MLR_MODEL_DIR" --out "$bench_inputs"
    bench_onnx="$MLR_CACHE/bench/model.onnx"
    if [ ! -f "$bench_onnx" ] || [ "$MLR_MODEL_DIR/model.safetensors" -nt "$bench_onnx" ]; then
        "$py" -c "import onnx" 2>/dev/null || "$py" -m pip install -q onnx
        "$py" scripts/build_onnx.py "$MLR_MODEL_DIR" "$bench_onnx"
    fi
    # transformers.js at the version of scripts/bench_browser/package-lock.json (install scripts
    # off: they would download onnxruntime-node and sharp binaries, which the browser never uses).
    local npm_dir="$MLR_CACHE/bench/npm"
    mkdir -p "$npm_dir"
    if ! cmp -s scripts/bench_browser/package-lock.json "$npm_dir/package-lock.json" || [ ! -d "$npm_dir/node_modules" ]; then
        cp scripts/bench_browser/package.json scripts/bench_browser/package-lock.json "$npm_dir/"
        (cd "$npm_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
    bench_npm="$npm_dir/node_modules"
    # mlr's side: app/src/bin/bench.rs for wasm32, in the browser tests' target directory with their
    # flags (their build is reused), bound by wasm-bindgen for mlr.html; bench_mt.rs with shared
    # memory, in the threaded worker's target directory with its flags (as
    # scripts/build_threaded_worker.sh builds the demo's), for mlr-mt.html.
    local wasm_flags=()
    [ "$MLR_TOOLCHAIN" = debian ] && wasm_flags=(-Zbuild-std=std,panic_abort)
    CARGO_TARGET_DIR="$MLR_WASM_TARGET_DIR" cargo build --release --target wasm32-unknown-unknown "${wasm_flags[@]}" -p mlr-app --bin bench
    bench_dist="$MLR_CACHE/bench/dist"
    rm -rf "$bench_dist"
    wasm-bindgen --target web --no-typescript --out-dir "$bench_dist" "$MLR_WASM_TARGET_DIR/wasm32-unknown-unknown/release/bench.wasm"
    cp scripts/bench_browser/mlr.html "$bench_dist/bench.html"
    CARGO_TARGET_DIR="$MLR_THREADS_TARGET_DIR" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$MLR_THREADS_RUSTFLAGS" \
    RUSTC_BOOTSTRAP=1 \
        cargo build --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort -p mlr-app --bin bench-mt --no-default-features
    wasm-bindgen --target no-modules --no-typescript --out-dir "$bench_dist" --out-name bench-mt \
        "$MLR_THREADS_TARGET_DIR/wasm32-unknown-unknown/release/bench-mt.wasm"
    cp scripts/bench_browser/mlr-mt.html "$bench_dist/bench-mt.html"
    cp scripts/bench_browser/bench-mt-boot.js "$bench_dist/"
}
