//! The fused kernels of mlr's encoder's hot path, as a burn backend extension: WGSL compute
//! kernels on wgpu and Rust fast paths on the CPU (with backward passes for training). The crate
//! lives in `shaders/`, the directory the project's layout gives its kernels.
//!
//! [`Kernels`] extends [`Backend`] with six fused operations. Every method has a default body
//! that runs the plain-burn reference in [`reference`], so any backend can implement the trait
//! with an empty `impl`; the wgpu backend ([`CubeBackend`](burn::backend::wgpu::CubeBackend) on
//! [`WgpuRuntime`](burn::backend::wgpu::WgpuRuntime)) overrides them with the WGSL kernels in
//! `src/kernels/` (see [`wgsl`]).
//!
//! | kernel | what it fuses | replaces (burn ops) |
//! |---|---|---|
//! | [`linear`] | one GEMM over every token of the batch (+ bias): `kernels/linear.wgsl` on wgpu, our own GEMM on the CPU | a batched matmul (row tiles per sequence on wgpu, operand copies on the CPU), add |
//! | [`attention`] | `q·kᵀ`, scale, padding mask, softmax, `·v`, per head | 2 matmuls, 4 transposes + copies, softmax |
//! | [`attention_ragged`] | the same over texts laid end to end, per (head, text), no padding (CPU only; `None` on wgpu) | padding each text to its group's longest, masking, gathering back |
//! | [`bias_gelu`] | bias add + GELU (erf) | add, gelu |
//! | [`layer_norm`] | bias add + residual add + LayerNorm | 2 adds, mean, var, normalise |
//! | [`mean_pool`] | masked mean over tokens (+ L2 norm) | mul, 2 sums, div (+ pow, sum, sqrt, div) |
//! | [`cosine_top_k`] | corpus scoring + top-k per query | matmul, sort |
//! | [`adamw`] | one AdamW step on one parameter (CPU only) | ~12 elementwise ops |
//!
//! The free functions take a `fused` flag: `false` runs the reference on any backend, which is
//! how the encoder's "kernels off" switch and the parity tests work. The CPU (ndarray) backend
//! has fast paths of its own, in Rust (`cpu.rs`): [`linear`] as a single GEMM, bias + GELU and
//! LayerNorm as one pass per row, attention one head at a time; pooling and top-k run the
//! references there. On the autodiff backend over the CPU backend, those fast paths are custom
//! autodiff operations with backward passes of their own (`autodiff.rs`, `cpu/backward.rs`), so
//! training runs them too; on autodiff over wgpu, training runs the references.

#![deny(missing_docs)]

#[cfg(not(target_arch = "wasm32"))]
mod autodiff;
mod cpu;
pub mod reference;
#[cfg(feature = "wgpu")]
mod wgpu;

#[cfg(feature = "wgpu")]
pub use wgpu::{tune_for_adapter, wgsl, KernelName};

use burn::backend::NdArray;
#[cfg(not(target_arch = "wasm32"))]
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Shape, Tensor, TensorMetadata, TensorPrimitive};

/// Largest `k` the top-k kernel handles (each invocation keeps `k` candidates in registers);
/// larger `k` falls back to the reference.
pub const MAX_TOP_K: usize = 128;

/// Largest head width the attention kernel handles (it keeps one query and one accumulator row
/// per invocation); wider heads fall back to the reference.
pub const MAX_HEAD_DIM: usize = 128;

/// The hyper-parameters of one AdamW step (see [`adamw`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f64,
    /// Decay of the first moment (0.9).
    pub beta_1: f32,
    /// Decay of the second moment (0.999).
    pub beta_2: f32,
    /// Added to the second moment's square root.
    pub epsilon: f32,
    /// Decoupled weight decay: the parameter is first scaled by `1 − lr · weight_decay`.
    pub weight_decay: f32,
    /// The step's number, from 1 (the bias corrections' exponent).
    pub time: usize,
    /// Factor applied to the gradient first (global-norm clipping); 1 leaves it as it is.
    pub grad_scale: f32,
}

