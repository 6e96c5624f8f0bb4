//! The loaded model as the worker holds it: the encoder on the backend chosen ([`Engine`]), the
//! manifest it came from, and its word table kept in pieces fetched as texts need them. Shared by
//! the worker's request loop ([`crate::worker`]) and the collections' half of it
//! ([`crate::docs::worker`]).

use std::sync::Arc;

use burn::backend::NdArray;
#[cfg(feature = "webgpu")]
use burn::backend::Wgpu;
use mlr_demo::{FileEntry, Manifest};
use mlr_embed::{Embedder, Role};
use mlr_weights::WordTable;

use crate::fetch::fetch_verified;

/// The model on the backend that was chosen (boxed: the embedders are kilobytes, of different sizes).
pub enum Engine {
    /// wasm CPU (ndarray), on every thread of [`crate::threads`].
    Cpu(Box<Embedder<NdArray<f32>>>),
    /// WebGPU (not in the threaded worker: burn-wgpu does not build with shared memory).
    #[cfg(feature = "webgpu")]
    Gpu(Box<Embedder<Wgpu>>),
}

/// `$body` with `$e` bound to the engine's embedder, whichever backend it runs on.
macro_rules! with_embedder {
    ($engine:expr, $e:ident => $body:expr) => {
        match $engine {
            Engine::Cpu($e) => $body,
            #[cfg(feature = "webgpu")]
            Engine::Gpu($e) => $body,
        }
    };
}

impl Engine {
    /// Embeds texts in one batch.
    pub async fn embed(&self, texts: &[&str], role: Role) -> Result<Vec<Vec<f32>>, String> {
        with_embedder!(self, e => e.embed_async(texts, role).await).map_err(|e| e.to_string())
    }

    /// Token count of `text` as a query (special tokens included), before truncation.
    pub fn query_tokens(&self, text: &str) -> Result<usize, String> {
        let tokenizer = with_embedder!(self, e => e.tokenizer());
        tokenizer.ids(text, Role::Query).map(|ids| ids.len()).map_err(|e| e.to_string())
    }

    /// Ids of `text` as the encoder sees it in `role` (prefix and special tokens included, before
    /// truncation); `None` when the tokenizer refuses the text.
    pub fn input_len(&self, text: &str, role: Role) -> Option<usize> {
        let tokenizer = with_embedder!(self, e => e.tokenizer());
        tokenizer.ids(text, role).ok().map(|ids| ids.len())
    }

    /// The longest encoder input.
    pub fn max_tokens(&self) -> usize {
        with_embedder!(self, e => e.options().max_tokens)
    }

    /// Width of the vectors.
    pub fn dim(&self) -> usize {
        with_embedder!(self, e => e.dim())
    }

    /// Whether it runs on WebGPU.
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Engine::Cpu(_))
    }

    /// Pieces of the word table that `texts` need and that are not loaded yet.
    fn missing_word_pieces(&self, texts: &[&str], role: Role) -> Result<Vec<usize>, String> {
        with_embedder!(self, e => e.missing_word_pieces(texts, role)).map_err(|e| e.to_string())
    }
}

/// A word table kept in pieces (`mlr_weights::words`): fetched as texts need them, shared by
/// every model that uses it (a base and the models fine-tuned from it).
pub(crate) struct WordPieces {
    /// The table, filled as pieces arrive.
    pub(crate) table: Arc<WordTable>,
    /// Its pieces in the manifest.
    pub(crate) files: Vec<FileEntry>,
}

/// Fetches (or reads from the Cache API) the word-table pieces `texts` need; returns the bytes
/// downloaded.
pub(crate) async fn fetch_word_pieces(loaded: &Loaded, texts: &[&str], role: Role) -> Result<u64, String> {
    let Some(words) = &loaded.words else { return Ok(0) };
    let mut downloaded = 0;
    for i in loaded.engine.missing_word_pieces(texts, role)? {
        let entry = words.files.get(i).ok_or_else(|| format!("word table piece {i} is not in the manifest"))?;
        let fetched = fetch_verified(&loaded.base, entry, async |_, _, _| {}).await?;
        if !fetched.cached {
            downloaded += fetched.bytes.len() as u64;
        }
        words.table.insert(i, fetched.bytes).map_err(|e| format!("{}: {e}", entry.path))?;
    }
    Ok(downloaded)
}

/// What the worker holds once a model is loaded.
pub(crate) struct Loaded {
    /// The demo's manifest.
    pub(crate) manifest: Manifest,
    /// The model's name in it.
    pub(crate) model: String,
    /// The encoder.
    pub(crate) engine: Engine,
    /// Where the demo's files are served from.
    pub(crate) base: String,
    /// The word table, when the model's weights keep it in pieces.
    pub(crate) words: Option<WordPieces>,
}
