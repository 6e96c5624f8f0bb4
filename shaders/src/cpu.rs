//! The CPU (ndarray) fast paths of [`Kernels`](crate::Kernels) for f32 tensors, in plain Rust on
//! the tensors' memory.
//!
//! Why they exist: burn-ndarray runs every tensor op as its own pass into a fresh array, its
//! reshape copies (it turns the reshaped view into a new array), and its matmul reshapes both
//! operands to 3-D first, so every linear layer copied its weight on every call. For short inputs
//! those copies, and the page faults of the fresh memory, cost more than the arithmetic. Here:
//!
//! - [`linear`]: one GEMM on views: [`gemm`] (AVX-512 or AVX2 + FMA, operands read in place,
//!   rayon's threads) where the CPU has it, else ndarray's `general_mat_mul` (matrixmultiply);
//! - [`bias_gelu`], [`layer_norm`]: one pass per row, in place when the input is not shared;
//! - [`attention`]: per (batch, head), `q·kᵀ` into one `[seq, seq]` block, scale + mask +
//!   softmax in place, `· v`; the reference materialises `[batch, heads, seq, seq]` tensors.
//!
//! Rows and heads are spread over rayon's threads natively; wasm has one thread. Each function
//! computes what its reference in [`reference`](crate::reference) computes, the GELU's erf and
//! the softmax's exp as vectorising polynomials within a few ulp of libm (the tests below); the
//! parity tests in `tests/parity.rs` compare each with its reference.

mod gemm;

use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::TensorMetadata;
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2, ArrayViewMut2, Ix1, Ix2, Ix3, IxDyn};

type Shared = ndarray::ArcArray<f32, IxDyn>;

/// Whether every tensor holds f32 values (the fast paths' element type).
pub(crate) fn all_f32(tensors: &[&NdArrayTensor]) -> bool {
    tensors.iter().all(|t| matches!(t, NdArrayTensor::F32(_)))
}

/// The f32 array of `t`, in standard (row-major, contiguous) layout; shared memory is copied on
/// first write (ndarray's copy-on-write), unshared memory is reused.
fn owned_f32(t: NdArrayTensor, what: &str) -> Shared {
    let NdArrayTensor::F32(storage) = t else { panic!("mlr-shaders {what}: expected an f32 tensor, got {:?}", t.dtype()) };
    let array = storage.into_shared();
    if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned().into_shared()
    }
}

/// The values of a vector parameter (bias, gamma, beta), which must have `len` entries.
fn vector(t: &NdArrayTensor, len: usize, what: &str) -> Vec<f32> {
    let NdArrayTensor::F32(storage) = t else { panic!("mlr-shaders {what}: expected an f32 tensor") };
    let view = storage.view();
    let view = view.into_dimensionality::<Ix1>().unwrap_or_else(|_| panic!("mlr-shaders {what}: must be a vector"));
    assert_eq!(view.len(), len, "mlr-shaders {what}: must have {len} entries (the last axis of x)");
    view.to_vec()
}

/// The last-axis width of a shape (1 for a scalar).
fn width(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

/// Runs `f(chunk index, chunk)` on every `len`-long chunk of `data`, at least `min_chunks` per
/// task: in parallel on rayon's threads natively, in order on wasm (one thread).
fn for_chunks(data: &mut [f32], len: usize, min_chunks: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    if len == 0 || data.is_empty() {
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(len).enumerate().with_min_len(min_chunks).for_each(|(i, chunk)| f(i, chunk));
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = min_chunks;
        data.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    }
}

/// [`for_chunks`] over the `width`-long rows of `data`, at least ~16k values per task so that
/// short inputs are not split into tiny jobs.
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    for_chunks(data, width, (16_384 / width.max(1)).max(1), f);
}