impl AdamWStep {
    /// `[1 − β₁ᵗ, 1 − β₂ᵗ]`, the moments' bias corrections, in f32 as burn computes them.
    pub fn bias_corrections(&self) -> [f32; 2] {
        let t = i32::try_from(self.time).unwrap_or(i32::MAX);
        [1.0 - self.beta_1.powi(t), 1.0 - self.beta_2.powi(t)]
    }
}

/// A burn backend with mlr's fused operations. The default bodies are the plain-burn references.
///
/// Shapes are those of the free functions of the same name.
pub trait Kernels: Backend {
    /// `x · weight (+ bias)`; x `[.., k]`, weight `[k, n]`, bias `[n]` -> `[.., n]`.
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        float(reference::linear::<Self>(tensor(x), tensor(weight), bias.map(tensor)))
    }

    /// `gelu(x + bias)`; x `[..., width]` (any rank), bias `[width]`.
    fn fused_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        reference_bias_gelu::<Self>(x, bias)
    }

    /// `LayerNorm(x + bias + residual) * gamma + beta` over the last axis; x and residual
    /// `[..., width]` (any rank, one shape), bias, gamma and beta `[width]`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        reference_layer_norm::<Self>(x, bias, residual, gamma, beta, epsilon)
    }

    /// Multi-head self-attention; q, k, v `[batch, seq, hidden]`, mask `[batch, seq]` (1/0)
    /// -> `[batch, seq, hidden]`.
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        float(reference::attention::<Self>(tensor(q), tensor(k), tensor(v), tensor(mask), heads))
    }

    /// Multi-head self-attention over texts laid end to end with no padding (see
    /// [`attention_ragged`]); q, k, v `[tokens, hidden]`, `lengths` the texts' token counts ->
    /// `[tokens, hidden]`. `None` (the default) where this backend has no such path: the caller
    /// then pads the texts and runs [`fused_attention`](Kernels::fused_attention).
    fn fused_attention_ragged(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lengths: &[usize],
        heads: usize,
    ) -> Option<FloatTensor<Self>> {
        let _ = (q, k, v, lengths, heads);
        None
    }

    /// Masked mean over tokens, L2-normalised if `normalize`; hidden `[batch, seq, width]`,
    /// mask `[batch, seq]` -> `[batch, width]`.
    fn fused_mean_pool(hidden: FloatTensor<Self>, mask: FloatTensor<Self>, normalize: bool) -> FloatTensor<Self> {
        float(reference::mean_pool::<Self>(tensor(hidden), tensor(mask), normalize))
    }

    /// The `k` best corpus rows per query by dot product; queries `[nq, width]`, corpus
    /// `[n, width]` -> scores `[nq, k]`, row ids `[nq, k]` (best first, ties to the lower row;
    /// `f32::MIN` / `-1` past the end when `n < k`).
    fn fused_cosine_top_k(
        queries: FloatTensor<Self>,
        corpus: FloatTensor<Self>,
        k: usize,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let (scores, ids) = reference::cosine_top_k::<Self>(tensor(queries), tensor(corpus), k);
        (float(scores), ids.into_primitive())
    }

    /// One AdamW step on one parameter (see [`adamw`]); param, grad and moments of one shape, any
    /// rank; moments `None` before the first step. Returns the parameter and the two moments.
    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        step: &AdamWStep,
    ) -> [FloatTensor<Self>; 3] {
        reference_adamw::<Self>(param, grad, moments, step)
    }

    /// Runs `f`, a whole forward pass, where this backend's ops run best. The default runs it
    /// as it is; the CPU backend runs it natively on one of rayon's threads (see [`run_on_pool`]).
    fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }
}

