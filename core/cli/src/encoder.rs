//! A model with its embedding cache: what `mlr eval` and `mlr demo build` encode with.
//!
//! [`Encoder::open`] loads a model directory and opens the cache of its vectors (keyed by the
//! sha256 of the model's files and the longest input); [`Encoder::encode`] takes vectors from the
//! cache where it can, encodes the rest and appends them to the cache as they finish, and counts
//! what it did in [`EncodeStats`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_embed::{Embedder, ModelFiles, Role};
use mlr_model::Kernels;
use serde_json::json;

use crate::cache::{key, EmbeddingCache};

/// Which model, and how it encodes.
pub struct EncoderSpec {
    /// Hugging Face model directory.
    pub model: PathBuf,
    /// Longest encoder input in tokens; longer texts are truncated.
    pub max_tokens: usize,
    /// Texts per encoder batch.
    pub batch_size: usize,
    /// The embedding cache's directory; `None`: no cache (nothing read or written).
    pub cache: Option<PathBuf>,
}

/// Encoding statistics.
#[derive(Default)]
pub struct EncodeStats {
    texts: usize,
    cached: usize,
    tokens: usize,
    seconds: f64,
}

impl EncodeStats {
    /// The statistics as the reports record them.
    pub fn json(&self) -> serde_json::Value {
        let tps = if self.seconds > 0.0 { self.tokens as f64 / self.seconds } else { 0.0 };
        json!({"texts": self.texts, "from_cache": self.cached, "encoded": self.texts - self.cached,
               "tokens_encoded": self.tokens, "seconds": self.seconds, "tokens_per_s": tps})
    }

    /// One sentence for the markdown reports.
    pub fn line(&self) -> String {
        let encoded = self.texts - self.cached;
        if encoded == 0 {
            return format!("all {} texts from the embedding cache.", self.texts);
        }
        format!(
            "{} texts ({} from the cache); {} encoded, {} tokens in {:.1} s = {:.0} tokens/s.",
            self.texts,
            self.cached,
            encoded,
            self.tokens,
            self.seconds,
            self.tokens as f64 / self.seconds.max(1e-9)
        )
    }
}

/// A model with its embedding cache.
pub struct Encoder<B: Kernels> {
    pub embedder: Embedder<B>,
    cache: EmbeddingCache,
    batch_size: usize,
    pub stats: EncodeStats,
}

impl<B: Kernels> Encoder<B> {
    /// Loads the model directory of `spec` (with mlr's fused kernels if `kernels`) and opens its
    /// embedding cache. Returns the encoder and the sha256 of the model's files (the cache's key).
    pub fn open(spec: &EncoderSpec, kernels: bool, device: &B::Device) -> Result<(Self, String)> {
        let model = &spec.model;
        eprintln!("loading {} …", model.display());
        let files = ModelFiles::read(model)?;
        let embedder = Embedder::<B>::from_files(&files, device)
            .with_context(|| format!("loading {}", model.display()))?
            .with_kernels(kernels);
        let options = mlr_embed::EmbedOptions { max_tokens: spec.max_tokens, ..embedder.options() };
        let embedder = embedder.with_options(options);
        let model_sha = sha256_files(&files)?;
        drop(files);
        let dim = embedder.dim();
        let cache = match &spec.cache {
            None => EmbeddingCache::disabled(dim),
            Some(dir) => {
                let cache = EmbeddingCache::open(dir, &format!("{}-t{}", &model_sha[..16], spec.max_tokens), dim)?;
                eprintln!("embedding cache {} ({} vectors)", cache.path().display(), cache.len());
                cache
            }
        };
        Ok((Encoder { embedder, cache, batch_size: spec.batch_size, stats: EncodeStats::default() }, model_sha))
    }

    /// Vectors of `texts` under `role`, from the cache where possible; the rest are encoded
    /// shortest first and appended to the cache as they finish.
    pub fn encode(&mut self, texts: &[String], role: Role, what: &str) -> Result<Vec<Vec<f32>>> {
        let role_name = role.prefix();
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| key(role_name, t)).collect();
        let mut missing: Vec<usize> = (0..texts.len()).filter(|&i| self.cache.get(&keys[i]).is_none()).collect();
        // By length (small padding), then by key so that repeated texts sit together and are
        // encoded once.
        missing.sort_by_key(|&i| (texts[i].len(), keys[i]));
        missing.dedup_by_key(|&mut i| keys[i]);
        self.stats.texts += texts.len();
        self.stats.cached += texts.len() - missing.len();
        if !missing.is_empty() {
            let bar = ProgressBar::new(missing.len() as u64).with_style(
                ProgressStyle::with_template(&format!(
                    "encoding {what}: {{bar:30}} {{pos}}/{{len}} texts  {{per_sec}}  elapsed {{elapsed}}  eta {{eta}}"
                ))
                .expect("valid template"),
            );
            let start = Instant::now();
            // Chunks of similar length; each is cached as soon as it is done.
            for chunk in missing.chunks(self.batch_size.max(1) * 8) {
                let group: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
                self.stats.tokens +=
                    self.embedder.tokenize(&group, role)?.rows.iter().map(|r| r.ids.len()).sum::<usize>();
                let vectors = self.embedder.embed_many(&group, role, self.batch_size, |n| bar.inc(n as u64))?;
                self.cache.insert_many(chunk.iter().map(|&i| keys[i]).zip(vectors).collect())?;
            }
            bar.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            self.stats.seconds += secs;
            eprintln!("encoded {} {what} in {secs:.1} s", missing.len());
        }
        Ok(keys.iter().map(|k| self.cache.get(k).expect("encoded above").clone()).collect())
    }
}

/// The model's identity (the embedding cache's key, `model_sha256` in reports): sha256 of
/// `config.json`, `tokenizer.json` (decompressed) and the weights' content digest
/// ([`mlr_weights::content_sha256`]), so a lossless change of the weights' format keeps it.
pub(crate) fn sha256_files(files: &ModelFiles) -> Result<String> {
    use sha2::{Digest, Sha256};
    let config = files.config()?;
    let weights = mlr_weights::content_sha256(&config, files.weights())
        .with_context(|| format!("{}", files.dir.join(ModelFiles::WEIGHTS).display()))?;
    let mut h = Sha256::new();
    h.update(&files.config_json);
    h.update(&files.tokenizer_json);
    h.update(weights.as_bytes());
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
