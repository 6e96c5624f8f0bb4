//! The three files of a Hugging Face model directory, as bytes: `config.json`, `tokenizer.json`
//! and `model.safetensors`.
//!
//! [`ModelFiles`] is what every loader of mlr starts from: [`crate::Embedder::from_files`] (the
//! CLI, the bench), the trainer (which records [`ModelFiles::dir`] in its checkpoints and exports)
//! and the bench's engines. Natively [`ModelFiles::read`] reads a directory; the browser worker
//! downloads the same three files and builds the embedder from their bytes. A failure names the
//! file and the directory ([`ModelFilesError`]).
//!
//! Two forms written by `mlr demo build` are read as well: `tokenizer.json.gz` in place of
//! `tokenizer.json`, and a `model.safetensors` that leaves tensors to a base model (a fine-tuned
//! model's frozen word table): its metadata names the base's file, relative to the directory, and
//! that file is read into [`ModelFiles::base_safetensors`] (its sha256 is checked when loading).
//! A word table kept in pieces beside the weights (`mlr_weights::words`) is read whole into
//! [`ModelFiles::word_table`], each piece checked against its sha256.

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
    /// The base model a compact `model.safetensors` names could not be read or is not one.
    #[error("{}: its base model {}: {message}", dir.join(ModelFiles::WEIGHTS).display(), dir.join(path).display())]
    Base {
        /// The model directory.
        dir: PathBuf,
        /// The base's file as the metadata names it.
        path: String,
        /// What went wrong.
        message: String,
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
    /// The base model's `model.safetensors`, when `safetensors` leaves tensors to it.
    pub base_safetensors: Option<Vec<u8>>,
    /// The word table, when the weights (or the base's) keep it in pieces beside the file: every
    /// piece read and checked.
    pub word_table: Option<std::sync::Arc<mlr_weights::WordTable>>,
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
        let tokenizer_json = match Self::read_one(dir, Self::TOKENIZER) {
            Err(missing) if !dir.join(Self::TOKENIZER).exists() && dir.join("tokenizer.json.gz").exists() => {
                let gz = std::fs::read(dir.join("tokenizer.json.gz"));
                gz.and_then(|gz| gunzip(&gz)).map_err(|_| missing)?
            }
            other => other?,
        };
        let safetensors = Self::read_one(dir, Self::WEIGHTS)?;
        let base_error =
            |path: &str, message: String| ModelFilesError::Base { dir: dir.to_path_buf(), path: path.into(), message };
        let (base_safetensors, base_dir) = match mlr_weights::base_of(&safetensors) {
            Ok(Some(base)) => {
                let path = dir.join(&base.path);
                let bytes = std::fs::read(&path).map_err(|e| base_error(&base.path, e.to_string()))?;
                (Some(bytes), path.parent().map(std::path::Path::to_path_buf))
            }
            // A malformed file is reported when it is loaded, with the loader's message.
            Ok(None) | Err(_) => (None, None),
        };
        // The word table's pieces sit beside the file whose metadata lays them out.
        let pieces_error = |file: &str, message: String| ModelFilesError::Base {
            dir: dir.to_path_buf(),
            path: file.to_string(),
            message: format!("word table piece: {message}"),
        };
        let mut word_table = None;
        let weights =
            mlr_weights::WeightFiles { safetensors: &safetensors, base: base_safetensors.as_deref(), words: None };
        if let Ok(Some(layout)) = weights.words_layout() {
            let home = match mlr_weights::words_layout(&safetensors) {
                Ok(Some(_)) => dir.to_path_buf(),
                _ => base_dir.unwrap_or_else(|| dir.to_path_buf()),
            };
            let table = mlr_weights::WordTable::new(layout.clone()).map_err(|e| pieces_error("", e.to_string()))?;
            for (i, file) in layout.files.iter().enumerate() {
                let bytes = std::fs::read(home.join(file)).map_err(|e| pieces_error(file, e.to_string()))?;
                table.insert(i, bytes).map_err(|e| pieces_error(file, e.to_string()))?;
            }
            word_table = Some(std::sync::Arc::new(table));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config_json: Self::read_one(dir, Self::CONFIG)?,
            tokenizer_json,
            safetensors,
            base_safetensors,
            word_table,
        })
    }

    /// The weights as [`mlr_weights::WeightFiles`] (the file, its base, its word table).
    pub fn weights(&self) -> mlr_weights::WeightFiles<'_> {
        mlr_weights::WeightFiles {
            safetensors: &self.safetensors,
            base: self.base_safetensors.as_deref(),
            words: self.word_table.as_ref(),
        }
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

/// Decompresses a gzip file.
#[cfg(not(target_arch = "wasm32"))]
fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
