//! The plain-burn references of every kernel: ordinary tensor ops on any backend, in the order
//! the encoder computed them before the kernels existed. They define what the kernels must
//! compute (the parity tests compare against them), they are the "kernels off" path, and they
//! are what the CPU and autodiff backends run.
//!
//! Every division by a tensor goes through [`div`], and the logarithm of the training loss through
//! [`ln`], so that their gradients are exact divisions: burn's autodiff differentiates `a / b` with
//! respect to `a` as `grad · recip(b)` and `ln(s)` as `grad · recip(s)`, and burn-ndarray computes
//! `recip` of 32 or more values with the CPU's approximate reciprocal where its SIMD dispatch picks
//! AVX2 (`vrcpps`, relative error up to 1.5 · 2⁻¹²). Gradients of the reference then differed from
//! the exact ones by up to 6e-4 (relative) on such machines, and from machine to machine.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::AdamWStep;

/// `a / b` (`b` broadcast to `a`'s shape) as `a · (1 / b)`: one more rounding than `a / b` (at
/// most one ulp), and a backward pass of exact products and divisions (see the module docs).
pub fn div<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    a * (b.ones_like() / b)
}

/// `ln(s)` whose gradient is `1 / s` by an exact division (see the module docs): the value is
/// `ln(s)` itself, plus `(s − s) · (1 / s)` on the graph, which is zero and carries the gradient.
pub fn ln<B: Backend, const D: usize>(s: Tensor<B, D>) -> Tensor<B, D> {
    let value = s.clone().detach();
    let inverse = value.clone().ones_like() / value.clone();
    value.clone().log() + (s - value) * inverse
}

/// Softmax over `dim`, as burn's `softmax` computes it (the row's max subtracted, `exp`, divided by
/// the sum), with the division by [`div`].
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let e = (x.clone() - x.detach().max_dim(dim)).exp();
    div(e.clone(), e.sum_dim(dim))
}

/// Log-softmax over `dim`, as burn's `log_softmax` computes it (`x − max − ln Σ exp(x − max)`),
/// with the logarithm by [`ln`].
pub fn log_softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let shifted = x.clone() - x.detach().max_dim(dim);
    shifted.clone() - ln(shifted.exp().sum_dim(dim))
}

/// # Shapes
/// x `[rows, width]`, bias `[width]` -> `[rows, width]`
///
/// Written out as `z · (erf(z / √2) + 1) / 2`, the ops and order of burn's `gelu`, so that the
/// forward values are the same, but differentiated exactly: burn's own `gelu` backward is the
/// derivative of the tanh approximation of GELU, not of the erf GELU it computes.
pub fn bias_gelu<B: Backend>(x: Tensor<B, 2>, bias: Tensor<B, 1>) -> Tensor<B, 2> {
    let z = x + bias.unsqueeze_dim::<2>(0);
    (z.clone() * z.div_scalar(core::f64::consts::SQRT_2).erf().add_scalar(1.0)).div_scalar(2.0)
}

/// LayerNorm as burn's `nn::LayerNorm` computes it (biased variance), of `x + bias + residual`.
///
/// # Shapes
/// x, residual `[rows, width]`, bias, gamma, beta `[width]` -> `[rows, width]`
pub fn layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    residual: Option<Tensor<B, 2>>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, 2> {
    let mut input = x + bias.unsqueeze_dim::<2>(0);
    if let Some(residual) = residual {
        input = input + residual;
    }
    let mean = input.clone().mean_dim(1);
    let centered = input - mean;
    let var = (centered.clone() * centered.clone()).mean_dim(1);
    let normalized = div(centered, var.add_scalar(epsilon).sqrt());
    normalized * gamma.unsqueeze_dim::<2>(0) + beta.unsqueeze_dim::<2>(0)
}

/// The additive attention bias for a `[b, s]` 0/1 mask: 0 where attended, -1e9 on padding.
///
/// # Shapes
/// mask `[b, s]` -> `[b, 1, 1, s]`
pub fn attention_bias<B: Backend>(mask: Tensor<B, 2>) -> Tensor<B, 4> {
    let [b, s] = mask.dims();
    (mask.neg() + 1.0).mul_scalar(-1e9).reshape([b, 1, 1, s])
}

/// Scaled dot-product attention over `heads` heads, as Hugging Face's `BertSelfAttention`.
///
/// # Shapes
/// q, k, v `[b, s, h]`, mask `[b, s]` -> `[b, s, h]`
pub fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    mask: Tensor<B, 2>,
    heads: usize,
) -> Tensor<B, 3> {
    let [b, s, h] = q.dims();
    let d = h / heads;
    let split = |t: Tensor<B, 3>| t.reshape([b, s, heads, d]).swap_dims(1, 2); // [b, nh, s, d]
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt()) + attention_bias(mask); // [b, nh, s, s]
    softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, s, h])
}

