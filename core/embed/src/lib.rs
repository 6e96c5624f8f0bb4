//! Text in, unit vectors out: the inference facade of mlr.
//!
//! An [`Embedder`] owns a tokenizer and an encoder on some burn backend and turns texts into
//! L2-normalised sentence vectors (E5 prefixes, masked mean pooling, batching with padding,
//! truncation or windowing of long texts). [`cosine`] and [`top_k`] rank candidates.
//!
//! Design: everything is built from bytes (`config.json`, `tokenizer.json`, `model.safetensors`),
//! so the browser worker and the native CLI share this crate; the only difference between them is
//! the readback, which is blocking natively ([`Embedder::embed`]) and async in the browser
//! ([`Embedder::embed_async`]). [`ModelFiles`] holds those three files; natively it reads them
//! from a directory, naming the file and directory that fail; [`machine`] (native only) describes
//! the host for reports.
#![deny(missing_docs)]

mod files;
#[cfg(not(target_arch = "wasm32"))]
pub mod machine;

use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};
pub use files::{ModelFiles, ModelFilesError};
use mlr_model::{BertConfig, BertModel, ConfigError, Kernels};
use mlr_tokenize::{Batch, Sequence, TextTokenizer, TokenizeError};
pub use mlr_tokenize::{Overflow, Role};
use mlr_weights::{WeightFiles, WeightsError, WordTable, WordsError};

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Bad `config.json`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad `tokenizer.json` or a text it cannot encode.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// Bad `model.safetensors`.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The tokenizer produces ids the model has no embedding for.
    #[error("tokenizer.json has ids up to {} but the model only {model} word embeddings (config.json vocab_size)", tokenizer - 1)]
    VocabMismatch {
        /// One more than the largest id of the tokenizer.
        tokenizer: usize,
        /// Rows of the embedding table.
        model: usize,
    },
    /// The word table is kept in pieces and some the texts need are not loaded (the caller
    /// fetches them, [`Embedder::missing_word_pieces`], and tries again), or an id is beyond it.
    #[error(transparent)]
    Words(#[from] WordsError),
    /// The weights keep the word table in pieces, and none was given.
    #[error("model.safetensors keeps its word table in pieces beside it (words-*.q4_0), which were not given")]
    NoWordTable,
    /// Reading results back from the device failed.
    #[error("reading results from the device: {0}")]
    Readback(String),
    /// The encoder gave NaN or an infinity (broken or diverged weights): no vector is returned,
    /// since a NaN vector would rank first against anything.
    #[error("the encoder's vector of text {text} is not finite (NaN or infinite weights?)")]
    NonFinite {
        /// Position of the text in the request.
        text: usize,
    },
}

/// How texts are cut into encoder inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Longest encoder input, special tokens included (512 for e5-small).
    pub max_tokens: usize,
    /// What to do with longer texts.
    pub overflow: Overflow,
}

/// A tokenizer and an encoder on backend `B`.
#[derive(Debug)]
pub struct Embedder<B: Kernels> {
    model: BertModel<B>,
    /// The word table, when it is kept outside the model (in pieces, loaded as needed).
    words: Option<Arc<WordTable>>,
    tokenizer: Arc<TextTokenizer>,
    config: BertConfig,
    device: B::Device,
    options: EmbedOptions,
}

impl<B: Kernels> Embedder<B> {
    /// Loads a Hugging Face BERT-family directory given as the bytes of its three files.
    pub fn from_bytes(
        config_json: &[u8],
        tokenizer_json: &[u8],
        safetensors: &[u8],
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        Self::from_weight_files(config_json, tokenizer_json, WeightFiles::of(safetensors), device)
    }

    /// Loads a model from its config, tokenizer and [`WeightFiles`]: a word table kept in pieces
    /// is looked up in `weights.words` (shared, so pieces added later serve this embedder too).
    pub fn from_weight_files(
        config_json: &[u8],
        tokenizer_json: &[u8],
        weights: WeightFiles<'_>,
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        let config = BertConfig::from_json(&String::from_utf8_lossy(config_json))?;
        let tokenizer = TextTokenizer::from_bytes(tokenizer_json)?;
        let words = match weights.words_layout()? {
            None => None,
            Some(_) => Some(weights.words.ok_or(EmbedError::NoWordTable)?.clone()),
        };
        let model = mlr_weights::load_bert_files(&config, weights, device)?;
        let mut embedder = Self::new(model, tokenizer, config, device)?;
        embedder.words = words;
        Ok(embedder)
    }

    /// Loads the model of [`ModelFiles`].
    pub fn from_files(files: &ModelFiles, device: &B::Device) -> Result<Self, EmbedError> {
        Self::from_weight_files(&files.config_json, &files.tokenizer_json, files.weights(), device)
    }

