//! Linker flags of the threaded bins (`worker-mt`, `bench-mt`), built for wasm32 with atomics
//! (scripts/build_threaded_worker.sh): one memory shared by every thread (`--shared-memory`,
//! imported, so that each web worker instantiates the module on it), up to 4 GiB (the wasm32
//! limit: a shared memory cannot grow past the maximum it declares), and the thread-local storage
//! symbols wasm-bindgen's thread support sets up for each thread. Per bin, so that nothing else
//! (the build scripts and proc-macros of the host among them) is linked with them.

const SHARED_MEMORY: &[&str] = &[
    "--shared-memory",
    "--import-memory",
    "--max-memory=4294967296",
    "--export=__wasm_init_tls",
    "--export=__tls_size",
    "--export=__tls_align",
    "--export=__tls_base",
];

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if arch == "wasm32" && features.split(',').any(|f| f == "atomics") {
        for bin in ["worker-mt", "bench-mt"] {
            for flag in SHARED_MEMORY {
                println!("cargo::rustc-link-arg-bin={bin}={flag}");
            }
        }
    }
}
