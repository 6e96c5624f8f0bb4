//! The mlr web demo: a yew single-page app; the tokenizer and the encoder live in a web worker
//! (`bin/worker.rs`) so the page never blocks. The worker runs burn's wgpu backend on WebGPU when
//! the browser has a hardware adapter, else burn's ndarray backend on the wasm CPU, and says which.
#![deny(missing_docs)]

pub mod app;
pub mod fetch;
pub mod gpu;
pub mod protocol;
pub mod worker;

pub use app::App;
pub use worker::EncoderReactor;
