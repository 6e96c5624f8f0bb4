#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs every test of mlr:
#   1. native: unit tests of every crate (the WGSL kernels vs their references on wgpu and naga
#      validation among them), doc tests, and the parity tests of tests/ on the CPU
#      (ndarray) and wgpu (lavapipe here, a real GPU elsewhere) backends, with parity numbers printed;
#   2. evaluator cross-check: scripts/crosscheck_eval.py compares `mlr trec-eval` with pytrec_eval on
#      synthetic runs full of ties, and every LAReQA number of `mlr eval` (XQuAD-R dev split, en/de/zh,
#      the default model) with pytrec_eval/numpy/scipy recomputed from its TREC run;
#   3. browser: tests/tests/browser.rs compiled to wasm32 and run in headless Chromium on WebGPU and
#      on the wasm CPU backend (wasm-bindgen-test-runner + ChromeDriver);
#   4. end to end: `mlr demo build` and trunk build the demo page, and tests/tests/e2e.rs drives it
#      in headless Chromium with the full default model: a mixed-language search compared with
#      `mlr search`, the language-bias view, the evaluator against `mlr eval --vectors`, the
#      in-browser encoder against the precomputed vectors, on the wasm CPU backend and on WebGPU
#      (the software adapter, one short query); no Content-Security-Policy violation on the page or
#      in the worker, under the header and, as a static host serves dist/, the meta tag alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh

stamp() { date +%s; }
t0=$(stamp)
step() { printf '\n\033[1m== %s\033[0m (%ss elapsed)\n' "$*" "$(( $(stamp) - t0 ))"; }

step "formatting: cargo fmt --check (rustfmt.toml)"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
else
    echo "WARNING: rustfmt is not installed for this toolchain; the formatting check did not run" >&2
fi

step "native tests: every crate, CPU + wgpu parity"
cargo test --release -- --nocapture

step "evaluator cross-check against pytrec_eval"
xc=$(mktemp -d)
mlr="$CARGO_TARGET_DIR/release/mlr"
"$mlr" eval --data data/xquad-r --langs en,de,zh --split dev --trec-run "$xc/dev.run" --trec-depth 0 --out "$xc/dev.json" >/dev/null
"$MLR_CACHE/venv/bin/python" scripts/crosscheck_eval.py --mlr "$mlr" --real-run "$xc/dev.run" --real-qrels "$xc/dev.run.qrels" --real-json "$xc/dev.json"
"$MLR_CACHE/venv/bin/python" scripts/crosscheck_retrieve.py --mlr "$mlr" --model "$MLR_MODEL_DIR"
rm -rf "$xc"

step "browser tests: wasm32 in headless Chromium (WebGPU + wasm CPU)"
wasm_flags=()
[ "$MLR_TOOLCHAIN" = debian ] && wasm_flags=(-Zbuild-std=std,panic_abort -Zpanic-abort-tests)
(
    cd tests
    CARGO_TARGET_DIR="$MLR_WASM_TARGET_DIR" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
    WASM_BINDGEN_TEST_TIMEOUT=1200 \
        cargo test --release --target wasm32-unknown-unknown "${wasm_flags[@]}" --test browser
)

step "demo page: mlr demo build + trunk build + end-to-end test with the full model"
# The fine-tuned model of scripts/serve.sh is shipped beside the default one when it is there
# (side-by-side bias views); the tests do not need it.
mlr_demo_build hybrid
mlr_trunk build
cargo test --release -p mlr-tests --test e2e -- --ignored --nocapture

step "all tests passed in $(( $(stamp) - t0 )) s"
