//! The threaded encoder worker's entry point: the wasm CPU on every core (`mlr_app::threads`),
//! built with shared memory and without WebGPU.

fn main() {
    mlr_app::worker::register();
}

/// A thread of the encoder's rayon pool: the helper workers of `mlr_app::threads` call this.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn mlr_rayon_helper(queue: u32) {
    mlr_app::threads::run_helper(queue);
}
