//! The encoder worker's entry point: WebGPU, or the wasm CPU on one thread.

fn main() {
    mlr_app::worker::register();
}
