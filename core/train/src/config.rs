//! The training configuration: every choice the paper leaves open is a named field with a recorded
//! default, read from a TOML or JSON file and overridable on the command line.

use std::path::Path;

use mlr_data::batches::Strategy;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The nine training languages of the paper's XQuAD-R setup; el and vi stay zero-shot.
pub const TRAIN_LANGS: [&str; 9] = ["ar", "de", "en", "es", "hi", "ru", "th", "tr", "zh"];

/// Everything that determines a training run. Two runs with equal configs (and data) produce
/// bit-identical models on the same backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Batch sampler: `hybrid`, `x-x-mono`, `x-y` or `x-x`.
    pub sampler: String,
    /// Probability of a monolingual batch (`hybrid` only; `x-x-mono` is 1 and `x-y` is 0).
    pub alpha: f64,
    /// Languages that appear in training batches (`["all"]`: every language of the data).
    pub train_langs: Vec<String>,
    /// Optimiser steps.
    pub steps: usize,
    /// (query, passage) pairs per batch; the other passages of the batch are the negatives.
    pub batch_size: usize,
    /// Peak learning rate (AdamW).
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// AdamW ε.
    pub adam_epsilon: f64,
    /// Steps of linear warm-up to `lr` (step i of the warm-up uses `lr·(i+1)/warmup_steps`); then
    /// linear decay towards 0 at `steps`.
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this value (0 = no clipping).
    pub grad_clip: f64,
    /// InfoNCE temperature: logits are cosine / τ.
    pub tau: f64,
    /// Longest query in tokens (prefix and special tokens included); longer ones are truncated.
    pub max_query_tokens: usize,
    /// Longest passage in tokens.
    pub max_passage_tokens: usize,
    /// Add one hard negative per pair: another sentence of the answer's paragraph.
    pub hard_negatives: bool,
    /// Keep the word-embedding table fixed (96 M of e5-small's 118 M parameters).
    pub freeze_word_embeddings: bool,
    /// Leave out of the loss a passage that is also a right answer of the query: another
    /// question's answer can be the same sentence (or its translation), which would otherwise be
    /// pushed away as a negative. The paper does not say; off reproduces plain in-batch negatives.
    pub mask_shared_answers: bool,
    /// Seed of the batch sampler (the only randomness: the encoder has no dropout here).
    pub seed: u64,
    /// Evaluate on the dev articles every this many steps (0 = only after the last step).
    pub eval_every: usize,
    /// Write a checkpoint every this many steps (0 = only at the end and on interruption).
    pub checkpoint_every: usize,
    /// Texts per encoder batch during dev evaluation.
    pub eval_batch_size: usize,
    /// Cached InfoNCE (GradCache): encode a step's queries and passages in mini-batches of this
    /// many texts, sorted by length, without a graph; take the loss's gradient with respect to
    /// every embedding; then re-encode each mini-batch with a graph and back-propagate its slice
    /// of that gradient. The same gradients as the whole batch at once, with memory bounded by
    /// the mini-batch. 0 = off: the whole batch in one graph (encoded 8 texts at a time, sorted
    /// by length, so that short texts are not padded to the batch's longest).
    pub mini_batch: usize,
    /// With several training sources, the probability of drawing each for a batch, one weight per
    /// source in the order given (normalised). Empty: proportional to each source's size (its
    /// (group, language) rows), as the paper samples its datasets.
    pub data_weights: Vec<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sampler: "hybrid".into(),
            alpha: 0.5,
            train_langs: TRAIN_LANGS.iter().map(|s| s.to_string()).collect(),
            steps: 200,
            batch_size: 16,
            lr: 3e-5,
            weight_decay: 0.01,
            adam_epsilon: 1e-8,
            warmup_steps: 20,
            grad_clip: 1.0,
            tau: 0.05,
            max_query_tokens: 48,
            max_passage_tokens: 96,
            hard_negatives: false,
            freeze_word_embeddings: true,
            mask_shared_answers: true,
            seed: 42,
            eval_every: 50,
            checkpoint_every: 50,
            eval_batch_size: 32,
            mini_batch: 0,
            data_weights: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Reads a `.toml` or `.json` file (fields not given keep their defaults).
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let config: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?
        } else {
            toml::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?
        };
        config.validate()?;
        Ok(config)
    }

    /// The sampling strategy.
    pub fn strategy(&self) -> Result<Strategy, TrainError> {
        Ok(match self.sampler.as_str() {
            "hybrid" => Strategy::Hybrid { alpha: self.alpha },
            "x-x-mono" => Strategy::XXMono,
            "x-y" => Strategy::XY,
            "x-x" => Strategy::XX,
            other => {
                return Err(TrainError::Config(format!(
                    "unknown sampler {other:?} (expected hybrid, x-x-mono, x-y or x-x)"
                )))
            }
        })
    }

    /// The effective α (None for `x-x`).
    pub fn effective_alpha(&self) -> Option<f64> {
        self.strategy().ok().and_then(|s| s.alpha())
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        self.strategy()?;
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("alpha must be in [0, 1], got {}", self.alpha));
        }
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(format!("batch_size must be at least 2 (in-batch negatives), got {}", self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if !(self.tau > 0.0 && self.tau.is_finite()) {
            return bad(format!("tau must be positive, got {}", self.tau));
        }
        let finite = [self.weight_decay, self.grad_clip, self.adam_epsilon].iter().all(|v| v.is_finite());
        if !finite || self.weight_decay < 0.0 || self.grad_clip < 0.0 || self.adam_epsilon <= 0.0 {
            return bad("weight_decay and grad_clip must be finite and ≥ 0, adam_epsilon finite and > 0".into());
        }
        if self.warmup_steps > self.steps {
            return bad(format!("warmup_steps ({}) exceeds steps ({})", self.warmup_steps, self.steps));
        }
        if self.max_query_tokens < 4 || self.max_passage_tokens < 4 {
            return bad("max_query_tokens and max_passage_tokens must be at least 4".into());
        }
        if self.train_langs.is_empty() {
            return bad("train_langs is empty".into());
        }
        if self.data_weights.iter().any(|w| !w.is_finite() || *w < 0.0)
            || (!self.data_weights.is_empty() && self.data_weights.iter().sum::<f64>() <= 0.0)
        {
            return bad(format!("data_weights must be finite and ≥ 0, one above 0; got {:?}", self.data_weights));
        }
        if self.eval_batch_size == 0 {
            return bad("eval_batch_size must be at least 1".into());
        }
        Ok(())
    }

    /// The fields in which `other` differs from `self` (for resume checks).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let a = serde_json::to_value(self).expect("serialisable");
        let b = serde_json::to_value(other).expect("serialisable");
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec![] };
        a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {v} → {}", b[k])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("mlr-train-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.toml");
        std::fs::write(&path, "sampler = \"x-y\"\nsteps = 70\ntau = 0.1\n").unwrap();
        let c = TrainConfig::from_file(&path).unwrap();
        assert_eq!((c.sampler.as_str(), c.steps, c.tau, c.batch_size), ("x-y", 70, 0.1, 16));
        assert_eq!(c.effective_alpha(), Some(0.0));
        std::fs::write(&path, "stepz = 7\n").unwrap();
        let err = TrainConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("stepz"), "{err}");
        std::fs::write(&path, "sampler = \"bogus\"\n").unwrap();
        assert!(TrainConfig::from_file(&path).unwrap_err().to_string().contains("unknown sampler"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn validation_and_differences() {
        let c = TrainConfig::default();
        assert!(c.validate().is_ok());
        assert!(TrainConfig { batch_size: 1, ..c.clone() }.validate().is_err());
        assert!(TrainConfig { alpha: 1.5, ..c.clone() }.validate().is_err());
        assert!(TrainConfig { warmup_steps: 500, ..c.clone() }.validate().is_err());
        assert!(TrainConfig { grad_clip: f64::NAN, ..c.clone() }.validate().is_err());
        let d = TrainConfig { seed: 7, ..c.clone() };
        assert_eq!(c.differences(&d), vec!["seed: 42 → 7".to_string()]);
    }
}
