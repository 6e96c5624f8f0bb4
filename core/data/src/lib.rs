//! Datasets of mlr, parsed from bytes so that the same code runs natively and in the browser.
//!
//! - [`lareqa`]: LAReQA-format answer-sentence retrieval sets (SQuAD JSON with `sentences` and
//!   `sentence_breaks`, one file per language), e.g. XQuAD-R, with the committed article split.
//! - [`tatoeba`]: line-aligned X–English sentence pairs for bitext retrieval.
//! - [`batches`]: training batches of parallel pairs (hybrid, X-X-mono, X-Y, X-X samplers).
//! - [`sources`]: training data as users have it (LAReQA directories, JSON lines of parallel
//!   pairs, bitext file pairs), each a table of parallel pairs.
//! - [`mix`]: batches across several sources, drawn by size or weight.
//!
//! Reading files from disk is a thin layer on top ([`lareqa::LareqaSet::load_dir`],
//! [`tatoeba::load_dir`]); it is the only part that touches the file system.
#![deny(missing_docs)]

pub mod batches;
pub mod lareqa;
pub mod mix;
pub mod sources;
pub mod tatoeba;

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid JSON or does not have the expected shape.
    #[error("{path}: line {line}, column {column}: {message}")]
    Json {
        /// The file.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The content is well-formed but inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or directory).
        path: String,
        /// What is wrong and where.
        message: String,
    },
}

impl DataError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.to_string(), message: message.into() }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}