/// Runs `f` on one of rayon's threads (natively, and on wasm with shared memory; elsewhere, where
/// there is one thread, as it is).
///
/// The CPU ops split their work over rayon's threads. Called from a thread outside the pool,
/// every op hands its work to the pool and sleeps until it is done, two wake-ups per op and
/// about a hundred ops per forward pass; from a pool thread, an op runs its own share at once and
/// the other threads take the rest. Measured on one 16-token text: 6.07 ms per forward pass
/// outside the pool, 5.23 ms inside (2 cores, `mlr-bench encode --engines mlr-cpu`).
pub fn run_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(mlr_threads)]
    {
        rayon::scope(|_| f())
    }
    #[cfg(not(mlr_threads))]
    {
        f()
    }
}

/// An autodiff backend whose inner backend has the kernels too (training runs the kernels'
/// autodiff operations where they exist, see `autodiff.rs`; validation runs the inner backend's
/// kernels). Native only.
#[cfg(not(target_arch = "wasm32"))]
pub trait AutodiffKernels: Kernels + AutodiffBackend<InnerBackend: Kernels> {}

#[cfg(not(target_arch = "wasm32"))]
impl<B> AutodiffKernels for B
where
    B: Kernels + AutodiffBackend,
    B::InnerBackend: Kernels,
{
}

/// The CPU backend's fast paths (`cpu.rs`), for f32 tensors: [`linear`] as a single GEMM on the
/// tensors' memory (burn's ndarray matmul copies both operands into new arrays on every call),
/// bias + GELU and bias + residual + LayerNorm as one pass over each row, in place when the input
/// is not shared, and attention per head with one `[seq, seq]` score block at a time (the
/// reference builds `[batch, heads, seq, seq]` tensors). Rows and heads run on rayon's threads
/// natively. Mean pooling and top-k are the references. Other element types run the references.
impl Kernels for NdArray<f32> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        match cpu::linear(&x, &weight, bias.as_ref()) {
            Some(out) => out,
            None => float(reference::linear::<Self>(tensor(x), tensor(weight), bias.map(tensor))),
        }
    }

    fn fused_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        if !cpu::all_f32([&x, &bias]) {
            return reference_bias_gelu::<Self>(x, bias);
        }
        cpu::bias_gelu(x, &bias)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: Option<FloatTensor<Self>>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if !cpu::all_f32([&x, &bias, &gamma, &beta].into_iter().chain(residual.as_ref())) {
            return reference_layer_norm::<Self>(x, bias, residual, gamma, beta, epsilon);
        }
        cpu::layer_norm(x, &bias, residual.as_ref(), &gamma, &beta, epsilon)
    }

    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        if !cpu::all_f32([&q, &k, &v, &mask]) {
            return float(reference::attention::<Self>(tensor(q), tensor(k), tensor(v), tensor(mask), heads));
        }
        cpu::attention(&q, &k, &v, &mask, heads)
    }

    fn fused_attention_ragged(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lengths: &[usize],
        heads: usize,
    ) -> Option<FloatTensor<Self>> {
        cpu::all_f32([&q, &k, &v]).then(|| cpu::attention_ragged(&q, &k, &v, lengths, heads))
    }

    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<(FloatTensor<Self>, FloatTensor<Self>)>,
        step: &AdamWStep,
    ) -> [FloatTensor<Self>; 3] {
        if !cpu::all_f32([&param, &grad].into_iter().chain(moments.iter().flat_map(|(a, b)| [a, b]))) {
            return reference_adamw::<Self>(param, grad, moments, step);
        }
        cpu::adamw(param, &grad, moments, step)
    }

    fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        run_on_pool(f)
    }
}

/// The bias + GELU reference on a tensor of any rank (it works on `[rows, width]`).
fn reference_bias_gelu<B: Backend>(x: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let (x, shape) = rows::<B>(x);
    B::float_reshape(float(reference::bias_gelu::<B>(tensor(x), tensor(bias))), shape)
}

