//! Backward passes of the CPU fast paths, for training on `Autodiff<NdArray<f32>>` (see
//! `autodiff.rs`, which wires them into burn's graph). Native only.
//!
//! Each function takes what its forward saved and the gradient of the output, and returns the
//! gradients of the inputs that need one, computed with the forward's own machinery:
//!
//! - [`linear`]: `dx = dy · wᵀ` on the packed GEMM (the weight's transpose packed once per weight;
//!   from `LIBRARY_MIN_ROWS` rows on AVX2 CPUs, the `gemm` crate reading `wᵀ` in place),
//!   `dw = xᵀ · dy` (`xᵀ` read in place by the GEMM), `db = Σ_rows dy`;
//! - [`bias_gelu`]: `dz = dy · gelu'(x + b)` with the exact derivative of the erf GELU,
//!   `Φ(z) + z·φ(z)`, in one pass per row; `db = Σ_rows dz`;
//! - [`layer_norm_forward`] (which also keeps the normalised rows and each row's σ) and
//!   [`layer_norm`]: `du = (g − mean(g) − x̂·mean(g·x̂)) / σ` with `g = dy·γ`, `dγ = Σ dy·x̂`,
//!   `dβ = Σ dy`; the bias and the residual get `du` and `Σ_rows du`;
//! - [`attention`]: per (batch, head), the probabilities recomputed exactly as the forward computed
//!   them (no `[batch, heads, seq, seq]` tensor is kept), then `dP = dO·vᵀ`,
//!   `dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √d`, `dq = dS·k`, `dk = dSᵀ·q`, `dv = Pᵀ·dO`.
//!
//! Column sums run over fixed blocks of rows whose partial sums are added in order, so every
//! gradient is the same bits whatever the number of threads (a run reproduces bit for bit).

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Ix2, Ix3, IxDyn};
use rayon::prelude::*;

use super::{exp_nonpositive, gemm, head_probs, mat_mul_add, sum_by, written_zeros, NdArrayTensor, Shared};

/// Rows per block of a column sum (a fixed number, so that the sums do not depend on threads).
const SUM_ROWS: usize = 256;

fn f32_view<'a>(t: &'a NdArrayTensor, what: &str) -> ndarray::ArrayViewD<'a, f32> {
    let NdArrayTensor::F32(storage) = t else {
        panic!("mlr-kernels {what}: expected an f32 tensor, got {:?}", burn::tensor::TensorMetadata::dtype(t))
    };
    storage.view()
}

/// `t` as a `[rows, width]` matrix over its last axis, in place when contiguous (else a copy).
fn matrix<'a>(t: &'a NdArrayTensor, what: &str) -> ndarray::CowArray<'a, f32, Ix2> {
    let view = f32_view(t, what);
    let width = view.shape().last().copied().unwrap_or(1);
    let rows = view.len() / width.max(1);
    let message = || format!("mlr-kernels {what}: reshapes to a matrix");
    if view.is_standard_layout() {
        view.into_shape_with_order((rows, width)).unwrap_or_else(|_| panic!("{}", message())).into()
    } else {
        view.as_standard_layout()
            .into_owned()
            .into_shape_with_order((rows, width))
            .unwrap_or_else(|_| panic!("{}", message()))
            .into()
    }
}

fn view3<'a>(t: &'a NdArrayTensor, what: &str) -> ndarray::ArrayView3<'a, f32> {
    f32_view(t, what)
        .into_dimensionality::<Ix3>()
        .unwrap_or_else(|_| panic!("mlr-kernels attention backward: {what} must be [batch, seq, hidden]"))
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
    let array: Shared =
        ndarray::Array::from_shape_vec(IxDyn(shape), values).expect("values of the shape").into_shared();
    NdArrayTensor::from(array)
}

