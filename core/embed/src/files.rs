//! The three files of a Hugging Face model directory, as bytes: `config.json`, `tokenizer.json`
//! and `model.safetensors`.
//!
//! [`ModelFiles`] is what every loader of mlr starts from: [`crate::Embedder::from_files`] (the
//! CLI, the bench), the trainer (which records [`ModelFiles::dir`] in its checkpoints and exports)
//! and the bench's engines. Natively [`ModelFiles::read`] reads a directory; the browser worker
//! downloads the same three files and builds the embedder from their bytes. A failure names the
//! file and the directory ([`ModelFilesError`]).

use std::path::PathBuf;

use mlr_model::{BertConfig, ConfigError};
use mlr_tokenize::{TextTokenizer, TokenizeError};

/// Why a model directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    /// One of the three files could not be read (missing, unreadable).
    #[error(
        "reading {} (a model directory needs config.json, tokenizer.json and model.safetensors)",
        dir.join(file).display()
    )]
    Read {
        /// The model directory.
        dir: PathBuf,
        /// The file's name inside it ([`ModelFiles::CONFIG`], …).
        file: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a valid model config.
    #[error("{}: {source}", dir.join(ModelFiles::CONFIG).display())]
    Config {
        /// The model directory.
        dir: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// `tokenizer.json` is not a tokenizer mlr can use.
    #[error("{}: {source}", dir.join(ModelFiles::TOKENIZER).display())]
    Tokenizer {
        /// The model directory.
        dir: PathBuf,
        /// What is wrong with it.
        #[source]
        source: TokenizeError,
    },
}

/// The three files of a Hugging Face model directory, as bytes.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Where they came from (recorded in checkpoints and exports; empty if not from a directory).
    pub dir: PathBuf,
    /// `config.json`.
    pub config_json: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer_json: Vec<u8>,
    /// `model.safetensors`.
    pub safetensors: Vec<u8>,
}

impl ModelFiles {
    /// The model config's file name.
    pub const CONFIG: &'static str = "config.json";
    /// The tokenizer's file name.
    pub const TOKENIZER: &'static str = "tokenizer.json";
    /// The weights' file name.
    pub const WEIGHTS: &'static str = "model.safetensors";
    /// The three names, in the order their bytes are hashed for cache keys.
    pub const NAMES: [&'static str; 3] = [Self::CONFIG, Self::TOKENIZER, Self::WEIGHTS];

    /// Reads the three files of directory `dir` (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(dir: &std::path::Path) -> Result<Self, ModelFilesError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            config_json: Self::read_one(dir, Self::CONFIG)?,
            tokenizer_json: Self::read_one(dir, Self::TOKENIZER)?,
            safetensors: Self::read_one(dir, Self::WEIGHTS)?,
        })
    }

    /// Reads one of the three files of directory `dir` (native only), for a caller that needs
    /// only it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_one(dir: &std::path::Path, file: &'static str) -> Result<Vec<u8>, ModelFilesError> {
        std::fs::read(dir.join(file)).map_err(|source| ModelFilesError::Read { dir: dir.to_path_buf(), file, source })
    }

    /// The parsed and validated `config.json`.
    pub fn config(&self) -> Result<BertConfig, ModelFilesError> {
        BertConfig::from_json(&String::from_utf8_lossy(&self.config_json))
            .map_err(|source| ModelFilesError::Config { dir: self.dir.clone(), source })
    }

    /// The tokenizer of `tokenizer.json`.
    pub fn tokenizer(&self) -> Result<TextTokenizer, ModelFilesError> {
        TextTokenizer::from_bytes(&self.tokenizer_json)
            .map_err(|source| ModelFilesError::Tokenizer { dir: self.dir.clone(), source })
    }

    /// The three files' bytes in [`ModelFiles::NAMES`] order (what a content hash runs over).
    pub fn bytes(&self) -> [&[u8]; 3] {
        [&self.config_json, &self.tokenizer_json, &self.safetensors]
    }
}
