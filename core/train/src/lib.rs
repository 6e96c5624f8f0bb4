//! Hybrid batch training of mlr's encoder (arXiv 2408.10536), native only.
//!
//! A [`Trainer`] fine-tunes a [`mlr_model::BertModel`] on any burn autodiff backend (the `mlr`
//! binary offers ndarray on the CPU and wgpu) with:
//!
//! - batches from [`mlr_data::batches::BatchSampler`] (hybrid α, X-X-mono, X-Y, X-X), across one
//!   or more sources ([`TrainData`]: LAReQA directories, JSON lines, bitext) drawn by size or
//!   weight ([`mlr_data::mix::MixedSampler`]);
//! - InfoNCE over cosine similarity with in-batch negatives and temperature τ ([`loss`]), one
//!   shared encoder with the E5 `query: ` / `passage: ` prefixes, masked mean pooling;
//! - AdamW (decoupled weight decay), linear warm-up and decay ([`schedule`]), global-norm
//!   gradient clipping, the word-embedding table frozen by default;
//! - evaluation on the dev articles every N steps with [`mlr_eval::lareqa`] (the code of
//!   `mlr eval`), keeping the best model by dev Mul. mAP;
//! - resumable [`checkpoint`]s (model, optimiser, sampler, step, history) every N steps and on
//!   request (Ctrl-C in the CLI): a resumed run continues bit for bit;
//! - [`export`] of the result as a Hugging Face directory.
//!
//! Everything a paper leaves open is a field of [`TrainConfig`] with a recorded default.
#![deny(missing_docs)]

pub mod checkpoint;
mod config;
mod data;
pub mod export;
pub mod loss;
mod optim;
pub mod schedule;
mod trainer;

use std::path::{Path, PathBuf};

pub use checkpoint::{EvalLog, RunState, StepLog};
pub use config::{TrainConfig, TRAIN_LANGS};
pub use data::{SourceError, TrainData, ALL_LANGS};
pub use mlr_embed::{ModelFiles, ModelFilesError};
pub use trainer::{Event, Outcome, Trainer};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad configuration value.
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint that cannot be resumed from.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Training sources that cannot be used.
    #[error("data: {0}")]
    Data(#[from] crate::data::SourceError),
    /// A dataset that could not be read.
    #[error(transparent)]
    Dataset(#[from] mlr_data::DataError),
    /// Sources that cannot serve the sampler.
    #[error(transparent)]
    Sampler(#[from] mlr_data::mix::MixError),
    /// The loss or the gradients stopped being numbers; the step was not applied.
    #[error("step {step}: {what}; the last checkpoint is untouched: start a new run with a lower learning rate or a higher τ")]
    Diverged {
        /// The step.
        step: usize,
        /// What was not finite.
        what: String,
    },
    /// Reading a tensor back from the device failed.
    #[error("device: {0}")]
    Device(String),
    /// A model directory that could not be read, or a config.json or tokenizer.json in it that
    /// cannot be used (the error names the file).
    #[error(transparent)]
    ModelFiles(#[from] mlr_embed::ModelFilesError),
    /// Bad weights.
    #[error(transparent)]
    Weights(#[from] mlr_weights::WeightsError),
    /// Tokenisation failed.
    #[error(transparent)]
    Tokenize(#[from] mlr_tokenize::TokenizeError),
    /// Embedding for evaluation failed.
    #[error(transparent)]
    Embed(#[from] mlr_embed::EmbedError),
    /// Evaluation failed.
    #[error(transparent)]
    Eval(#[from] mlr_eval::EvalError),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests;
