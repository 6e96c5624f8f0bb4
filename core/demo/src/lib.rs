//! The web demo's data, shared by `mlr demo build` / `mlr search` (native) and the browser worker.
//!
//! - [`manifest`]: `manifest.json`, the list of every shipped file with its size, sha256, format
//!   and encoding (gzip), the models (a fine-tuned model names its base; a word table in pieces
//!   lists them) with their corpus vectors and their precomputed dataset report.
//! - [`vectors`]: the compact vector file (Q8_0, int8 or f16 rows of every candidate, then every
//!   question).
//! - [`corpus`]: search over the candidate sentences of a LAReQA-format set (pooled or one
//!   language) and the language-bias view of one query (where the parallel answers land).
//!
//! No burn and no I/O: everything works on bytes and slices, so it runs unchanged in wasm.
#![deny(missing_docs)]

pub mod corpus;
pub mod manifest;
pub mod vectors;

pub use corpus::{AnswerGroup, Corpus, LangRank, Ranked};
pub use manifest::{DatasetEntry, FileEntry, Manifest, ModelEntry};
pub use vectors::{Rows, VectorFile, VectorFormat};

/// Why demo data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A vector file is malformed.
    #[error("vector file: {0}")]
    Vectors(String),
    /// The vectors do not fit the dataset.
    #[error("{0}")]
    Mismatch(String),
    /// `manifest.json` is malformed.
    #[error("manifest.json: {0}")]
    Manifest(String),
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
