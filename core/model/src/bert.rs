//! The post-LN BERT encoder (embeddings + transformer layers), as burn modules.
//!
//! Ported from Hugging Face `modeling_bert.py` (BertEmbeddings, BertSelfAttention, BertSelfOutput,
//! BertIntermediate, BertOutput): same operations in the same order, so that hidden states match the
//! reference to float rounding.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::BertConfig;

/// A `[rows, cols]` parameter initialiser: `(name, shape) -> values`, row-major.
///
/// The encoder is built from one of these, so the same constructor serves random initialisation
/// and loading a checkpoint (see `mlr-weights`).
pub trait WeightSource {
    /// Returns the values of the named tensor, which must have `shape` (HF layout: Linear weights
    /// are `[out, in]`).
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String>;
}

/// Largest word-embedding chunk in bytes. WebGPU guarantees storage bindings of only 128 MiB and
/// wgpu's default buffer limit is 256 MiB, while e5-small's table is 384 MB: it is stored in row
/// chunks that every backend can bind.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;

/// Rows per word-embedding chunk for a given width.
pub fn chunk_rows(hidden: usize) -> usize {
    (MAX_CHUNK_BYTES / (4 * hidden.max(1))).max(1)
}

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// The word-embedding table `[vocab, hidden]`, split into row chunks of [`chunk_rows`] rows.
    pub word: Vec<Param<Tensor<B, 2>>>,
    /// `[max_positions, hidden]`
    pub position: Param<Tensor<B, 2>>,
    /// `[type_vocab, hidden]`
    pub token_type: Param<Tensor<B, 2>>,
    /// Normalises the sum.
    pub layer_norm: LayerNorm<B>,
    /// Position id of the first token.
    pub position_offset: usize,
}

impl<B: Backend> BertEmbeddings<B> {
    /// Looks up word vectors across the chunks of the table.
    ///
    /// # Shapes
    /// ids `[n]` -> `[n, hidden]`
    pub fn words(&self, ids: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        if let [table] = self.word.as_slice() {
            return table.val().select(0, ids);
        }
        let mut start = 0i64;
        let mut sum: Option<Tensor<B, 2>> = None;
        for chunk in &self.word {
            let table = chunk.val();
            let rows = table.dims()[0] as i64;
            let local = ids.clone().sub_scalar(start);
            let inside = local.clone().greater_equal_elem(0).bool_and(local.clone().lower_elem(rows));
            let picked = table.select(0, local.clamp(0, rows - 1)) * inside.float().unsqueeze_dim::<2>(1);
            sum = Some(match sum {
                None => picked,
                Some(acc) => acc + picked,
            });
            start += rows;
        }
        sum.expect("the table has at least one chunk")
    }

    /// # Shapes
    /// ids `[batch, seq]` -> `[batch, seq, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [b, seq] = ids.dims();
        let words = self.words(ids.reshape([b * seq]));
        let h = words.dims()[1];
        let words = words.reshape([b, seq, h]);
        let start = self.position_offset;
        let positions = self.position.val().slice([start..start + seq]).unsqueeze_dim::<3>(0); // [1, s, h]
        let token_type = self.token_type.val().slice([0..1]).unsqueeze_dim::<3>(0); // [1, 1, h]
        self.layer_norm.forward(words + positions + token_type)
    }
}

/// Multi-head self-attention with its output projection and post-LN residual.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// Query projection.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection.
    pub output: Linear<B>,
    /// LayerNorm after the residual.
    pub layer_norm: LayerNorm<B>,
    /// Number of heads.
    pub n_heads: usize,
}

