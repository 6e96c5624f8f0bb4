//! Fuzz target of `config.json` (see mlr-fuzz): what `BertConfig::from_json` accepts describes a
//! model that can be built: sizes that fit in memory arithmetic, a position table with room for a
//! token, a finite positive epsilon.

use mlr_fuzz::{check, text};
use mlr_model::BertConfig;

#[global_allocator]
static ALLOC: mlr_fuzz::LimitedAlloc = mlr_fuzz::LimitedAlloc;

/// multilingual-e5-small's config.json as Hugging Face ships it.
const E5_SMALL: &str = r#"{
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "torch_dtype": "float32",
  "transformers_version": "4.39.3",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 250037
}"#;

#[test]
fn config_json() {
    let xlmr = E5_SMALL
        .replace("\"bert\"", "\"xlm-roberta\"")
        .replace("\"pad_token_id\": 0", "\"pad_token_id\": 1")
        .replace("\"max_position_embeddings\": 512", "\"max_position_embeddings\": 514")
        .replace("\"type_vocab_size\": 2", "\"type_vocab_size\": 1");
    check("config json", text(vec![E5_SMALL.into(), xlmr], 256), |bytes| {
        let Ok(c) = BertConfig::from_json(&bytes.lossy()) else { return Ok(false) };
        if !(c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps {}", c.layer_norm_eps).into());
        }
        if c.num_attention_heads == 0 || c.hidden_size % c.num_attention_heads != 0 {
            return Err("heads do not divide the width".into());
        }
        if c.max_position_embeddings <= c.position_offset() || c.max_tokens() == 0 {
            return Err("no position for a token".into());
        }
        // The tensors a model of it has (what loading asks a checkpoint for): element counts in
        // f32 must fit in memory arithmetic, also on 32-bit wasm's scale of isize::MAX / 4.
        let limit = isize::MAX as usize / 4;
        let mut total = 0usize;
        for (name, shape) in mlr_model::tensor_names(&c) {
            let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= limit);
            total = n.and_then(|n| total.checked_add(n)).filter(|&t| t <= limit).ok_or(format!("{name}: {shape:?}"))?;
        }
        Ok(true)
    });
}
