//! The encoder of mlr: a BERT / XLM-R family transformer written once with burn, generic over the
//! backend (`B: Backend`, plus the [`Kernels`] extension for the forward pass), so the same code runs on the native CPU (ndarray), natively on wgpu and in
//! the browser on WebGPU or the wasm CPU backend.
//!
//! Design: this crate does no I/O and names no backend. A [`BertModel`] is built from a
//! [`WeightSource`] (a checkpoint reader in `mlr-weights`, or [`SeededWeights`] for test models),
//! which keeps loading and random initialisation on one code path and the crate wasm-safe.
//!
//! # Example
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor, TensorData};
//! use mlr_model::{BertConfig, BertModel, SeededWeights, masked_mean, l2_normalize};
//!
//! let config = BertConfig::new(100, 16, 2, 2, 32);
//! let device = Default::default();
//! let model = BertModel::<NdArray>::from_source(&config, &mut SeededWeights::new(1, 0.1), &device)?;
//! let ids = Tensor::<NdArray, 2, Int>::from_data(TensorData::new(vec![0i64, 5, 2], [1, 3]), &device);
//! let mask = Tensor::<NdArray, 2>::ones([1, 3], &device);
//! let vectors = l2_normalize(masked_mean(model.forward(ids, mask.clone()), mask));
//! assert_eq!(vectors.dims(), [1, 16]);
//! # Ok::<(), mlr_model::WeightError>(())
//! ```
#![deny(missing_docs)]

mod bert;
mod config;
mod pool;
mod ragged;
mod random;

pub use bert::{
    attention_bias, chunk_rows, tensor_names, BertAttention, BertEmbeddings, BertFeedForward, BertLayer, BertModel,
    WeightError, WeightSource, MAX_CHUNK_BYTES,
};
pub use config::{BertConfig, ConfigError};
/// An autodiff backend with [`Kernels`] on it and on its inner backend (native only).
#[cfg(not(target_arch = "wasm32"))]
pub use mlr_kernels::AutodiffKernels;
/// The backend extension the encoder's forward pass needs (fused kernels on wgpu, plain-burn
/// references elsewhere).
pub use mlr_kernels::Kernels;
pub use pool::{l2_normalize, masked_mean};
pub use ragged::{Ragged, RaggedGroup};
pub use random::SeededWeights;