/// The AdamW reference on tensors of any rank (it works on them flattened).
fn reference_adamw<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moments: Option<(FloatTensor<B>, FloatTensor<B>)>,
    step: &AdamWStep,
) -> [FloatTensor<B>; 3] {
    let shape = param.shape();
    let flat = |t: FloatTensor<B>| tensor::<B, 1>(B::float_reshape(t, Shape::new([shape.num_elements()])));
    let moments = moments.map(|(m1, m2)| (flat(m1), flat(m2)));
    let (p, m1, m2) = reference::adamw(flat(param), flat(grad), moments, step);
    [p, m1, m2].map(|t| B::float_reshape(float(t), shape.clone()))
}

/// The LayerNorm reference on tensors of any rank (it works on `[rows, width]`).
fn reference_layer_norm<B: Backend>(
    x: FloatTensor<B>,
    bias: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (x, shape) = rows::<B>(x);
    let residual = residual.map(|r| rows::<B>(r).0);
    let out =
        reference::layer_norm::<B>(tensor(x), tensor(bias), residual.map(tensor), tensor(gamma), tensor(beta), epsilon);
    B::float_reshape(float(out), shape)
}

/// `x` seen as a `[rows, width]` matrix over its last axis, and its own shape.
fn rows<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, Shape) {
    let shape = x.shape();
    let width = shape.num_dims().checked_sub(1).map_or(1, |last| shape[last]);
    let rows = shape.num_elements() / width.max(1);
    (B::float_reshape(x, Shape::new([rows, width])), shape)
}

fn tensor<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

fn float<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// A linear layer without its module: `x · weight (+ bias)`, weight `[in, out]` (burn's
/// layout). With `fused`: on wgpu `kernels/linear.wgsl` over all `batch · seq` rows at once
/// (burn's linear tiles each sequence's rows apart); on the CPU backend one GEMM straight on the
/// tensors' memory.
///
/// # Shapes
/// x `[batch, seq, in]`, weight `[in, out]`, bias `[out]` -> `[batch, seq, out]`
pub fn linear<B: Kernels>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    fused: bool,
) -> Tensor<B, 3> {
    if !fused {
        return reference::linear(x, weight, bias);
    }
    let bias = bias.map(|b| b.into_primitive().tensor());
    tensor(B::fused_linear(float(x), float(weight), bias))
}

/// `gelu(x + bias)` with the exact (erf) GELU, bias broadcast over the last axis.
///
/// # Shapes
/// x `[..., width]`, bias `[width]` -> like x
pub fn bias_gelu<B: Kernels, const D: usize>(x: Tensor<B, D>, bias: Tensor<B, 1>, fused: bool) -> Tensor<B, D> {
    if fused {
        // No reshape here: on the CPU backend a reshape copies.
        return tensor(B::fused_bias_gelu(float(x), float(bias)));
    }
    let dims = x.dims();
    let width = dims[D - 1];
    let rows = x.shape().num_elements() / width.max(1);
    reference::bias_gelu(x.reshape([rows, width]), bias).reshape(dims)
}

/// `LayerNorm(x + bias + residual) * gamma + beta` over the last axis (the post-LN residual
/// block of BERT; the residual is optional).
///
/// # Shapes
/// x, residual `[..., width]`, bias, gamma, beta `[width]` -> like x
pub fn layer_norm<B: Kernels, const D: usize>(
    x: Tensor<B, D>,
    bias: Tensor<B, 1>,
    residual: Option<Tensor<B, D>>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    fused: bool,
) -> Tensor<B, D> {
    if fused {
        return tensor(B::fused_layer_norm(
            float(x),
            float(bias),
            residual.map(float),
            float(gamma),
            float(beta),
            epsilon,
        ));
    }
    let dims = x.dims();
    let width = dims[D - 1];
    let rows = x.shape().num_elements() / width.max(1);
    let residual = residual.map(|r| r.reshape([rows, width]));
    reference::layer_norm(x.reshape([rows, width]), bias, residual, gamma, beta, epsilon).reshape(dims)
}

