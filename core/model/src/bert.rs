//! The post-LN BERT encoder (embeddings + transformer layers), as burn modules.
//!
//! Ported from Hugging Face `modeling_bert.py` (BertEmbeddings, BertSelfAttention, BertSelfOutput,
//! BertIntermediate, BertOutput): same operations in the same order, so that hidden states match the
//! reference to float rounding.
//!
//! The hot path goes through `mlr-kernels`: fused attention, bias + GELU and bias + residual +
//! LayerNorm. On wgpu these are WGSL kernels; elsewhere, and with [`BertModel::kernels`] off, they
//! are the plain-burn references, which are the same ops in the same order as the HF port.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use mlr_kernels::Kernels;

use crate::BertConfig;

/// A `[rows, cols]` parameter initialiser: `(name, shape) -> values`, row-major.
///
/// The encoder is built from one of these, so the same constructor serves random initialisation
/// and loading a checkpoint (see `mlr-weights`).
pub trait WeightSource {
    /// Returns the values of the named tensor, which must have `shape` (HF layout: Linear weights
    /// are `[out, in]`).
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError>;
}

/// Why a [`WeightSource`] could not give a tensor; each names the tensor (as the source stores it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    /// The source has no such tensor.
    #[error("tensor `{name}` is missing")]
    Missing {
        /// The tensor's name.
        name: String,
    },
    /// The tensor's shape is not the one the config implies.
    #[error("tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    Shape {
        /// The tensor's name.
        name: String,
        /// Its shape in the source.
        found: Vec<usize>,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// The tensor's values cannot be used (an unsupported dtype, a value that is not finite).
    #[error("tensor `{name}`: {message}")]
    Values {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Largest word-embedding chunk in bytes. WebGPU guarantees storage bindings of only 128 MiB and
/// wgpu's default buffer limit is 256 MiB, while e5-small's table is 384 MB: it is stored in row
/// chunks that every backend can bind.
pub const MAX_CHUNK_BYTES: usize = 64 << 20;

/// Rows per word-embedding chunk for a given width.
pub fn chunk_rows(hidden: usize) -> usize {
    (MAX_CHUNK_BYTES / (4 * hidden.max(1))).max(1)
}

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (r, row) in values.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
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
    pub fn forward(&self, ids: Tensor<B, 2, Int>, epsilon: f64, fused: bool) -> Tensor<B, 3>
    where
        B: Kernels,
    {
        let [b, seq] = ids.dims();
        let words = self.words(ids.reshape([b * seq]));
        let h = words.dims()[1];
        self.forward_words(words.reshape([b, seq, h]), epsilon, fused)
    }

    /// The rest of [`forward`](Self::forward) on word vectors looked up elsewhere (a table kept
    /// outside the model, see [`BertModel::from_source_without_words`]).
    ///
    /// # Shapes
    /// words `[batch, seq, hidden]` -> `[batch, seq, hidden]`
    pub fn forward_words(&self, words: Tensor<B, 3>, epsilon: f64, fused: bool) -> Tensor<B, 3>
    where
        B: Kernels,
    {
        let [_, seq, h] = words.dims();
        let start = self.position_offset;
        let positions = self.position.val().slice(start..start + seq).unsqueeze_dim::<3>(0); // [1, s, h]
        let token_type = self.token_type.val().slice(0..1).reshape([h]); // [h]
        norm(&self.layer_norm, words + positions, token_type, None, epsilon, fused)
    }
}

/// `LayerNorm(x + bias + residual)` with `ln`'s scale and shift.
pub(crate) fn norm<B: Kernels>(
    ln: &LayerNorm<B>,
    x: Tensor<B, 3>,
    bias: Tensor<B, 1>,
    residual: Option<Tensor<B, 3>>,
    epsilon: f64,
    fused: bool,
) -> Tensor<B, 3> {
    let beta = match &ln.beta {
        Some(beta) => beta.val(),
        None => ln.gamma.val().zeros_like(),
    };
    mlr_kernels::layer_norm(x, bias, residual, ln.gamma.val(), beta, epsilon, fused)
}