impl<B: Backend> BertAttention<B> {
    /// # Shapes
    /// x `[b, s, h]`, mask_bias `[b, 1, 1, s]` (0 for tokens, a large negative for padding) -> `[b, s, h]`
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, s, h] = x.dims();
        let d = h / self.n_heads;
        let heads = |t: Tensor<B, 3>| t.reshape([b, s, self.n_heads, d]).swap_dims(1, 2); // [b, nh, s, d]
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt()) + mask_bias; // [b, nh, s, s]
        let probs = softmax(scores, 3);
        let context = probs.matmul(v).swap_dims(1, 2).reshape([b, s, h]);
        self.layer_norm.forward(self.output.forward(context) + x)
    }
}

/// The feed-forward block: dense + GELU + dense, then post-LN residual.
#[derive(Module, Debug)]
pub struct BertFeedForward<B: Backend> {
    /// `hidden -> intermediate`
    pub intermediate: Linear<B>,
    /// `intermediate -> hidden`
    pub output: Linear<B>,
    /// LayerNorm after the residual.
    pub layer_norm: LayerNorm<B>,
}

impl<B: Backend> BertFeedForward<B> {
    /// # Shapes
    /// `[b, s, h]` -> `[b, s, h]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let inner = gelu(self.intermediate.forward(x.clone()));
        self.layer_norm.forward(self.output.forward(inner) + x)
    }
}

/// One transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention sub-block.
    pub attention: BertAttention<B>,
    /// Feed-forward sub-block.
    pub feed_forward: BertFeedForward<B>,
}

/// The encoder: embeddings and a stack of layers, no pooler (mean pooling needs none).
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// Input embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Transformer layers.
    pub layers: Vec<BertLayer<B>>,
}

/// The additive attention bias for a `[b, s]` 0/1 mask: 0 where attended, -1e9 on padding.
///
/// # Shapes
/// mask `[b, s]` -> `[b, 1, 1, s]`
pub fn attention_bias<B: Backend>(mask: Tensor<B, 2>) -> Tensor<B, 4> {
    let [b, s] = mask.dims();
    (mask.neg() + 1.0).mul_scalar(-1e9).reshape([b, 1, 1, s])
}