/// Multi-head scaled dot-product self-attention with a padding mask.
///
/// # Shapes
/// q, k, v `[batch, seq, hidden]` (head `h` is columns `h*d..(h+1)*d`), mask `[batch, seq]`
/// (1.0 token, 0.0 padding) -> `[batch, seq, hidden]`
pub fn attention<B: Kernels>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    heads: usize,
    fused: bool,
) -> Tensor<B, 3> {
    if fused {
        tensor(B::fused_attention(float(q), float(k), float(v), float(mask), heads))
    } else {
        reference::attention(q, k, v, mask, heads)
    }
}

/// Multi-head self-attention over texts laid end to end, with no padding: q, k, v
/// `[tokens, hidden]` hold the texts' tokens one text after another, `lengths` the texts' token
/// counts in order (summing to `tokens`; a text may have none); each text attends to its own
/// tokens only. Per text, the same as [`attention`] on the text alone, so the same as the texts
/// padded to one length and masked, without the padding's rows and its masked scores. With
/// `fused`, the backend's path where it has one (the CPU backend and autodiff over it: one task
/// per (head, text) on the token matrix itself), `None` where it has none (wgpu: the caller then
/// pads); without, the reference ([`reference::attention_ragged`], each text through the
/// reference attention alone).
///
/// # Shapes
/// q, k, v `[tokens, hidden]` -> `[tokens, hidden]`
///
/// # Panics
/// If the lengths do not sum to `tokens`, q, k and v differ in shape, or `heads` does not divide
/// `hidden`.
pub fn attention_ragged<B: Kernels>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    v: Tensor<B, 2>,
    lengths: &[usize],
    heads: usize,
    fused: bool,
) -> Option<Tensor<B, 2>> {
    if fused {
        B::fused_attention_ragged(float(q), float(k), float(v), lengths, heads).map(tensor)
    } else {
        Some(reference::attention_ragged(q, k, v, lengths, heads))
    }
}

/// One AdamW step on one parameter (the formula in [`reference::adamw`]). With `fused`, on the CPU
/// backend one pass over the four arrays (parameter, gradient, two moments), in place where they
/// are not shared; the reference makes about twelve passes, each into a fresh tensor. Returns the
/// parameter and the two moments.
///
/// # Shapes
/// param, grad, moments: one shape (any rank)
pub fn adamw<B: Kernels, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamWStep,
    fused: bool,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    assert!(
        param.dims() == grad.dims()
            && moments.as_ref().is_none_or(|(a, b)| a.dims() == param.dims() && b.dims() == param.dims()),
        "mlr-kernels adamw: parameter, gradient and moments must have one shape"
    );
    if !fused {
        return reference::adamw(param, grad, moments, step);
    }
    let [p, m1, m2] = B::fused_adamw(float(param), float(grad), moments.map(|(a, b)| (float(a), float(b))), step);
    (tensor(p), tensor(m1), tensor(m2))
}

/// Masked mean pooling, L2-normalised if `normalize`.
///
/// # Shapes
/// hidden `[batch, seq, width]`, mask `[batch, seq]` -> `[batch, width]`
pub fn mean_pool<B: Kernels>(hidden: Tensor<B, 3>, mask: Tensor<B, 2>, normalize: bool, fused: bool) -> Tensor<B, 2> {
    if fused {
        tensor(B::fused_mean_pool(float(hidden), float(mask), normalize))
    } else {
        reference::mean_pool(hidden, mask, normalize)
    }
}

/// The `k` best corpus rows for every query by dot product (cosine for unit rows), best first,
/// ties to the lower row; past the corpus's end the scores are `f32::MIN` and the ids `-1`.
///
/// # Shapes
/// queries `[nq, width]`, corpus `[n, width]` -> scores `[nq, k]`, ids `[nq, k]`
pub fn cosine_top_k<B: Kernels>(
    queries: Tensor<B, 2>,
    corpus: Tensor<B, 2>,
    k: usize,
    fused: bool,
) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
    if fused {
        let (scores, ids) = B::fused_cosine_top_k(float(queries), float(corpus), k);
        (tensor(scores), Tensor::from_primitive(ids))
    } else {
        reference::cosine_top_k(queries, corpus, k)
    }
}