/// `x · weight`, without the bias (the kernels add it).
pub(crate) fn matmul<B: Kernels>(linear: &Linear<B>, x: Tensor<B, 3>, fused: bool) -> Tensor<B, 3> {
    mlr_kernels::linear(x, linear.weight.val(), None, fused)
}

/// `x · weight + bias`.
pub(crate) fn dense<B: Kernels>(linear: &Linear<B>, x: Tensor<B, 3>, fused: bool) -> Tensor<B, 3> {
    mlr_kernels::linear(x, linear.weight.val(), linear.bias.as_ref().map(|b| b.val()), fused)
}

/// The bias of a linear layer, zeros if it has none.
pub(crate) fn bias<B: Backend>(linear: &Linear<B>) -> Tensor<B, 1> {
    match &linear.bias {
        Some(b) => b.val(),
        None => {
            let w = linear.weight.val();
            Tensor::zeros([w.dims()[1]], &w.device())
        }
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

impl<B: Kernels> BertAttention<B> {
    /// # Shapes
    /// x `[b, s, h]`, mask `[b, s]` (1.0 token, 0.0 padding) -> `[b, s, h]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>, epsilon: f64, fused: bool) -> Tensor<B, 3> {
        let q = dense(&self.query, x.clone(), fused);
        let k = dense(&self.key, x.clone(), fused);
        let v = dense(&self.value, x.clone(), fused);
        let context = mlr_kernels::attention(q, k, v, mask, self.n_heads, fused); // [b, s, h]
        norm(&self.layer_norm, matmul(&self.output, context, fused), bias(&self.output), Some(x), epsilon, fused)
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

impl<B: Kernels> BertFeedForward<B> {
    /// # Shapes
    /// `[b, s, h]` -> `[b, s, h]`
    pub fn forward(&self, x: Tensor<B, 3>, epsilon: f64, fused: bool) -> Tensor<B, 3> {
        let inner =
            mlr_kernels::bias_gelu(matmul(&self.intermediate, x.clone(), fused), bias(&self.intermediate), fused);
        norm(&self.layer_norm, matmul(&self.output, inner, fused), bias(&self.output), Some(x), epsilon, fused)
    }
}

impl<B: Kernels> BertLayer<B> {
    /// # Shapes
    /// x `[b, s, h]`, mask `[b, s]` -> `[b, s, h]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>, epsilon: f64, fused: bool) -> Tensor<B, 3> {
        self.feed_forward.forward(self.attention.forward(x, mask, epsilon, fused), epsilon, fused)
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
    /// The LayerNorm epsilon of every LayerNorm (`layer_norm_eps`).
    pub layer_norm_eps: f64,
    /// Whether the fused kernels of `mlr-kernels` are used (on by default): the WGSL kernels on
    /// wgpu, the GEMM linear layers on the CPU; off, every backend runs the plain-burn references.
    pub kernels: bool,
}

pub use mlr_kernels::reference::attention_bias;

impl<B: Backend> BertModel<B> {
    /// Builds the encoder from named weights (HF BertModel key names, without a `bert.` prefix).
    pub fn from_source(
        config: &BertConfig,
        source: &mut dyn WeightSource,
        device: &B::Device,
    ) -> Result<Self, WeightError> {
        Self::build(config, source, device, true)
    }

    /// Builds the encoder without its word-embedding table (which is never read from `source`):
    /// the caller looks word vectors up itself and runs [`BertModel::forward_words`]. The web
    /// demo keeps the table as Q4_0 blocks fetched piece by piece, and the model is 384 MB
    /// smaller in memory.
    pub fn from_source_without_words(
        config: &BertConfig,
        source: &mut dyn WeightSource,
        device: &B::Device,
    ) -> Result<Self, WeightError> {
        Self::build(config, source, device, false)
    }

    /// Whether the model holds its word-embedding table ([`BertModel::forward`] needs it).
    pub fn has_word_table(&self) -> bool {
        !self.embeddings.word.is_empty()
    }

    fn build(
        config: &BertConfig,
        source: &mut dyn WeightSource,
        device: &B::Device,
        with_words: bool,
    ) -> Result<Self, WeightError> {
        let h = config.hidden_size;
        let mut word: Vec<Param<Tensor<B, 2>>> = Vec::new();
        if with_words {
            let word_values = source.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
            word = word_values
                .chunks(chunk_rows(h) * h)
                .map(|rows| {
                    Param::from_tensor(Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / h, h]), device))
                })
                .collect();
        }
        let mut tensor2 = |name: &str, rows: usize, cols: usize| -> Result<Tensor<B, 2>, WeightError> {
            let values = source.get(name, &[rows, cols])?;
            Ok(Tensor::from_data(TensorData::new(values, [rows, cols]), device))
        };
        let position = tensor2("embeddings.position_embeddings.weight", config.max_position_embeddings, h)?;
        let token_type = tensor2("embeddings.token_type_embeddings.weight", config.type_vocab_size, h)?;
        let mut vector = |name: &str, len: usize| -> Result<Tensor<B, 1>, WeightError> {
            let values = source.get(name, &[len])?;
            Ok(Tensor::from_data(TensorData::new(values, [len]), device))
        };
        let emb_ln = (vector("embeddings.LayerNorm.weight", h)?, vector("embeddings.LayerNorm.bias", h)?);
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

        let mut linear = |name: &str, d_in: usize, d_out: usize| -> Result<Linear<B>, WeightError> {
            // HF stores nn.Linear as [out, in]; burn's Linear multiplies by [in, out]. Transposed
            // here, once, into a contiguous [in, out] tensor: a transposed view would be copied
            // into standard layout by every matmul on the ndarray backend (the weight's size per
            // call, which dominated short inputs on the CPU).
            let w = source.get(&format!("{name}.weight"), &[d_out, d_in])?;
            let b = source.get(&format!("{name}.bias"), &[d_out])?;
            let w = Tensor::<B, 2>::from_data(TensorData::new(transpose(&w, d_out, d_in), [d_in, d_out]), device);
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
        let mut layers = Vec::new();
        for (l, [query, key, value, output, intermediate, ff_output]) in linears.into_iter().enumerate() {
            let p = format!("encoder.layer.{l}");
            let mut ln = |name: String| -> Result<LayerNorm<B>, WeightError> {
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
        Ok(Self { embeddings, layers, layer_norm_eps: config.layer_norm_eps, kernels: true })
    }

    /// Turns the fused kernels on or off (see [`kernels`](Self::kernels)).
    pub fn with_kernels(mut self, on: bool) -> Self {
        self.kernels = on;
        self
    }
}

impl<B: Kernels> BertModel<B> {
    /// Runs the encoder and returns the last hidden state.
    ///
    /// # Shapes
    /// ids `[b, s]`, mask `[b, s]` (1.0 token / 0.0 padding) -> `[b, s, hidden]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let (eps, fused) = (self.layer_norm_eps, self.kernels);
        // Where the backend's ops run best (the CPU backend: on its thread pool).
        B::run(|| {
            let mut x = self.embeddings.forward(ids, eps, fused);
            for layer in &self.layers {
                x = layer.forward(x, mask.clone(), eps, fused);
            }
            x
        })
    }

    /// [`forward`](Self::forward) from word vectors looked up outside the model (a model built by
    /// [`BertModel::from_source_without_words`]).
    ///
    /// # Shapes
    /// words `[b, s, hidden]`, mask `[b, s]` -> `[b, s, hidden]`
    pub fn forward_words(&self, words: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let (eps, fused) = (self.layer_norm_eps, self.kernels);
        B::run(|| {
            let mut x = self.embeddings.forward_words(words, eps, fused);
            for layer in &self.layers {
                x = layer.forward(x, mask.clone(), eps, fused);
            }
            x
        })
    }

    /// Like [`forward`](Self::forward) but returns every hidden state: the embedding output first,
    /// then the output of each layer (`num_hidden_layers + 1` tensors), as HF's
    /// `output_hidden_states=True`.
    pub fn forward_hidden_states(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Vec<Tensor<B, 3>> {
        let (eps, fused) = (self.layer_norm_eps, self.kernels);
        B::run(|| {
            let mut states = vec![self.embeddings.forward(ids, eps, fused)];
            for layer in &self.layers {
                let x = states.last().expect("non-empty").clone();
                states.push(layer.forward(x, mask.clone(), eps, fused));
            }
            states
        })
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

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(transpose(&[7.0], 1, 1), [7.0]);
    }
}