/// [`attention`] over texts laid end to end with no padding: each text's rows of q, k and v
/// through [`attention`] alone (a batch of one, every token real), the outputs stacked in order.
/// `lengths` are the texts' token counts, in order; texts of no token are skipped.
///
/// # Shapes
/// q, k, v `[tokens, h]` (`tokens` = Σ lengths) -> `[tokens, h]`
pub fn attention_ragged<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    v: Tensor<B, 2>,
    lengths: &[usize],
    heads: usize,
) -> Tensor<B, 2> {
    let [tokens, h] = q.dims();
    let mut start = 0;
    let mut parts = Vec::with_capacity(lengths.len());
    for &len in lengths.iter().filter(|&&len| len > 0) {
        let rows = |t: &Tensor<B, 2>| t.clone().slice(start..start + len).reshape([1, len, h]);
        let mask = Tensor::ones([1, len], &q.device());
        parts.push(attention(rows(&q), rows(&k), rows(&v), mask, heads).reshape([len, h]));
        start += len;
    }
    assert_eq!(start, tokens, "mlr-kernels ragged attention: the lengths sum to {start}, q has {tokens} rows");
    if parts.is_empty() {
        return q;
    }
    Tensor::cat(parts, 0)
}

/// Mean of the token states where `mask` is 1 (the count clamped to 1), then, if `normalize`,
/// each row scaled to unit L2 norm (the norm clamped to 1e-12).
///
/// # Shapes
/// hidden `[b, s, h]`, mask `[b, s]` -> `[b, h]`
pub fn mean_pool<B: Backend>(hidden: Tensor<B, 3>, mask: Tensor<B, 2>, normalize: bool) -> Tensor<B, 2> {
    let [b, s, h] = hidden.dims();
    let weights = mask.reshape([b, s, 1]);
    let counts = weights.clone().sum_dim(1).clamp_min(1.0).reshape([b, 1]); // [b, 1]
    let means = div((hidden * weights).sum_dim(1).reshape([b, h]), counts); // [b, h]
    if normalize {
        l2_normalize(means)
    } else {
        means
    }
}

/// Scales every row to unit L2 norm (rows of norm below 1e-12 are left near zero, not NaN).
///
/// # Shapes
/// `[b, h]` -> `[b, h]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norms = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12); // [b, 1]
    div(x, norms)
}

/// Dot-product scores of every query against the corpus, then the `k` best per query. Past the
/// corpus's end the scores are `f32::MIN` and the ids `-1`. Ties are ordered as the backend's sort
/// orders them (the kernel puts the lower row first).
///
/// # Shapes
/// queries `[nq, w]`, corpus `[n, w]` -> scores `[nq, k]`, ids `[nq, k]`
pub fn cosine_top_k<B: Backend>(
    queries: Tensor<B, 2>,
    corpus: Tensor<B, 2>,
    k: usize,
) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
    let nq = queries.dims()[0];
    let n = corpus.dims()[0];
    let device = queries.device();
    let take = k.min(n);
    let pad = || (Tensor::full([nq, k - take], f32::MIN, &device), Tensor::full([nq, k - take], -1, &device));
    if take == 0 {
        return pad();
    }
    let (scores, ids) = queries.matmul(corpus.transpose()).sort_descending_with_indices(1);
    let (scores, ids) = (scores.slice([0..nq, 0..take]), ids.slice([0..nq, 0..take]));
    if take == k {
        return (scores, ids);
    }
    let (pad_scores, pad_ids) = pad();
    (Tensor::cat(vec![scores, pad_scores], 1), Tensor::cat(vec![ids, pad_ids], 1))
}

/// `x · weight (+ bias)`: burn's linear op.
///
/// # Shapes
/// x `[batch, seq, in]`, weight `[in, out]`, bias `[out]` -> `[batch, seq, out]`
pub fn linear<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 3> {
    burn::tensor::module::linear(x, weight, bias)
}

/// One AdamW step on one parameter tensor, in burn's `AdamW` order of operations (decoupled weight
/// decay, bias-corrected moments; PyTorch's `torch.optim.AdamW` without `amsgrad`):
///
/// ```text
/// g  = grad · grad_scale
/// m₁ = β₁ m₁ + (1 − β₁) g          m₂ = β₂ m₂ + (1 − β₂) g²       (both 0 before the first step)
/// Δ  = (m₁ / (1 − β₁ᵗ)) / (√(m₂ / (1 − β₂ᵗ)) + ε)
/// p  = p · (1 − lr · wd) − lr · Δ
/// ```
///
/// Every operation is its own pass over the tensor. Returns the parameter and the two moments.
///
/// # Shapes
/// param, grad, moments: one shape (any rank)
pub fn adamw<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamWStep,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    let grad = if step.grad_scale == 1.0 { grad } else { grad.mul_scalar(step.grad_scale) };
    let (factor_1, factor_2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
    let (m1, m2) = match moments {
        Some((m1, m2)) => (
            m1.mul_scalar(step.beta_1).add(grad.clone().mul_scalar(factor_1)),
            m2.mul_scalar(step.beta_2).add(grad.powi_scalar(2).mul_scalar(factor_2)),
        ),
        None => (grad.clone().mul_scalar(factor_1), grad.powi_scalar(2).mul_scalar(factor_2)),
    };
    let [c1, c2] = step.bias_corrections();
    let delta = m1.clone().div_scalar(c1).div(m2.clone().div_scalar(c2).sqrt().add_scalar(step.epsilon));
    let decay = step.lr * step.weight_decay as f64;
    let param = if decay == 0.0 { param } else { param.mul_scalar(1.0 - decay) };
    (param - delta.mul_scalar(step.lr), m1, m2)
}