/// `c += a · b`: [`gemm`] where this CPU has it (on rayon's threads if `threads`), else
/// matrixmultiply (which decides its threads itself).
fn mat_mul_add(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, threads: bool) {
    if !gemm::gemm(a, b, c.view_mut(), threads) {
        general_mat_mul(1.0, &a, &b, 1.0, &mut c);
    }
}

/// `x · weight (+ bias)` for f32 tensors; `None` for other element types (the caller then runs
/// the reference).
pub(crate) fn linear(x: &NdArrayTensor, weight: &NdArrayTensor, bias: Option<&NdArrayTensor>) -> Option<NdArrayTensor> {
    let (NdArrayTensor::F32(x), NdArrayTensor::F32(weight)) = (x, weight) else { return None };
    let x = x.view();
    let weight = weight.view().into_dimensionality::<Ix2>().expect("mlr-shaders linear: weight must be a matrix");
    let mut shape = x.shape().to_vec();
    let k = *shape.last().expect("mlr-shaders linear: x has a last axis");
    let n = weight.shape()[1];
    assert_eq!(weight.shape()[0], k, "mlr-shaders linear: x has {k} columns, the weight {} rows", weight.shape()[0]);
    let rows = shape[..shape.len() - 1].iter().product();
    // A view when x is contiguous (the usual case), else one copy of the activations.
    let x = x.to_shape((rows, k)).expect("mlr-shaders linear: x reshapes to a matrix");
    let mut out = match bias {
        Some(NdArrayTensor::F32(b)) => {
            let b = b.view().into_dimensionality::<Ix1>().expect("mlr-shaders linear: bias must be a vector");
            b.broadcast((rows, n)).expect("mlr-shaders linear: bias must have the weight's columns").to_owned()
        }
        Some(_) => return None,
        None => Array2::zeros((rows, n)),
    };
    mat_mul_add(x.view(), weight, out.view_mut(), true);
    *shape.last_mut().expect("checked above") = n;
    let out = out.into_shape_with_order(IxDyn(&shape)).expect("rows × n elements").into_shared();
    Some(NdArrayTensor::from(out))
}

/// erf(x) to within 5e-7 of libm's `erff` (the test below measures 4.8e-7, near ±3.9 where erf is
/// within 1e-7 of ±1; GELU's reference rounds 1 + erf there too), branch-free so that the
/// row loops vectorise: an odd rational minimax approximation `x·P(x²)/Q(x²)` on [-4, 4], where
/// f32 erf is ±1 beyond. The coefficients are the published ones XLA and Eigen use for f32 erf.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [-2.726_142_3e-10, 2.770_681_4e-8, -2.101_024e-6, -5.692_506_4e-5, -7.349_906_3e-4, -2.954_600e-3, -1.609_603_3e-2];
    const Q: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2];
    let x = if x < -4.0 { -4.0 } else if x > 4.0 { 4.0 } else { x };
    let x2 = x * x;
    let p = P.iter().fold(0.0, |acc, &c| acc * x2 + c);
    let q = Q.iter().fold(0.0, |acc, &c| acc * x2 + c);
    x * p / q
}

/// The exact (erf) GELU, `x · ½ · (1 + erf(x / √2))`, the formula of burn's reference.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    x * 0.5 * (1.0 + erf(x / core::f32::consts::SQRT_2))
}

