//! Messages between the page and the encoder worker, and the codec that carries them.
//!
//! Messages cross the worker boundary as plain JavaScript objects (serde-wasm-bindgen), so they can
//! be read in the browser's devtools.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

/// What the page asks the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Fetch and load the model under `base_url` (`config.json`, `tokenizer.json`,
    /// `model.safetensors`). A software WebGPU adapter is used only if `allow_software_gpu`.
    Load {
        /// Directory URL, e.g. `models/multilingual-e5-small`.
        base_url: String,
        /// Use a fallback (software) WebGPU adapter if that is all there is.
        allow_software_gpu: bool,
    },
    /// Cosine similarity of two texts, both embedded as queries.
    Similarity {
        /// Request id, echoed in the answer.
        id: u32,
        /// First text.
        a: String,
        /// Second text.
        b: String,
    },
}

/// What the worker tells the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Bytes of `file` received so far (`total` is 0 when the server gives no length).
    Progress {
        /// File name.
        file: String,
        /// Bytes received.
        loaded: u64,
        /// Bytes expected.
        total: u64,
    },
    /// A step of loading, in words.
    Status(String),
    /// The model is ready on `backend` (adapter name, or why it is the CPU).
    Ready {
        /// Human-readable backend label.
        backend: String,
        /// Milliseconds spent loading.
        load_ms: f64,
    },
    /// A similarity answer.
    Similarity {
        /// The request id.
        id: u32,
        /// Cosine similarity.
        value: f32,
        /// Milliseconds for both embeddings.
        ms: f64,
    },
    /// Something failed; the message says what.
    Error(String),
}

/// A worker codec that posts messages as structured JavaScript values (serde-wasm-bindgen).
#[derive(Debug)]
pub struct JsCodec;

impl yew_agent::Codec for JsCodec {
    fn encode<I: Serialize>(input: I) -> JsValue {
        serde_wasm_bindgen::to_value(&input).expect("worker messages serialise")
    }

    fn decode<O: for<'de> Deserialize<'de>>(input: JsValue) -> O {
        serde_wasm_bindgen::from_value(input).expect("worker messages deserialise")
    }
}