/// `Σ_rows f(row index, row)` column by column, `width` columns: blocks of [`SUM_ROWS`] rows on
/// rayon's threads, their partial sums added in block order.
fn column_sums(rows: usize, width: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let blocks = rows.div_ceil(SUM_ROWS);
    let partial: Vec<Vec<f32>> = (0..blocks)
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![0.0f32; width];
            for r in b * SUM_ROWS..((b + 1) * SUM_ROWS).min(rows) {
                f(r, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0.0f32; width];
    for p in partial {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// Gradients of `y = x · w + b` given `dy`; `want` = [dx, dw, db]. x `[.., k]`, w `[k, n]`.
pub(crate) fn linear(
    x: &NdArrayTensor,
    w: &NdArrayTensor,
    dy: &NdArrayTensor,
    want: [bool; 3],
) -> [Option<NdArrayTensor>; 3] {
    let x_shape = f32_view(x, "linear backward: x").shape().to_vec();
    let weight = f32_view(w, "linear backward: weight")
        .into_dimensionality::<Ix2>()
        .expect("mlr-kernels linear backward: weight must be a matrix");
    let (k, n) = weight.dim();
    let dy = matrix(dy, "linear backward: dy");
    let rows = dy.nrows();
    assert_eq!(dy.ncols(), n, "mlr-kernels linear backward: dy has {} columns, the weight {n}", dy.ncols());
    let dx = want[0].then(|| {
        let mut dx = Array2::from_shape_vec((rows, k), written_zeros(rows * k)).expect("rows × k");
        #[cfg(mlr_gemm)]
        let done = super::gemm::gemm_many_rows(dy.view(), weight.t(), dx.view_mut(), true)
            || super::packed_weights::get_transposed(w)
                .is_some_and(|packed| super::gemm::gemm_packed(dy.view(), &packed, dx.view_mut(), true));
        #[cfg(not(mlr_gemm))]
        let done = false;
        if !done {
            mat_mul_add(dy.view(), weight.t(), dx.view_mut(), true);
        }
        tensor(dx.into_raw_vec_and_offset().0, &x_shape)
    });
    let dw = want[1].then(|| {
        let x = matrix(x, "linear backward: x");
        assert_eq!(x.dim(), (rows, k), "mlr-kernels linear backward: x must be [{rows}, {k}]");
        // The GEMM reads xᵀ in place (a view with contiguous columns).
        let mut dw = Array2::from_shape_vec((k, n), written_zeros(k * n)).expect("k × n");
        mat_mul_add(x.t(), dy.view(), dw.view_mut(), true);
        tensor(dw.into_raw_vec_and_offset().0, &[k, n])
    });
    let db = want[2].then(|| {
        let dy = dy.as_standard_layout();
        let data = dy.as_slice().expect("standard layout");
        tensor(
            column_sums(rows, n, |r, acc| acc.iter_mut().zip(&data[r * n..(r + 1) * n]).for_each(|(a, v)| *a += v)),
            &[n],
        )
    });
    [dx, dw, db]
}

multiversion! {
    /// `dy = dy · gelu'(x + bias)` for one row.
    fn gelu_grad_row(dy: &mut [f32], x: &[f32], bias: &[f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((g, &x), &b) in dy.iter_mut().zip(x).zip(bias) {
            let z = x + b;
            let cdf = 0.5 * (1.0 + super::erf(z / core::f32::consts::SQRT_2));
            let pdf = INV_SQRT_2PI * exp_nonpositive(-0.5 * z * z);
            *g *= cdf + z * pdf;
        }
    }
}

/// Gradients of `y = gelu(x + bias)` given `dy`; `want` = [dx, dbias]. x `[..., width]`.
pub(crate) fn bias_gelu(
    x: &NdArrayTensor,
    bias: &NdArrayTensor,
    dy: &NdArrayTensor,
    want: [bool; 2],
) -> [Option<NdArrayTensor>; 2] {
    let shape = f32_view(x, "bias_gelu backward: x").shape().to_vec();
    let x = matrix(x, "bias_gelu backward: x");
    let (rows, w) = x.dim();
    let bias = super::vector(bias, w, "bias_gelu backward: bias");
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let mut dz = matrix(dy, "bias_gelu backward: dy").iter().copied().collect::<Vec<f32>>();
    assert_eq!(dz.len(), rows * w, "mlr-kernels bias_gelu backward: dy must have x's shape");
    dz.par_chunks_mut(w)
        .enumerate()
        .with_min_len((16_384 / w.max(1)).max(1))
        .for_each(|(r, row)| gelu_grad_row(row, &xs[r * w..(r + 1) * w], &bias));
    let db = want[1].then(|| {
        tensor(
            column_sums(rows, w, |r, acc| acc.iter_mut().zip(&dz[r * w..(r + 1) * w]).for_each(|(a, v)| *a += v)),
            &[w],
        )
    });
    [want[0].then(|| tensor(dz, &shape)), db]
}

/// What the LayerNorm forward keeps for its backward pass: the normalised rows `x̂` and each
/// row's `σ = √(var + ε)`.
#[derive(Debug, Clone)]
pub(crate) struct NormSaved {
    xhat: Vec<f32>,
    std: Vec<f32>,
    gamma: Vec<f32>,
    shape: Vec<usize>,
}

multiversion! {
    /// One row of [`layer_norm_forward`]: the inference kernel's row (`cpu::norm_row_body`),
    /// keeping `x̂` and σ.
    fn norm_row_saving(row: &mut [f32], xhat: &mut [f32], residual: Option<&[f32]>, params: [&[f32]; 3], epsilon: f32, std_out: &mut f32) {
        *std_out = super::norm_row_body(row, Some(xhat), residual, params, epsilon);
    }
}

/// `LayerNorm(x + bias + residual) · γ + β` over the last axis, as `cpu::layer_norm`, keeping
/// what [`layer_norm`] needs.
pub(crate) fn layer_norm_forward(
    x: &NdArrayTensor,
    bias: &NdArrayTensor,
    residual: Option<&NdArrayTensor>,
    gamma: &NdArrayTensor,
    beta: &NdArrayTensor,
    epsilon: f64,
) -> (NdArrayTensor, NormSaved) {
    let shape = f32_view(x, "layer_norm: x").shape().to_vec();
    let mut out: Vec<f32> = matrix(x, "layer_norm: x").iter().copied().collect();
    let w = shape.last().copied().unwrap_or(1);
    let rows = out.len() / w.max(1);
    let [bias, gamma, beta] = [(bias, "bias"), (gamma, "gamma"), (beta, "beta")]
        .map(|(t, name)| super::vector(t, w, &format!("layer_norm: {name}")));
    let residual = residual.map(|r| matrix(r, "layer_norm: residual").as_standard_layout().into_owned());
    if let Some(r) = &residual {
        assert_eq!(r.len(), rows * w, "mlr-kernels layer_norm: residual must have x's shape");
    }
    let residual = residual.as_ref().map(|r| r.as_slice().expect("standard layout"));
    let mut xhat = written_zeros(rows * w);
    let mut std = vec![0.0f32; rows];
    let epsilon = epsilon as f32;
    out.par_chunks_mut(w.max(1))
        .zip(xhat.par_chunks_mut(w.max(1)))
        .zip(std.par_iter_mut())
        .enumerate()
        .with_min_len((16_384 / w.max(1)).max(1))
        .for_each(|(i, ((row, h), s))| {
            norm_row_saving(row, h, residual.map(|r| &r[i * w..(i + 1) * w]), [&bias, &gamma, &beta], epsilon, s)
        });
    (tensor(out, &shape), NormSaved { xhat, std, gamma, shape })
}

multiversion! {
    /// One row of [`layer_norm`]'s `du` (into `dy`): `(g − mean(g) − x̂·mean(g·x̂)) / σ`, `g = dy·γ`.
    fn norm_grad_row(dy: &mut [f32], xhat: &[f32], gamma: &[f32], std: f32) {
        let n = dy.len() as f32;
        for (g, &c) in dy.iter_mut().zip(gamma) {
            *g *= c;
        }
        let mean_g = sum_by(dy, |v| v) / n;
        let mut acc = [0.0f32; 8];
        let mut chunks = dy.chunks_exact(8).zip(xhat.chunks_exact(8));
        for (g, h) in &mut chunks {
            for ((a, g), h) in acc.iter_mut().zip(g).zip(h) {
                *a += g * h;
            }
        }
        let tail: f32 = dy.chunks_exact(8).remainder().iter().zip(xhat.chunks_exact(8).remainder()).map(|(g, h)| g * h).sum();
        let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
        let mean_gx = (((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail) / n;
        for (g, &h) in dy.iter_mut().zip(xhat) {
            *g = (*g - mean_g - h * mean_gx) / std;
        }
    }
}

/// Gradients of [`layer_norm_forward`]'s output given `dy`; `want` = [dx, dbias, dγ, dβ,
/// dresidual] (dx and dresidual are the same values).
pub(crate) fn layer_norm(saved: &NormSaved, dy: &NdArrayTensor, want: [bool; 5]) -> [Option<NdArrayTensor>; 5] {
    let w = saved.shape.last().copied().unwrap_or(1);
    let dy = matrix(dy, "layer_norm backward: dy").as_standard_layout().into_owned();
    let rows = dy.nrows();
    assert_eq!(rows * w, saved.xhat.len(), "mlr-kernels layer_norm backward: dy must have x's shape");
    let dys = dy.as_slice().expect("standard layout");
    let xhat = &saved.xhat;
    let sums = |f: &(dyn Fn(usize, &mut [f32]) + Sync)| tensor(column_sums(rows, w, f), &[w]);
    let dgamma = want[2].then(|| {
        sums(&|r, acc| {
            acc.iter_mut()
                .zip(&dys[r * w..(r + 1) * w])
                .zip(&xhat[r * w..(r + 1) * w])
                .for_each(|((a, g), h)| *a += g * h)
        })
    });
    let dbeta =
        want[3].then(|| sums(&|r, acc| acc.iter_mut().zip(&dys[r * w..(r + 1) * w]).for_each(|(a, g)| *a += g)));
    let mut du = dys.to_vec();
    du.par_chunks_mut(w.max(1))
        .enumerate()
        .with_min_len((16_384 / w.max(1)).max(1))
        .for_each(|(r, row)| norm_grad_row(row, &xhat[r * w..(r + 1) * w], &saved.gamma, saved.std[r]));
    let dbias = want[1].then(|| sums(&|r, acc| acc.iter_mut().zip(&du[r * w..(r + 1) * w]).for_each(|(a, g)| *a += g)));
    let dres = want[4].then(|| tensor(du.clone(), &saved.shape));
    let dx = want[0].then(|| tensor(du, &saved.shape));
    [dx, dbias, dgamma, dbeta, dres]
}

thread_local! {
    /// Each thread's scratch for [`head_backward`]: P, dP, and the transposes, `4 · s²` values.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gradients of multi-head attention (`cpu::attention`) given `dout`: [dq, dk, dv], each
/// `[b, s, h]`. Each (batch, head) pair is one task.
pub(crate) fn attention(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    mask: &NdArrayTensor,
    heads: usize,
    dout: &NdArrayTensor,
) -> [NdArrayTensor; 3] {
    let (q, k, v) = (view3(q, "q"), view3(k, "k"), view3(v, "v"));
    let dout = f32_view(dout, "dout")
        .into_dimensionality::<Ix3>()
        .expect("mlr-kernels attention backward: dout must be [batch, seq, hidden]")
        .as_standard_layout()
        .into_owned();
    let (b, s, h) = q.dim();
    assert!(dout.dim() == (b, s, h), "mlr-kernels attention backward: dout must have q's shape");
    let mask = f32_view(mask, "mask")
        .into_dimensionality::<Ix2>()
        .expect("mlr-kernels attention backward: mask must be [batch, seq]");
    let bias: Vec<f32> = mask.iter().map(|&m| (1.0 - m) * -1e9).collect();
    let d = h / heads;
    // Per task a [3, s, d] block: dq, dk, dv of one head.
    let mut by_head = written_zeros(b * heads * 3 * s * d);
    by_head.par_chunks_mut(3 * s * d).enumerate().for_each(|(p, block)| {
        let (bi, head) = (p / heads, p % heads);
        let cols = head * d..(head + 1) * d;
        head_backward(
            [&q, &k, &v].map(|t| t.slice(s![bi, .., cols.clone()])),
            dout.slice(s![bi, .., cols.clone()]),
            &bias[bi * s..(bi + 1) * s],
            block,
        );
    });
    let by_head = ndarray::Array5::from_shape_vec((b, heads, 3, s, d), by_head).expect("b × heads × 3 × s × d");
    let grad = |i: usize| {
        let g = by_head.slice(s![.., .., i, .., ..]).permuted_axes([0, 2, 1, 3]).as_standard_layout().into_owned();
        NdArrayTensor::from(g.into_shape_with_order(IxDyn(&[b, s, h])).expect("b × s × h").into_shared())
    };
    [grad(0), grad(1), grad(2)]
}

/// The backward pass of one head's attention (`softmax(q·kᵀ/√d + bias) · v`) given its output's
/// gradient `dout` `[s, d]`: dq, dk and dv into `block` `[3, s, d]` (zeros), with this thread's
/// scratch for P, dP and their transposes.
fn head_backward([qh, kh, vh]: [ArrayView2<f32>; 3], doh: ArrayView2<f32>, bias: &[f32], block: &mut [f32]) {
    let (s, d) = qh.dim();
    let inv_scale = 1.0 / (d as f32).sqrt();
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        scratch.resize(4 * s * s, 0.0);
        let (probs, rest) = scratch.split_at_mut(s * s);
        let (dp, rest) = rest.split_at_mut(s * s);
        let (pt, dst) = rest.split_at_mut(s * s);
        let mut probs = ArrayViewMut2::from_shape((s, s), probs).expect("s × s");
        head_probs(qh, kh, bias, probs.view_mut());
        let mut dp = ArrayViewMut2::from_shape((s, s), dp).expect("s × s");
        // dP = dO · vᵀ (vᵀ as a contiguous copy: the GEMM reads rows).
        mat_mul_add(doh, vh.t().as_standard_layout().view(), dp.view_mut(), false);
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)), then / √d (the forward's scale), into dp.
        for (dprow, prow) in dp.rows_mut().into_iter().zip(probs.rows()) {
            let (dprow, prow) = (dprow.into_slice().expect("contiguous row"), prow.to_slice().expect("contiguous row"));
            let dot: f32 = dprow.iter().zip(prow).map(|(a, b)| a * b).sum();
            dprow.iter_mut().zip(prow).for_each(|(g, p)| *g = p * (*g - dot) * inv_scale);
        }
        let mut pt = ArrayViewMut2::from_shape((s, s), pt).expect("s × s");
        pt.assign(&probs.t());
        let mut dst = ArrayViewMut2::from_shape((s, s), dst).expect("s × s");
        dst.assign(&dp.t());
        let (dq, rest) = block.split_at_mut(s * d);
        let (dk, dv) = rest.split_at_mut(s * d);
        mat_mul_add(dp.view(), kh, block_view(dq, s, d), false);
        mat_mul_add(dst.view(), qh, block_view(dk, s, d), false);
        mat_mul_add(pt.view(), doh, block_view(dv, s, d), false);
    });
}

/// Gradients of the ragged attention (`cpu::attention_ragged`) given `dout` `[tokens, h]`:
/// [dq, dk, dv], each `[tokens, h]`. Each (head, text) pair is one task.
pub(crate) fn attention_ragged(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    lengths: &[usize],
    heads: usize,
    dout: &NdArrayTensor,
) -> [NdArrayTensor; 3] {
    let [q, k, v] = [q, k, v].map(|t| matrix(t, "ragged attention backward: q, k, v"));
    let dout = matrix(dout, "ragged attention backward: dout");
    let (tokens, h, d) = super::ragged_dims(&q.view(), &k.view(), &v.view(), lengths, heads);
    assert_eq!(dout.dim(), (tokens, h), "mlr-kernels ragged attention backward: dout must have q's shape");
    let spans = super::spans(lengths);
    let no_padding = vec![0.0f32; lengths.iter().copied().max().unwrap_or(0)];
    // Per (head, text) task a [3, len, d] block: dq, dk, dv of its rows of one head.
    let sizes: Vec<usize> = (0..heads).flat_map(|_| spans.iter().map(|&(_, len)| 3 * len * d)).collect();
    let mut by_task = written_zeros(3 * heads * tokens * d);
    super::for_blocks(&mut by_task, &sizes, |p, block| {
        let (head, (start, len)) = (p / spans.len(), spans[p % spans.len()]);
        if len > 0 {
            let (rows, cols) = (start..start + len, head * d..(head + 1) * d);
            let [qh, kh, vh, doh] =
                [q.view(), k.view(), v.view(), dout.view()].map(|t| t.slice_move(s![rows.clone(), cols.clone()]));
            head_backward([qh, kh, vh], doh, &no_padding[..len], block);
        }
    });
    // Lay the blocks out as three [tokens, h] gradients.
    let mut grads = [0, 1, 2].map(|_| written_zeros(tokens * h));
    let mut offset = 0;
    for head in 0..heads {
        for &(start, len) in &spans {
            for (i, grad) in grads.iter_mut().enumerate() {
                let block = &by_task[offset + i * len * d..offset + (i + 1) * len * d];
                for (r, row) in block.chunks_exact(d.max(1)).enumerate().take(len) {
                    let at = (start + r) * h + head * d;
                    grad[at..at + d].copy_from_slice(row);
                }
            }
            offset += 3 * len * d;
        }
    }
    grads.map(|g| tensor(g, &[tokens, h]))
}

fn block_view(x: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), x).expect("rows × cols block")
}
