//! The mlr web demo: a yew single-page app; the tokenizer, the encoder, the XQuAD-R corpus and its
//! vectors live in a web worker (`bin/worker.rs`) so the page never blocks. The worker runs burn's
//! wgpu backend on WebGPU when the browser has a hardware adapter, else burn's ndarray backend on
//! the wasm CPU, and says which.
//!
//! - [`app`]: the page (search, language-bias view, evaluator, encoder check): the root component,
//!   the bridge to the worker, and the page's parts (`components`, one per panel) wired to
//!   [`state`].
//! - [`state`]: what the page shows, the actions that change it, and the address it keeps.
//! - [`worker`]: the worker's request loop (load, search, re-embed, evaluate); [`engine`]: the
//!   loaded model it holds.
//! - [`docs`]: "Your documents": the user's own files as collections, embedded in the worker,
//!   kept in the browser's file system, searched with the language-bias view.
//! - [`protocol`]: the messages between them.
//! - [`fetch`]: sha256-checked downloads kept in the Cache API.
//! - [`gpu`]: what WebGPU adapter the browser offers.
//! - [`workers`]: which of the two encoder workers the page starts (WebGPU, or every CPU core).
//! - [`threads`]: the CPU backend on every core (rayon on web workers), where the page allows it.
//! - [`crash`]: the worker's last words when it panics, for the page.
//! - [`bench`]: the browser half of `mlr-bench encode` (`bin/bench.rs`, `scripts/bench_browser/mlr.html`).
#![deny(missing_docs)]

pub mod app;
pub mod bench;
mod components;
pub mod crash;
pub mod docs;
pub mod engine;
pub mod fetch;
pub mod gpu;
pub mod protocol;
pub mod state;
pub mod threads;
pub mod worker;
pub mod workers;

pub use app::App;
pub use worker::EncoderReactor;