    /// The pieces of the word table that `texts` need and that are not loaded yet (none when the
    /// model holds its table).
    pub fn missing_word_pieces<S: AsRef<str>>(&self, texts: &[S], role: Role) -> Result<Vec<usize>, EmbedError> {
        let Some(words) = &self.words else { return Ok(Vec::new()) };
        let batch = self.tokenize(texts, role)?;
        Ok(words.missing(&batch.ids))
    }

    /// The word table kept outside the model, if it is.
    pub fn word_table(&self) -> Option<&Arc<WordTable>> {
        self.words.as_ref()
    }

    /// Wraps an already built model. The tokenizer may be shared (an `Arc`): a trainer lends the
    /// one it trains with to the embedder of its dev evaluation.
    pub fn new(
        model: BertModel<B>,
        tokenizer: impl Into<Arc<TextTokenizer>>,
        config: BertConfig,
        device: &B::Device,
    ) -> Result<Self, EmbedError> {
        let tokenizer = tokenizer.into();
        if tokenizer.id_bound() > config.vocab_size {
            return Err(EmbedError::VocabMismatch { tokenizer: tokenizer.id_bound(), model: config.vocab_size });
        }
        let options = EmbedOptions { max_tokens: config.max_tokens(), overflow: Overflow::Truncate };
        Ok(Self { model, words: None, tokenizer, config, device: device.clone(), options })
    }

    /// Sets how long texts are handled; `max_tokens` is capped at what the position table allows.
    pub fn with_options(mut self, options: EmbedOptions) -> Self {
        self.options = EmbedOptions { max_tokens: options.max_tokens.min(self.config.max_tokens()), ..options };
        self
    }

    /// Turns the encoder's fused kernels on (the default) or off; see `mlr_model::BertModel::kernels`.
    pub fn with_kernels(mut self, on: bool) -> Self {
        self.model.kernels = on;
        self
    }

    /// The current options.
    pub fn options(&self) -> EmbedOptions {
        self.options
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel<B> {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The model's config.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Width of the output vectors.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Tokenises `texts` into one padded batch with the current options.
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], role: Role) -> Result<Batch, EmbedError> {
        Ok(self.tokenizer.batch(texts, role, self.options.max_tokens, self.options.overflow)?)
    }

    /// Runs the encoder on a batch and returns the masked mean of each row, on the device.
    ///
    /// # Shapes
    /// -> `[rows, hidden]`
    pub fn row_means(&self, batch: &Batch) -> Result<Tensor<B, 2>, EmbedError> {
        self.pooled(batch, false)
    }

    /// The masked mean of each row, L2-normalised if `normalize`, with the fused pooling kernel
    /// when the model's kernels are on.
    fn pooled(&self, batch: &Batch, normalize: bool) -> Result<Tensor<B, 2>, EmbedError> {
        let (ids, mask) = self.inputs(batch);
        let hidden = match &self.words {
            None if !self.model.has_word_table() => return Err(EmbedError::NoWordTable),
            None => self.model.forward(ids, mask.clone()),
            Some(words) => {
                let rows = words.gather(&batch.ids)?;
                let shape = [batch.rows.len(), batch.seq_len, self.config.hidden_size];
                self.model.forward_words(Tensor::from_data(TensorData::new(rows, shape), &self.device), mask.clone())
            }
        };
        Ok(mlr_kernels::mean_pool(hidden, mask, normalize, self.model.kernels))
    }

    /// Row vectors ready for [`combine`]: when every text is one row, pooling and normalisation
    /// happen on the device in one kernel (`combine`'s normalisation then changes nothing).
    fn text_rows(&self, batch: &Batch) -> Result<Tensor<B, 2>, EmbedError> {
        self.pooled(batch, batch.rows.len() == batch.texts)
    }

    /// The id and mask tensors of a batch.
    ///
    /// # Shapes
    /// -> ids `[rows, seq]`, mask `[rows, seq]`
    pub fn inputs(&self, batch: &Batch) -> (Tensor<B, 2, Int>, Tensor<B, 2>) {
        let shape = [batch.rows.len(), batch.seq_len];
        let ids: Vec<i32> = batch.ids.iter().map(|&i| i as i32).collect();
        let mask: Vec<f32> = batch.mask.iter().map(|&m| m as f32).collect();
        (
            Tensor::from_data(TensorData::new(ids, shape), &self.device),
            Tensor::from_data(TensorData::new(mask, shape), &self.device),
        )
    }