/// e^x for x ≤ 0 (softmax scores minus their row maximum) to within 2 ulp of libm's `expf`,
/// branch-free so that the loop vectorises: x = n·ln2 + r with |r| ≤ ln2/2, Cephes' degree-6
/// polynomial for e^r, and 2^n from the exponent bits. Below -87 it is 0: e^-87 is 1.6e-38,
/// nothing against a softmax sum ≥ 1, and masked keys' -1e9 lands there (0 in the reference too).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let y = if x < -87.0 { -87.0 } else { x };
    let n = (y * core::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = y - n * LN2_HI - n * LN2_LO;
    let p = [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5].iter().fold(0.0, |acc, &c| acc * r + c);
    let e = (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { e }
}

/// `gelu(x + bias)` over the last axis, in place when `x` is not shared.
pub(crate) fn bias_gelu(x: NdArrayTensor, bias: &NdArrayTensor) -> NdArrayTensor {
    let mut x = owned_f32(x, "bias_gelu");
    let w = width(x.shape());
    let bias = vector(bias, w, "bias_gelu: bias");
    let data = x.as_slice_mut().expect("standard layout");
    for_rows(data, w, |_, row| {
        for (v, b) in row.iter_mut().zip(&bias) {
            *v = gelu(*v + b);
        }
    });
    NdArrayTensor::from(x)
}

/// `LayerNorm(x + bias + residual) · gamma + beta` over the last axis (biased variance, as the
/// reference), in place when `x` is not shared.
pub(crate) fn layer_norm(
    x: NdArrayTensor,
    bias: &NdArrayTensor,
    residual: Option<&NdArrayTensor>,
    gamma: &NdArrayTensor,
    beta: &NdArrayTensor,
    epsilon: f64,
) -> NdArrayTensor {
    let mut x = owned_f32(x, "layer_norm");
    let w = width(x.shape());
    let [bias, gamma, beta] = [(bias, "bias"), (gamma, "gamma"), (beta, "beta")].map(|(t, name)| vector(t, w, &format!("layer_norm: {name}")));
    let residual = residual.map(|r| {
        let NdArrayTensor::F32(r) = r else { panic!("mlr-shaders layer_norm: residual must be f32") };
        let r = r.view();
        assert_eq!(r.shape(), x.shape(), "mlr-shaders layer_norm: residual must have x's shape");
        r.as_standard_layout().into_owned()
    });
    let residual = residual.as_ref().map(|r| r.as_slice().expect("standard layout"));
    let epsilon = epsilon as f32;
    let n = w as f32;
    let data = x.as_slice_mut().expect("standard layout");
    for_rows(data, w, |i, row| {
        match residual {
            Some(r) => {
                for ((v, b), r) in row.iter_mut().zip(&bias).zip(&r[i * w..(i + 1) * w]) {
                    *v = *v + b + r;
                }
            }
            None => row.iter_mut().zip(&bias).for_each(|(v, b)| *v += b),
        }
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let std = (var + epsilon).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&gamma).zip(&beta) {
            *v = (*v - mean) / std * g + b;
        }
    });
    NdArrayTensor::from(x)
}

/// Scaled dot-product attention of one head into `out` `[s, d]`: `softmax(q·kᵀ / √d + bias) · v`
/// (`out` holds zeros) with `scores` `[s, s]` (zeros) as scratch; `bias[j]` is 0 for a token key and -1e9 for padding.
fn head_attention(q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>, bias: &[f32], scores: &mut Array2<f32>, out: ArrayViewMut2<f32>) {
    let scale = (q.ncols() as f32).sqrt();
    if gemm::available() {
        // The GEMM reads rows: kᵀ `[d, s]` as a contiguous copy (s × d values, small next to s²·d).
        mat_mul_add(q, k.t().as_standard_layout().view(), scores.view_mut(), false);
    } else {
        mat_mul_add(q, k.t(), scores.view_mut(), false);
    }
    for mut row in scores.rows_mut() {
        let row = row.as_slice_mut().expect("a standard-layout scratch block");
        let mut max = f32::NEG_INFINITY;
        for (x, b) in row.iter_mut().zip(bias) {
            *x = *x / scale + b;
            max = max.max(*x);
        }
        row.iter_mut().for_each(|x| *x = exp_nonpositive(*x - max));
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= sum);
    }
    mat_mul_add(scores.view(), v, out, false);
}

