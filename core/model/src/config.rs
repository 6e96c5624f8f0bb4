//! The encoder's hyper-parameters, read from a Hugging Face `config.json`.

use serde::{Deserialize, Serialize};

/// Why a `config.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid JSON or lacks a required field.
    #[error("config.json: {0}")]
    Json(#[from] serde_json::Error),
    /// The file is valid but describes a model this encoder does not implement.
    #[error("config.json: unsupported {field} = {value} ({why})")]
    Unsupported {
        /// The offending field.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// What is supported instead.
        why: &'static str,
    },
}

/// Hyper-parameters of a BERT / XLM-R family encoder. Field names mirror the Hugging Face
/// `config.json`, so the file deserialises directly; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `"bert"`, `"xlm-roberta"` or `"roberta"`; decides where position ids start.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation; only the exact (erf) `"gelu"` is implemented.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the position-embedding table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token (XLM-R: positions start at `pad_token_id + 1`).
    #[serde(default)]
    pub pad_token_id: usize,
    /// Only `"absolute"` position embeddings are implemented.
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
}

/// More layers than any encoder has: a `num_hidden_layers` beyond it is a damaged file (one of
/// 4294967295 once made loading list 68 billion tensor names).
const MAX_LAYERS: usize = 1024;

fn default_model_type() -> String {
    "bert".into()
}
fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_pos_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Parses and validates a `config.json`.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// A config for the given sizes with BERT defaults (used for small test models).
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        intermediate_size: usize,
    ) -> Self {
        Self {
            model_type: default_model_type(),
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            hidden_act: default_act(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            position_embedding_type: default_pos_type(),
        }
    }

    /// Checks that this encoder implements the described architecture.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let unsupported = |field, value: String, why| Err(ConfigError::Unsupported { field, value, why });
        match self.model_type.as_str() {
            "bert" | "xlm-roberta" | "roberta" => {}
            other => return unsupported("model_type", other.into(), "expected bert, xlm-roberta or roberta"),
        }
        if self.hidden_act != "gelu" {
            return unsupported("hidden_act", self.hidden_act.clone(), "only exact (erf) \"gelu\" is implemented");
        }
        if self.position_embedding_type != "absolute" {
            return unsupported(
                "position_embedding_type",
                self.position_embedding_type.clone(),
                "only \"absolute\" is implemented",
            );
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return unsupported(
                "num_attention_heads",
                self.num_attention_heads.to_string(),
                "must be non-zero and divide hidden_size",
            );
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return unsupported(field, "0".into(), "must be positive");
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return unsupported("layer_norm_eps", self.layer_norm_eps.to_string(), "must be finite and positive");
        }
        if self.model_type != "bert" && self.pad_token_id >= self.vocab_size {
            return unsupported(
                "pad_token_id",
                self.pad_token_id.to_string(),
                "must be a row of the word-embedding table",
            );
        }
        // Every table's element count fits in memory arithmetic (also on 32-bit wasm).
        let limit = isize::MAX as usize / 4;
        for (field, rows, width) in [
            ("vocab_size", self.vocab_size, self.hidden_size),
            ("max_position_embeddings", self.max_position_embeddings, self.hidden_size),
            ("type_vocab_size", self.type_vocab_size, self.hidden_size),
            ("intermediate_size", self.intermediate_size, self.hidden_size),
        ] {
            if rows.checked_mul(width).is_none_or(|n| n > limit) {
                return unsupported(
                    field,
                    rows.to_string(),
                    "its table of hidden_size columns would not fit in memory",
                );
            }
        }
        if self.num_hidden_layers > MAX_LAYERS {
            return unsupported(
                "num_hidden_layers",
                self.num_hidden_layers.to_string(),
                "more than the 1024 layers any encoder has",
            );
        }
        // The whole model, as `tensor_names` lists it, in f32: the per-table checks above leave
        // hidden_size² (four per layer) and the layer count unchecked.
        let (h, ff) = (self.hidden_size, self.intermediate_size);
        // q, k, v and the attention output (h × h + h each), the feed-forward pair, two LayerNorms.
        let layer = || {
            h.checked_mul(h)?
                .checked_add(h)?
                .checked_mul(4)?
                .checked_add(ff.checked_mul(h)?.checked_mul(2)?)?
                .checked_add(ff)?
                .checked_add(h.checked_mul(5)?)
        };
        let tables = || {
            let rows = self.vocab_size.checked_add(self.max_position_embeddings)?.checked_add(self.type_vocab_size)?;
            rows.checked_add(2)?.checked_mul(h)
        };
        if layer().is_none_or(|n| n > limit) {
            return unsupported("hidden_size", h.to_string(), "one layer's parameters would not fit in memory");
        }
        let total = layer().and_then(|l| l.checked_mul(self.num_hidden_layers)).and_then(|n| n.checked_add(tables()?));
        if total.is_none_or(|n| n > limit) {
            return unsupported(
                "num_hidden_layers",
                self.num_hidden_layers.to_string(),
                "the model's parameters would not fit in memory",
            );
        }
        if self.max_position_embeddings <= self.position_offset() {
            return unsupported(
                "max_position_embeddings",
                self.max_position_embeddings.to_string(),
                "leaves no room for any token",
            );
        }
        Ok(())
    }

    /// The position id of the first token: 0 for BERT, `pad_token_id + 1` for (XLM-)RoBERTa.
    pub fn position_offset(&self) -> usize {
        if self.model_type == "bert" {
            0
        } else {
            self.pad_token_id + 1
        }
    }

    /// The longest sequence (special tokens included) that the position table can embed.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }

    /// Serialises as a Hugging Face `config.json` (BertModel when `model_type` is `bert`).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("config serialises");
        let arch = if self.model_type == "bert" { "BertModel" } else { "XLMRobertaModel" };
        value["architectures"] = serde_json::json!([arch]);
        serde_json::to_string_pretty(&value).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E5: &str = r#"{"architectures":["BertModel"],"model_type":"bert","hidden_act":"gelu",
        "hidden_size":384,"intermediate_size":1536,"layer_norm_eps":1e-12,"max_position_embeddings":512,
        "num_attention_heads":12,"num_hidden_layers":12,"pad_token_id":0,"type_vocab_size":2,
        "vocab_size":250037,"position_embedding_type":"absolute"}"#;

    #[test]
    fn parses_e5_small() {
        let c = BertConfig::from_json(E5).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.vocab_size), (384, 12, 250037));
        assert_eq!(c.position_offset(), 0);
        assert_eq!(c.max_tokens(), 512);
        let back = BertConfig::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn xlmr_positions_start_after_pad() {
        let c = BertConfig::from_json(
            &E5.replace("\"bert\"", "\"xlm-roberta\"").replace("\"pad_token_id\":0", "\"pad_token_id\":1"),
        )
        .unwrap();
        assert_eq!(c.position_offset(), 2);
        assert_eq!(c.max_tokens(), 510);
    }

    #[test]
    fn rejects_unsupported() {
        let err = BertConfig::from_json(&E5.replace("\"gelu\"", "\"relu\"")).unwrap_err();
        assert!(err.to_string().contains("hidden_act = relu"), "{err}");
        let err = BertConfig::from_json(&E5.replace("\"bert\"", "\"t5\"")).unwrap_err();
        assert!(err.to_string().contains("model_type"), "{err}");
        let err =
            BertConfig::from_json(&E5.replace("\"num_attention_heads\":12", "\"num_attention_heads\":7")).unwrap_err();
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
        let err = BertConfig::from_json("{\"hidden_size\": 3").unwrap_err();
        assert!(matches!(err, ConfigError::Json(_)));
    }

    #[test]
    fn rejects_values_that_give_nan_or_overflow() {
        for eps in ["-1", "0", "1e999"] {
            let err = BertConfig::from_json(&E5.replace("1e-12", eps));
            // 1e999 is not an f64 JSON number serde accepts; either way it is refused.
            let err = err.unwrap_err().to_string();
            assert!(err.contains("layer_norm_eps") || eps == "1e999", "{eps}: {err}");
        }
        let err = BertConfig::from_json(&E5.replace("1e-12", "-1")).unwrap_err().to_string();
        assert_eq!(err, "config.json: unsupported layer_norm_eps = -1 (must be finite and positive)");
        let xlmr = E5.replace("\"bert\"", "\"xlm-roberta\"");
        let err =
            BertConfig::from_json(&xlmr.replace("\"pad_token_id\":0", &format!("\"pad_token_id\":{}", usize::MAX)));
        assert!(err.unwrap_err().to_string().contains("unsupported pad_token_id = 18446744073709551615"));
        let err = BertConfig::from_json(&E5.replace("250037", &(usize::MAX / 3).to_string())).unwrap_err();
        assert!(err.to_string().contains("vocab_size") && err.to_string().contains("would not fit in memory"), "{err}");
    }

    #[test]
    fn a_layer_count_or_width_beyond_memory_is_refused() {
        // Found by tests/fuzz.rs: 4294967295 layers were accepted, and listing the model's tensors
        // then asked for gigabytes (an abort).
        let layers = |n: &str| {
            BertConfig::from_json(&E5.replace("\"num_hidden_layers\":12", &format!("\"num_hidden_layers\":{n}")))
        };
        let err = layers("4294967295").unwrap_err().to_string();
        assert_eq!(
            err,
            "config.json: unsupported num_hidden_layers = 4294967295 (more than the 1024 layers any encoder has)"
        );
        assert!(layers("1024").is_ok() && layers("0").is_ok());
        // A width whose square overflows passed every per-table check (tables of few rows).
        let err = BertConfig::from_json(&BertConfig::new(1, 1 << 32, 1, 1, 1).to_json()).unwrap_err().to_string();
        assert_eq!(
            err,
            "config.json: unsupported hidden_size = 4294967296 (one layer's parameters would not fit in memory)"
        );
    }
}