    /// Embeds `texts` in one batch (blocking readback: native backends).
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = self.tokenize(texts, role)?;
        if batch.rows.is_empty() {
            return Ok(Vec::new());
        }
        let data = self.text_rows(&batch)?.into_data();
        finite(combine(&batch, &floats(data)?, self.dim()))
    }

    /// Embeds `texts` in one batch with an async readback (required on WebGPU in the browser).
    pub async fn embed_async<S: AsRef<str>>(&self, texts: &[S], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = self.tokenize(texts, role)?;
        if batch.rows.is_empty() {
            return Ok(Vec::new());
        }
        let data =
            self.text_rows(&batch)?.into_data_async().await.map_err(|e| EmbedError::Readback(format!("{e:?}")))?;
        finite(combine(&batch, &floats(data)?, self.dim()))
    }

    /// Embeds many texts in batches of `batch_size`, shortest first so that padding is small;
    /// results come back in input order. `progress` is called with the number of texts done.
    pub fn embed_many<S: AsRef<str>>(
        &self,
        texts: &[S],
        role: Role,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_cached_key(|&i| texts[i].as_ref().len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let group: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
            let vectors = self.embed(&group, role).map_err(|e| match e {
                EmbedError::NonFinite { text } => EmbedError::NonFinite { text: chunk[text] },
                other => other,
            })?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
            progress(chunk.len());
        }
        Ok(out)
    }
}

/// The vectors, if every value is finite.
fn finite(vectors: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
    match vectors.iter().position(|v| v.iter().any(|x| !x.is_finite())) {
        Some(text) => Err(EmbedError::NonFinite { text }),
        None => Ok(vectors),
    }
}

fn floats(data: TensorData) -> Result<Vec<f32>, EmbedError> {
    data.convert::<f32>().into_vec::<f32>().map_err(|e| EmbedError::Readback(format!("{e:?}")))
}

/// Averages the row means of each text weighted by content length (one row unless windowed) and
/// L2-normalises the result.
fn combine(batch: &Batch, means: &[f32], dim: usize) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f64; dim]; batch.texts];
    let mut weights = vec![0f64; batch.texts];
    for (r, Sequence { text, content_len, .. }) in batch.rows.iter().enumerate() {
        let w = (*content_len).max(1) as f64;
        for (s, &m) in sums[*text].iter_mut().zip(&means[r * dim..(r + 1) * dim]) {
            *s += w * m as f64;
        }
        weights[*text] += w;
    }
    sums.into_iter()
        .zip(weights)
        .map(|(s, w)| {
            let mean: Vec<f64> = s.iter().map(|v| v / w).collect();
            let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            mean.iter().map(|v| (v / norm) as f32).collect()
        })
        .collect()
}

/// Cosine similarity of two vectors (their dot product divided by both norms).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb).max(1e-24)) as f32
}

/// The `k` best candidates for `query` by dot product (cosine for unit vectors), best first;
/// ties go to the lower index.
pub fn top_k(query: &[f32], candidates: &[Vec<f32>], k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> =
        candidates.iter().enumerate().map(|(i, c)| (i, c.iter().zip(query).map(|(a, b)| a * b).sum())).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_top_k() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        let c = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8], vec![0.0, 1.0]];
        assert_eq!(top_k(&[0.0, 1.0], &c, 3), vec![(1, 1.0), (3, 1.0), (2, 0.8)]);
    }

    #[test]
    fn non_finite_vectors_are_an_error_naming_the_text() {
        assert!(finite(vec![vec![0.6, 0.8], vec![1.0, 0.0]]).is_ok());
        let err = finite(vec![vec![0.6, 0.8], vec![f32::NAN, 0.0]]).unwrap_err();
        assert!(matches!(err, EmbedError::NonFinite { text: 1 }), "{err}");
        // combine() keeps a NaN mean NaN (the norm's floor does not hide it).
        let batch = Batch::from_rows(vec![Sequence { ids: vec![0, 2], text: 0, content_len: 1 }], 1, 1);
        assert!(finite(combine(&batch, &[f32::NAN, 1.0], 2)).is_err());
    }

    #[test]
    fn windows_are_weighted_by_content_length() {
        let rows = vec![
            Sequence { ids: vec![0, 5, 2], text: 0, content_len: 3 },
            Sequence { ids: vec![0, 2], text: 0, content_len: 1 },
            Sequence { ids: vec![0, 2], text: 1, content_len: 1 },
        ];
        let batch = Batch::from_rows(rows, 2, 1);
        let out = combine(&batch, &[1.0, 0.0, 0.0, 1.0, 0.0, 2.0], 2);
        // text 0: (3*[1,0] + 1*[0,1]) / 4 = [0.75, 0.25] -> normalised
        let n = (0.75f64.powi(2) + 0.25f64.powi(2)).sqrt();
        assert!((out[0][0] as f64 - 0.75 / n).abs() < 1e-6 && (out[0][1] as f64 - 0.25 / n).abs() < 1e-6);
        assert_eq!(out[1], vec![0.0, 1.0]);
    }
}