/// Multi-head self-attention; q, k, v `[b, s, h]`, mask `[b, s]` -> `[b, s, h]`. Each (batch,
/// head) pair is one task with its own `[s, s]` block.
pub(crate) fn attention(q: &NdArrayTensor, k: &NdArrayTensor, v: &NdArrayTensor, mask: &NdArrayTensor, heads: usize) -> NdArrayTensor {
    fn view3<'a>(t: &'a NdArrayTensor, what: &str) -> ndarray::ArrayView3<'a, f32> {
        let NdArrayTensor::F32(t) = t else { unreachable!("checked by the caller") };
        t.view().into_dimensionality::<Ix3>().unwrap_or_else(|_| panic!("mlr-shaders attention: {what} must be [batch, seq, hidden]"))
    }
    let (q, k, v) = (view3(q, "q"), view3(k, "k"), view3(v, "v"));
    let (b, s, h) = q.dim();
    assert!(k.dim() == (b, s, h) && v.dim() == (b, s, h), "mlr-shaders attention: q, k and v must have one shape");
    assert!(heads > 0 && h % heads == 0, "mlr-shaders attention: {heads} heads do not divide the width {h}");
    let NdArrayTensor::F32(mask) = mask else { unreachable!("checked by the caller") };
    let mask = mask.view();
    assert_eq!(mask.shape(), [b, s], "mlr-shaders attention: mask must be [batch, seq]");
    // The reference's additive bias, (1 - mask) · -1e9, per batch row.
    let bias: Vec<f32> = mask.iter().map(|&m| (1.0 - m) * -1e9).collect();
    let d = h / heads;
    // Heads are computed into [b, heads, s, d] (one contiguous block per task), then laid out as
    // [b, s, h]: one copy of the output, small next to the attention itself.
    let mut by_head = vec![0.0f32; b * heads * s * d];
    let task = |p: usize, block: &mut [f32]| {
        let (bi, head) = (p / heads, p % heads);
        let cols = head * d..(head + 1) * d;
        // Fresh zeros: head_attention adds into both blocks.
        let mut scores = Array2::zeros((s, s));
        let out = ArrayViewMut2::from_shape((s, d), block).expect("s × d block");
        head_attention(
            q.slice(s![bi, .., cols.clone()]),
            k.slice(s![bi, .., cols.clone()]),
            v.slice(s![bi, .., cols]),
            &bias[bi * s..(bi + 1) * s],
            &mut scores,
            out,
        );
    };
    for_chunks(&mut by_head, s * d, 1, task);
    let by_head = ndarray::Array4::from_shape_vec((b, heads, s, d), by_head).expect("b × heads × s × d values");
    let out = by_head.permuted_axes([0, 2, 1, 3]).as_standard_layout().into_owned();
    let out = out.into_shape_with_order(IxDyn(&[b, s, h])).expect("b × s × h values").into_shared();
    NdArrayTensor::from(out)
}

#[cfg(test)]
mod tests {
    use super::{erf, exp_nonpositive};

    /// Units in the last place between two f32 values of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn erf_is_within_5e7_of_libm_everywhere() {
        let mut worst = (0.0f32, 0.0f32);
        for i in -800_000..=800_000 {
            let x = i as f32 * 1e-5;
            let err = (erf(x) - libm::erff(x)).abs();
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 <= 5e-7, "erf is {} off libm at {}", worst.0, worst.1);
        // Far out it is the clamped value, one ulp below 1, and odd.
        assert!(1.0 - erf(1e30) <= f32::EPSILON, "erf(1e30) = {}", erf(1e30));
        assert_eq!((erf(-1e30), erf(0.0)), (-erf(1e30), 0.0));
    }

    #[test]
    fn exp_is_within_2_ulp_of_libm_below_zero() {
        let mut worst = (0u32, 0.0f32);
        for i in 0..=8_700_000 {
            let x = -(i as f32) * 1e-5;
            let err = ulps(exp_nonpositive(x), libm::expf(x));
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 <= 2, "exp is {} ulp off libm at {}", worst.0, worst.1);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(-1e9), 0.0);
    }
}