impl<B: Backend> BertModel<B> {
    /// Builds the encoder from named weights (HF BertModel key names, without a `bert.` prefix).
    pub fn from_source(
        config: &BertConfig,
        source: &mut dyn WeightSource,
        device: &B::Device,
    ) -> Result<Self, String> {
        let h = config.hidden_size;
        let word_values = source.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let word: Vec<Param<Tensor<B, 2>>> = word_values
            .chunks(chunk_rows(h) * h)
            .map(|rows| Param::from_tensor(Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / h, h]), device)))
            .collect();
        drop(word_values);
        let mut tensor2 = |name: &str, rows: usize, cols: usize| -> Result<Tensor<B, 2>, String> {
            let values = source.get(name, &[rows, cols])?;
            Ok(Tensor::from_data(TensorData::new(values, [rows, cols]), device))
        };
        let position = tensor2("embeddings.position_embeddings.weight", config.max_position_embeddings, h)?;
        let token_type = tensor2("embeddings.token_type_embeddings.weight", config.type_vocab_size, h)?;
        let mut vector = |name: &str, len: usize| -> Result<Tensor<B, 1>, String> {
            let values = source.get(name, &[len])?;
            Ok(Tensor::from_data(TensorData::new(values, [len]), device))
        };
        let emb_ln = (vector("embeddings.LayerNorm.weight", h)?, vector("embeddings.LayerNorm.bias", h)?);
        drop(vector);
        let layer_norm = |(gamma, beta): (Tensor<B, 1>, Tensor<B, 1>)| {
            let mut ln = LayerNormConfig::new(gamma.dims()[0]).with_epsilon(config.layer_norm_eps).init(device);
            ln.gamma = Param::from_tensor(gamma);
            ln.beta = Some(Param::from_tensor(beta));
            ln
        };
        let embeddings = BertEmbeddings {
            word,
            position: Param::from_tensor(position),
            token_type: Param::from_tensor(token_type),
            layer_norm: layer_norm(emb_ln),
            position_offset: config.position_offset(),
        };

        let mut linear = |name: &str, d_in: usize, d_out: usize| -> Result<Linear<B>, String> {
            // HF stores nn.Linear as [out, in]; burn's Linear multiplies by [in, out].
            let w = source.get(&format!("{name}.weight"), &[d_out, d_in])?;
            let b = source.get(&format!("{name}.bias"), &[d_out])?;
            let w = Tensor::<B, 2>::from_data(TensorData::new(w, [d_out, d_in]), device).transpose();
            let b = Tensor::<B, 1>::from_data(TensorData::new(b, [d_out]), device);
            Ok(Linear { weight: Param::from_tensor(w), bias: Some(Param::from_tensor(b)) })
        };
        let mut linears = Vec::new();
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let ff = config.intermediate_size;
            linears.push([
                linear(&format!("{p}.attention.self.query"), h, h)?,
                linear(&format!("{p}.attention.self.key"), h, h)?,
                linear(&format!("{p}.attention.self.value"), h, h)?,
                linear(&format!("{p}.attention.output.dense"), h, h)?,
                linear(&format!("{p}.intermediate.dense"), h, ff)?,
                linear(&format!("{p}.output.dense"), ff, h)?,
            ]);
        }
        drop(linear);
        let mut layers = Vec::new();
        for (l, [query, key, value, output, intermediate, ff_output]) in linears.into_iter().enumerate() {
            let p = format!("encoder.layer.{l}");
            let mut ln = |name: String| -> Result<LayerNorm<B>, String> {
                let gamma = source.get(&format!("{name}.weight"), &[h])?;
                let beta = source.get(&format!("{name}.bias"), &[h])?;
                Ok(layer_norm((
                    Tensor::from_data(TensorData::new(gamma, [h]), device),
                    Tensor::from_data(TensorData::new(beta, [h]), device),
                )))
            };
            let attention = BertAttention {
                query,
                key,
                value,
                output,
                layer_norm: ln(format!("{p}.attention.output.LayerNorm"))?,
                n_heads: config.num_attention_heads,
            };
            let feed_forward =
                BertFeedForward { intermediate, output: ff_output, layer_norm: ln(format!("{p}.output.LayerNorm"))? };
            layers.push(BertLayer { attention, feed_forward });
        }
        Ok(Self { embeddings, layers })
    }

    /// Runs the encoder and returns the last hidden state.
    ///
    /// # Shapes
    /// ids `[b, s]`, mask `[b, s]` (1.0 token / 0.0 padding) -> `[b, s, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let bias = attention_bias(mask);
        let mut x = self.embeddings.forward(ids);
        for layer in &self.layers {
            x = layer.feed_forward.forward(layer.attention.forward(x, bias.clone()));
        }
        x
    }

    /// Like [`forward`](Self::forward) but returns every hidden state: the embedding output first,
    /// then the output of each layer (`num_hidden_layers + 1` tensors), as HF's
    /// `output_hidden_states=True`.
    pub fn forward_hidden_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Vec<Tensor<B, 3>> {
        let bias = attention_bias(mask);
        let mut states = vec![self.embeddings.forward(ids)];
        for layer in &self.layers {
            let x = states.last().expect("non-empty").clone();
            states.push(layer.feed_forward.forward(layer.attention.forward(x, bias.clone())));
        }
        states
    }
}

/// Names and HF shapes of every tensor a [`BertModel`] of this config reads, in load order.
pub fn tensor_names(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let h = config.hidden_size;
    let ff = config.intermediate_size;
    let mut names = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".into(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![config.type_vocab_size, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", ff, h),
            ("output.dense", h, ff),
        ] {
            names.push((format!("{p}.{name}.weight"), vec![out, inp]));
            names.push((format!("{p}.{name}.bias"), vec![out]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            names.push((format!("{p}.{name}.weight"), vec![h]));
            names.push((format!("{p}.{name}.bias"), vec![h]));
        }
    }
    names
}
