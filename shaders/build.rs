//! Sets `cfg(mlr_gemm)` on targets the CPU path's own GEMM has microkernels for (`src/cpu/gemm.rs`):
//! x86-64 (AVX2 + FMA, AVX-512, picked at run time) and wasm32 built with 128-bit SIMD (a
//! compile-time feature there: scripts/env.sh turns it on).
//!
//! Sets `cfg(mlr_threads)` where the CPU path runs on rayon's threads: natively, and on wasm32
//! built with shared memory (`+atomics`, the browser's threaded worker).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mlr_gemm)");
    println!("cargo::rustc-check-cfg=cfg(mlr_threads)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if arch == "x86_64" || (arch == "wasm32" && features.split(',').any(|f| f == "simd128")) {
        println!("cargo::rustc-cfg=mlr_gemm");
    }
    if arch != "wasm32" || features.split(',').any(|f| f == "atomics") {
        println!("cargo::rustc-cfg=mlr_threads");
    }
}
