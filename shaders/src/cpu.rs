//! The CPU (ndarray) fast paths of [`Kernels`](crate::Kernels) for f32 tensors, in plain Rust on
//! the tensors' memory.
//!
//! Why they exist: burn-ndarray runs every tensor op as its own pass into a fresh array, its
//! reshape copies (it turns the reshaped view into a new array), and its matmul reshapes both
//! operands to 3-D first, so every linear layer copied its weight on every call. For short inputs
//! those copies, and the page faults of the fresh memory, cost more than the arithmetic. Here:
//!
//! - [`linear`]: one GEMM on views: [`gemm`] (AVX-512 or AVX2 + FMA on rayon's threads, or wasm
//!   SIMD) where the CPU has it, reading the activations in place and the weight from a copy packed once on first
//!   use (`packed_weights`); from `LIBRARY_MIN_ROWS` rows on AVX2 CPUs (a training step's ragged pass) the `gemm`
//!   crate (`gemm::gemm_many_rows`), which is faster there; else ndarray's `general_mat_mul` (matrixmultiply);
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

/// Whether every tensor holds f32 values (the fast paths' element type); optional inputs are
/// chained in (`[&x, &w].into_iter().chain(bias)`).
pub(crate) fn all_f32<'a>(tensors: impl IntoIterator<Item = &'a NdArrayTensor>) -> bool {
    tensors.into_iter().all(|t| matches!(t, NdArrayTensor::F32(_)))
}

/// The f32 array of `t`, in standard (row-major, contiguous) layout; shared memory is copied on
/// first write (ndarray's copy-on-write), unshared memory is reused.
fn owned_f32(t: NdArrayTensor, what: &str) -> Shared {
    let NdArrayTensor::F32(storage) = t else {
        panic!("mlr-kernels {what}: expected an f32 tensor, got {:?}", t.dtype())
    };
    let array = storage.into_shared();
    if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned().into_shared()
    }
}

/// The values of a vector parameter (bias, gamma, beta), which must have `len` entries.
fn vector(t: &NdArrayTensor, len: usize, what: &str) -> Vec<f32> {
    let NdArrayTensor::F32(storage) = t else { panic!("mlr-kernels {what}: expected an f32 tensor") };
    let view = storage.view();
    let view = view.into_dimensionality::<Ix1>().unwrap_or_else(|_| panic!("mlr-kernels {what}: must be a vector"));
    assert_eq!(view.len(), len, "mlr-kernels {what}: must have {len} entries (the last axis of x)");
    view.to_vec()
}

/// The last-axis width of a shape (1 for a scalar).
fn width(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

/// Runs `f(chunk index, chunk)` on every `len`-long chunk of `data`, at least `min_chunks` per
/// task: in parallel on rayon's threads (natively, and on wasm with shared memory), else in order.
fn for_chunks(data: &mut [f32], len: usize, min_chunks: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    if len == 0 || data.is_empty() {
        return;
    }
    #[cfg(mlr_threads)]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(len).enumerate().with_min_len(min_chunks).for_each(|(i, chunk)| f(i, chunk));
    }
    #[cfg(not(mlr_threads))]
    {
        let _ = min_chunks;
        data.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    }
}

/// Runs `f(block index, block)` on consecutive blocks of `data` of the given `sizes` (which sum to
/// its length): in parallel on rayon's threads (natively, and on wasm with shared memory), else in
/// order.
fn for_blocks(data: &mut [f32], sizes: &[usize], f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    assert_eq!(sizes.iter().sum::<usize>(), data.len(), "mlr-kernels: blocks must cover the buffer");
    let mut blocks = Vec::with_capacity(sizes.len());
    let mut rest = data;
    for &size in sizes {
        let (block, tail) = rest.split_at_mut(size);
        blocks.push(block);
        rest = tail;
    }
    #[cfg(mlr_threads)]
    {
        use rayon::prelude::*;
        blocks.into_par_iter().enumerate().for_each(|(i, block)| f(i, block));
    }
    #[cfg(not(mlr_threads))]
    blocks.into_iter().enumerate().for_each(|(i, block)| f(i, block));
}

/// Each text's first row and length, from the texts' lengths in order.
pub(crate) fn spans(lengths: &[usize]) -> Vec<(usize, usize)> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            start += len;
            (start - len, len)
        })
        .collect()
}

/// [`for_chunks`] over the `width`-long rows of `data`, at least ~16k values per task so that
/// short inputs are not split into tiny jobs.
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    for_chunks(data, width, (16_384 / width.max(1)).max(1), f);
}

/// Defines `fn $name` three times over: compiled for the baseline x86-64 (SSE2, 4 lanes; the
/// crate is built for it so that it runs on every x86-64 CPU), for AVX2 + FMA (8 lanes) and for
/// AVX-512 (16 lanes), the widest this CPU has picked at run time, so that its loops vectorise
/// as wide as the CPU allows. Rust never fuses `a · b + c` into an FMA by itself, so all give the
/// same values. Off x86-64 there is one.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match gemm::Isa::best() {
                    // SAFETY: this CPU has AVX-512F, AVX2 and FMA (detected at run time).
                    Some(gemm::Isa::Avx512) if gemm::Isa::Avx2.supported() => return unsafe { avx512($($arg),*) },
                    // SAFETY: this CPU has AVX2 and FMA (detected at run time).
                    Some(_) if gemm::Isa::Avx2.supported() => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod backward;

/// `Σ f(xᵢ)` with eight running sums (one per `i mod 8`), so that the loop vectorises: a single
/// running sum is a chain of dependent adds, one every few cycles. The order differs from a left
/// fold only in rounding.
#[inline(always)]
fn sum_by(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail
}

/// The largest of `x` (−∞ when empty; NaNs are skipped), with eight running maxima as [`sum_by`].
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let larger = |a: f32, b: f32| if b > a { b } else { a };
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = larger(*a, v);
        }
    }
    chunks.remainder().iter().fold(acc.into_iter().fold(f32::NEG_INFINITY, larger), |m, &v| larger(m, v))
}

/// `c += a · b`: [`gemm`] where this CPU has it (on rayon's threads if `threads`, natively), else
/// matrixmultiply (which decides its threads itself).
fn mat_mul_add(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, threads: bool) {
    if !gemm::gemm(a, b, c.view_mut(), threads) {
        general_mat_mul(1.0, &a, &b, 1.0, &mut c);
    }
}

/// `x · weight (+ bias)` for f32 tensors; `None` for other element types (the caller then runs
/// the reference).
pub(crate) fn linear(x: &NdArrayTensor, weight: &NdArrayTensor, bias: Option<&NdArrayTensor>) -> Option<NdArrayTensor> {
    let weight_tensor = weight;
    let (NdArrayTensor::F32(x), NdArrayTensor::F32(weight)) = (x, weight) else { return None };
    let x = x.view();
    let weight = weight.view().into_dimensionality::<Ix2>().expect("mlr-kernels linear: weight must be a matrix");
    let mut shape = x.shape().to_vec();
    let k = *shape.last().expect("mlr-kernels linear: x has a last axis");
    let n = weight.shape()[1];
    assert_eq!(weight.shape()[0], k, "mlr-kernels linear: x has {k} columns, the weight {} rows", weight.shape()[0]);
    let rows = shape[..shape.len() - 1].iter().product();
    // A view when x is contiguous (the usual case), else one copy of the activations.
    let x = x.to_shape((rows, k)).expect("mlr-kernels linear: x reshapes to a matrix");
    let mut out = match bias {
        Some(NdArrayTensor::F32(b)) => {
            let b = b.view().into_dimensionality::<Ix1>().expect("mlr-kernels linear: bias must be a vector");
            b.broadcast((rows, n)).expect("mlr-kernels linear: bias must have the weight's columns").to_owned()
        }
        Some(_) => return None,
        None => Array2::from_shape_vec((rows, n), written_zeros(rows * n)).expect("rows × n values"),
    };
    #[cfg(mlr_gemm)]
    let done = gemm::gemm_many_rows(x.view(), weight, out.view_mut(), true)
        || packed_weights::get(weight_tensor)
            .is_some_and(|packed| gemm::gemm_packed(x.view(), &packed, out.view_mut(), true));
    #[cfg(not(mlr_gemm))]
    let done = {
        let _ = weight_tensor;
        false
    };
    if !done {
        mat_mul_add(x.view(), weight, out.view_mut(), true);
    }
    *shape.last_mut().expect("checked above") = n;
    let out = out.into_shape_with_order(IxDyn(&shape)).expect("rows × n elements").into_shared();
    Some(NdArrayTensor::from(out))
}

/// The linear layers' weights packed once for the GEMM ([`gemm::PackedB`]), so that every call
/// streams them in order instead of reading them at their row stride (and, for training, their
/// transposes, packed on the first backward pass that needs them).
///
/// An entry holds a clone of the weight tensor (a reference to its memory) beside the packed
/// copy, which makes the cache sound: the memory cannot be freed and reused by another tensor
/// while the entry lives, and burn-ndarray writes in place only into memory nothing else
/// references, so a cached weight never changes. Entries whose weight only the cache still
/// references (the model was dropped, or an optimiser step replaced the weight) are removed on
/// every lookup, and the packed copies are capped at [`packed_weights::CAP_BYTES`] in all
/// (weights past it are multiplied in place). During training, the cache's reference makes an
/// optimiser step copy a validated weight instead of updating it in place. Natively this doubles the memory of the linear weights (85 MB for
/// multilingual-e5-small), in the browser too (wasm32 with SIMD).
#[cfg(mlr_gemm)]
mod packed_weights {
    use std::sync::{Arc, Mutex, PoisonError};

    use burn::backend::ndarray::NdArrayTensor;
    use ndarray::Ix2;

    use super::gemm::PackedB;

    /// Most bytes of packed copies kept at once: 1 GiB natively, 384 MiB in wasm32, whose heap
    /// is at most 4 GiB and never shrinks (multilingual-e5-small's linear weights take 85 MB).
    pub(super) const CAP_BYTES: usize = if cfg!(target_arch = "wasm32") { 384 << 20 } else { 1 << 30 };

    struct Entry {
        /// Keeps the weight's memory alive and unchanged (see the module docs).
        weight: NdArrayTensor,
        key: (usize, Vec<usize>, Vec<isize>),
        /// The weight `[k, n]` packed (for the forward product), made on first use.
        packed: Option<Arc<PackedB>>,
        /// Its transpose `[n, k]` packed (for the backward product `dy · wᵀ`), made on first use.
        transposed: Option<Arc<PackedB>>,
    }

    static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    /// Address, shape and strides: what identifies a live weight's values.
    fn key(weight: &NdArrayTensor) -> Option<(usize, Vec<usize>, Vec<isize>)> {
        let NdArrayTensor::F32(storage) = weight else { return None };
        // Borrowed storage (burnpack, mmap) never reports a sole owner, so its entries could
        // not be swept: such weights are not cached.
        if !storage.is_owned() {
            return None;
        }
        let view = storage.view();
        Some((view.as_ptr() as usize, view.shape().to_vec(), view.strides().to_vec()))
    }

    /// Whether only the cache references the weight.
    fn orphaned(weight: &NdArrayTensor) -> bool {
        matches!(weight, NdArrayTensor::F32(storage) if storage.is_unique())
    }

    fn bytes(entry: &Entry) -> usize {
        [&entry.packed, &entry.transposed].iter().filter_map(|p| p.as_ref()).map(|p| p.len() * 4).sum()
    }

    /// The packed copy of `weight` (a `[k, n]` f32 matrix), made now if it is not cached; `None`
    /// where this CPU has no packed GEMM.
    pub(super) fn get(weight: &NdArrayTensor) -> Option<Arc<PackedB>> {
        lookup(weight, false)
    }

    /// The packed copy of `weight`'s transpose `[n, k]`, for `dy · weightᵀ` in the backward pass
    /// of a linear layer (one copy per weight and optimiser step, beside the forward's). Native
    /// only, as the backward pass is.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn get_transposed(weight: &NdArrayTensor) -> Option<Arc<PackedB>> {
        lookup(weight, true)
    }

    fn lookup(weight: &NdArrayTensor, transposed: bool) -> Option<Arc<PackedB>> {
        let key = key(weight)?;
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|e| !orphaned(&e.weight));
        let slot = |e: &Entry| if transposed { e.transposed.clone() } else { e.packed.clone() };
        let found = cache.iter().position(|e| e.key == key);
        if let Some(packed) = found.and_then(|i| slot(&cache[i])) {
            return Some(packed);
        }
        let NdArrayTensor::F32(storage) = weight else { return None };
        let view = storage.view().into_dimensionality::<Ix2>().ok()?;
        let packed = Arc::new(if transposed { PackedB::new(view.t())? } else { PackedB::new(view)? });
        // A full cache takes no more weights (the caller then multiplies in place): evicting the
        // oldest would make a model larger than the cap, whose layers run in a fixed cycle, miss
        // on every call.
        if cache.iter().map(bytes).sum::<usize>() + packed.len() * 4 > CAP_BYTES {
            return None;
        }
        let i = match found {
            Some(i) => i,
            None => {
                cache.push(Entry { weight: weight.clone(), key, packed: None, transposed: None });
                cache.len() - 1
            }
        };
        let entry = &mut cache[i];
        *(if transposed { &mut entry.transposed } else { &mut entry.packed }) = Some(packed.clone());
        Some(packed)
    }

    /// How many weights are cached (for the tests).
    #[cfg(test)]
    pub(super) fn len() -> usize {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|e| !orphaned(&e.weight));
        cache.len()
    }
}

/// erf(x) to within 5e-7 of libm's `erff` (the test below measures 4.8e-7, near ±3.9 where erf is
/// within 1e-7 of ±1; GELU's reference rounds 1 + erf there too), branch-free so that the
/// row loops vectorise: an odd rational minimax approximation `x·P(x²)/Q(x²)` on [-4, 4], where
/// f32 erf is ±1 beyond. The coefficients are the published ones XLA and Eigen use for f32 erf.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2];
    let x = x.clamp(-4.0, 4.0);
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
    let p = [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5]
        .iter()
        .fold(0.0, |acc, &c| acc * r + c);
    let e = (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        e
    }
}

/// `gelu(x + bias)` over the last axis, in place when `x` is not shared.
pub(crate) fn bias_gelu(x: NdArrayTensor, bias: &NdArrayTensor) -> NdArrayTensor {
    let mut x = owned_f32(x, "bias_gelu");
    let w = width(x.shape());
    let bias = vector(bias, w, "bias_gelu: bias");
    let data = x.as_slice_mut().expect("standard layout");
    multiversion! {
        /// `row = gelu(row + bias)`.
        fn gelu_row(row: &mut [f32], bias: &[f32]) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = gelu(*v + b);
            }
        }
    }
    for_rows(data, w, |_, row| gelu_row(row, &bias));
    NdArrayTensor::from(x)
}

/// One LayerNorm row, shared by inference ([`layer_norm`]) and training (`backward::
/// layer_norm_forward`, which also keeps `x̂`), so that both give the same bits: `u = row + bias
/// (+ residual)`, `x̂ = (u − mean) / σ` (into `xhat` if given), `row = x̂ · γ + β`. Returns
/// `σ = √(var + ε)`. Inlined into each caller's `multiversion!` copy, so it vectorises for the
/// caller's instruction set.
#[inline(always)]
pub(crate) fn norm_row_body(
    row: &mut [f32],
    xhat: Option<&mut [f32]>,
    residual: Option<&[f32]>,
    params: [&[f32]; 3],
    epsilon: f32,
) -> f32 {
    let [bias, gamma, beta] = params;
    match residual {
        Some(r) => {
            for ((v, b), r) in row.iter_mut().zip(bias).zip(r) {
                *v = *v + b + r;
            }
        }
        None => row.iter_mut().zip(bias).for_each(|(v, b)| *v += b),
    }
    let n = row.len() as f32;
    let mean = sum_by(row, |v| v) / n;
    let var = sum_by(row, |v| (v - mean) * (v - mean)) / n;
    let std = (var + epsilon).sqrt();
    match xhat {
        Some(xhat) => {
            for (((v, h), g), b) in row.iter_mut().zip(xhat.iter_mut()).zip(gamma).zip(beta) {
                *h = (*v - mean) / std;
                *v = *h * g + b;
            }
        }
        None => {
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = (*v - mean) / std * g + b;
            }
        }
    }
    std
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
    let [bias, gamma, beta] = [(bias, "bias"), (gamma, "gamma"), (beta, "beta")]
        .map(|(t, name)| vector(t, w, &format!("layer_norm: {name}")));
    // The residual's values in row-major order: its memory when contiguous, else one copy.
    let residual = residual.map(|r| {
        let NdArrayTensor::F32(r) = r else { panic!("mlr-kernels layer_norm: residual must be f32") };
        let r = r.view();
        assert_eq!(r.shape(), x.shape(), "mlr-kernels layer_norm: residual must have x's shape");
        match r.to_slice() {
            Some(values) => std::borrow::Cow::Borrowed(values),
            None => std::borrow::Cow::Owned(r.iter().copied().collect::<Vec<f32>>()),
        }
    });
    let residual = residual.as_deref();
    let epsilon = epsilon as f32;
    let data = x.as_slice_mut().expect("standard layout");
    multiversion! {
        /// `row = LayerNorm(row + bias (+ residual)) · gamma + beta`, `params` = [bias, gamma, beta].
        fn norm_row(row: &mut [f32], residual: Option<&[f32]>, params: [&[f32]; 3], epsilon: f32) {
            norm_row_body(row, None, residual, params, epsilon);
        }
    }
    for_rows(data, w, |i, row| {
        norm_row(row, residual.map(|r| &r[i * w..(i + 1) * w]), [&bias, &gamma, &beta], epsilon)
    });
    NdArrayTensor::from(x)
}

thread_local! {
    /// Each thread's `[s, s]` score block for [`head_attention`].
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `len` zeros whose memory has been written, for outputs the GEMM adds into. `vec![0.0; len]`
/// alone gets fresh pages from the OS that read as zeros until written; adding into them reads
/// each page (mapping the shared zero page) and then writes it, a second fault that replaces the
/// mapping and so flushes the TLB of every other CPU running this process: an interrupt to each,
/// costly in a virtual machine (measured: 40 % of b64 × s256 went to those flushes). One write
/// per page first makes it a single fault with no flush.
fn written_zeros(len: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; len];
    for x in v.iter_mut().step_by(1024) {
        // SAFETY: a valid, aligned f32 of v. Volatile so that the store is not dropped as a no-op.
        unsafe { std::ptr::write_volatile(x, 0.0) };
    }
    v
}

/// One AdamW step (the formula in [`reference::adamw`](crate::reference::adamw), the same
/// operations in the same order, so the same bits) in one pass over parameter, gradient and
/// moments, split over rayon's threads; the parameter and the moments are updated in place when not
/// shared. Moments `None` start at zero, which gives the reference's first step exactly
/// (`0 · β + x = x`).
pub(crate) fn adamw(
    param: NdArrayTensor,
    grad: &NdArrayTensor,
    moments: Option<(NdArrayTensor, NdArrayTensor)>,
    step: &crate::AdamWStep,
) -> [NdArrayTensor; 3] {
    let mut p = owned_f32(param, "adamw: param");
    let (mut m1, mut m2) = match moments {
        Some((m1, m2)) => (owned_f32(m1, "adamw: moment 1"), owned_f32(m2, "adamw: moment 2")),
        None => (Shared::zeros(p.raw_dim()), Shared::zeros(p.raw_dim())),
    };
    let NdArrayTensor::F32(grad) = grad else { panic!("mlr-kernels adamw: expected an f32 gradient") };
    let grad = grad.view();
    assert!(
        grad.shape() == p.shape() && m1.shape() == p.shape() && m2.shape() == p.shape(),
        "mlr-kernels adamw: parameter, gradient and moments must have one shape"
    );
    let grad = grad.as_standard_layout();
    let g = grad.as_slice().expect("standard layout");
    let [c1, c2] = step.bias_corrections();
    let decay = step.lr * step.weight_decay as f64;
    let k = Coefficients {
        scale: step.grad_scale,
        beta_1: step.beta_1,
        beta_2: step.beta_2,
        factor_1: 1.0 - step.beta_1,
        factor_2: 1.0 - step.beta_2,
        c1,
        c2,
        epsilon: step.epsilon,
        keep: if decay == 0.0 { 1.0 } else { (1.0 - decay) as f32 },
        lr: step.lr as f32,
    };
    let (ps, a, b) = (
        p.as_slice_mut().expect("standard layout"),
        m1.as_slice_mut().expect("standard layout"),
        m2.as_slice_mut().expect("standard layout"),
    );
    const CHUNK: usize = 1 << 14;
    #[cfg(mlr_threads)]
    {
        use rayon::prelude::*;
        ps.par_chunks_mut(CHUNK)
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, a), b), g)| adamw_chunk(p, a, b, g, &k));
    }
    #[cfg(not(mlr_threads))]
    {
        let chunks = ps.chunks_mut(CHUNK).zip(a.chunks_mut(CHUNK)).zip(b.chunks_mut(CHUNK)).zip(g.chunks(CHUNK));
        chunks.for_each(|(((p, a), b), g)| adamw_chunk(p, a, b, g, &k));
    }
    [p, m1, m2].map(NdArrayTensor::from)
}

/// The f32 constants of one AdamW step.
struct Coefficients {
    scale: f32,
    beta_1: f32,
    beta_2: f32,
    factor_1: f32,
    factor_2: f32,
    c1: f32,
    c2: f32,
    epsilon: f32,
    /// `1 − lr · weight_decay`; 1 without decay, where the reference skips the product (`x · 1`
    /// is `x`, as is `g · 1` for an unscaled gradient).
    keep: f32,
    lr: f32,
}

multiversion! {
    /// [`adamw`] on one chunk: parameter, moment 1, moment 2, gradient.
    fn adamw_chunk(p: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32], k: &Coefficients) {
        for (((p, a), b), &g) in p.iter_mut().zip(m1.iter_mut()).zip(m2.iter_mut()).zip(g) {
            let g = g * k.scale;
            *a = *a * k.beta_1 + g * k.factor_1;
            *b = *b * k.beta_2 + (g * g) * k.factor_2;
            let delta = (*a / k.c1) / ((*b / k.c2).sqrt() + k.epsilon);
            *p = *p * k.keep - delta * k.lr;
        }
    }
}

/// The attention probabilities of one head into `scores` `[s, s]` (zeros on entry):
/// `softmax(q·kᵀ / √d + bias)` row by row; `bias[j]` is 0 for a token key and -1e9 for padding.
/// The backward pass recomputes them with this same function, so they are the forward's bits.
fn head_probs(q: ArrayView2<f32>, k: ArrayView2<f32>, bias: &[f32], mut scores: ArrayViewMut2<f32>) {
    let scale = (q.ncols() as f32).sqrt();
    if gemm::available() {
        // The GEMM reads rows: kᵀ `[d, s]` as a contiguous copy (s × d values, small next to s²·d).
        mat_mul_add(q, k.t().as_standard_layout().view(), scores.view_mut(), false);
    } else {
        mat_mul_add(q, k.t(), scores.view_mut(), false);
    }
    softmax_rows(scores.as_slice_mut().expect("a standard-layout scratch block"), bias, scale);
}

multiversion! {
    /// Softmax of each `bias.len()`-long row of `scores` after `/ scale + bias`.
    fn softmax_rows(scores: &mut [f32], bias: &[f32], scale: f32) {
        for row in scores.chunks_exact_mut(bias.len()) {
            for (x, b) in row.iter_mut().zip(bias) {
                *x = *x / scale + b;
            }
            let max = max_of(row);
            row.iter_mut().for_each(|x| *x = exp_nonpositive(*x - max));
            let inv = 1.0 / sum_by(row, |x| x);
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// Scaled dot-product attention of one head into `out` `[s, d]`: `softmax(q·kᵀ / √d + bias) · v`
/// (`out` holds zeros) with `scores` `[s, s]` (zeros) as scratch; `bias[j]` is 0 for a token key and -1e9 for padding.
fn head_attention(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    bias: &[f32],
    mut scores: ArrayViewMut2<f32>,
    out: ArrayViewMut2<f32>,
) {
    head_probs(q, k, bias, scores.view_mut());
    mat_mul_add(scores.view(), v, out, false);
}

/// Multi-head self-attention; q, k, v `[b, s, h]`, mask `[b, s]` -> `[b, s, h]`. Each (batch,
/// head) pair is one task with its own `[s, s]` block.
pub(crate) fn attention(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    mask: &NdArrayTensor,
    heads: usize,
) -> NdArrayTensor {
    fn view3<'a>(t: &'a NdArrayTensor, what: &str) -> ndarray::ArrayView3<'a, f32> {
        let NdArrayTensor::F32(t) = t else { unreachable!("checked by the caller") };
        t.view()
            .into_dimensionality::<Ix3>()
            .unwrap_or_else(|_| panic!("mlr-kernels attention: {what} must be [batch, seq, hidden]"))
    }
    let (q, k, v) = (view3(q, "q"), view3(k, "k"), view3(v, "v"));
    let (b, s, h) = q.dim();
    assert!(k.dim() == (b, s, h) && v.dim() == (b, s, h), "mlr-kernels attention: q, k and v must have one shape");
    assert!(heads > 0 && h % heads == 0, "mlr-kernels attention: {heads} heads do not divide the width {h}");
    let NdArrayTensor::F32(mask) = mask else { unreachable!("checked by the caller") };
    let mask = mask.view();
    assert_eq!(mask.shape(), [b, s], "mlr-kernels attention: mask must be [batch, seq]");
    // The reference's additive bias, (1 - mask) · -1e9, per batch row.
    let bias: Vec<f32> = mask.iter().map(|&m| (1.0 - m) * -1e9).collect();
    let d = h / heads;
    // Heads are computed into [b, heads, s, d] (one contiguous block per task), then laid out as
    // [b, s, h]: one copy of the output, small next to the attention itself.
    let mut by_head = written_zeros(b * heads * s * d);
    let task = |p: usize, block: &mut [f32]| {
        let (bi, head) = (p / heads, p % heads);
        let cols = head * d..(head + 1) * d;
        SCORES.with_borrow_mut(|scores| {
            // Zeros: head_attention adds into both blocks. One block per thread, reused: a fresh
            // one per task was a fresh mapping of fresh pages, each faulted twice (see
            // written_zeros) and unmapped again.
            scores.clear();
            scores.resize(s * s, 0.0);
            let scores = ArrayViewMut2::from_shape((s, s), scores.as_mut_slice()).expect("s × s block");
            let out = ArrayViewMut2::from_shape((s, d), block).expect("s × d block");
            head_attention(
                q.slice(s![bi, .., cols.clone()]),
                k.slice(s![bi, .., cols.clone()]),
                v.slice(s![bi, .., cols]),
                &bias[bi * s..(bi + 1) * s],
                scores,
                out,
            );
        });
    };
    for_chunks(&mut by_head, s * d, 1, task);
    let by_head = ndarray::Array4::from_shape_vec((b, heads, s, d), by_head).expect("b × heads × s × d values");
    let out = by_head.permuted_axes([0, 2, 1, 3]).as_standard_layout().into_owned();
    let out = out.into_shape_with_order(IxDyn(&[b, s, h])).expect("b × s × h values").into_shared();
    NdArrayTensor::from(out)
}

/// The rows `[tokens, h]` of one of the ragged attention's inputs.
fn view2<'a>(t: &'a NdArrayTensor, what: &str) -> ArrayView2<'a, f32> {
    let NdArrayTensor::F32(t) = t else { unreachable!("checked by the caller") };
    t.view()
        .into_dimensionality::<Ix2>()
        .unwrap_or_else(|_| panic!("mlr-kernels ragged attention: {what} must be [tokens, hidden]"))
}

/// Checks the ragged attention's shapes; returns `(tokens, hidden, head width)`.
pub(crate) fn ragged_dims(
    q: &ArrayView2<f32>,
    k: &ArrayView2<f32>,
    v: &ArrayView2<f32>,
    lengths: &[usize],
    heads: usize,
) -> (usize, usize, usize) {
    let (tokens, h) = q.dim();
    assert!(
        k.dim() == (tokens, h) && v.dim() == (tokens, h),
        "mlr-kernels ragged attention: q, k and v must have one shape"
    );
    assert!(heads > 0 && h % heads == 0, "mlr-kernels ragged attention: {heads} heads do not divide the width {h}");
    let sum: usize = lengths.iter().sum();
    assert_eq!(sum, tokens, "mlr-kernels ragged attention: the lengths sum to {sum}, q has {tokens} rows");
    (tokens, h, h / heads)
}

/// Multi-head self-attention over texts laid end to end (`attention_ragged`): q, k, v
/// `[tokens, h]` hold the texts' rows one text after another, `lengths` their token counts ->
/// `[tokens, h]`. Each (head, text) pair is one task with its own `[len, len]` score block: no
/// padding is stored, multiplied or masked.
pub(crate) fn attention_ragged(
    q: &NdArrayTensor,
    k: &NdArrayTensor,
    v: &NdArrayTensor,
    lengths: &[usize],
    heads: usize,
) -> NdArrayTensor {
    let (q, k, v) = (view2(q, "q"), view2(k, "k"), view2(v, "v"));
    let (tokens, h, d) = ragged_dims(&q, &k, &v, lengths, heads);
    let spans = spans(lengths);
    let no_padding = vec![0.0f32; lengths.iter().copied().max().unwrap_or(0)];
    // Heads are computed into [heads, tokens, d]: a task's block is its text's rows of its head's
    // plane. Then one copy lays them out as [tokens, h].
    let mut by_head = written_zeros(heads * tokens * d);
    let sizes: Vec<usize> = (0..heads).flat_map(|_| spans.iter().map(|&(_, len)| len * d)).collect();
    for_blocks(&mut by_head, &sizes, |p, block| {
        let (head, (start, len)) = (p / spans.len(), spans[p % spans.len()]);
        if len == 0 {
            return;
        }
        let (rows, cols) = (start..start + len, head * d..(head + 1) * d);
        SCORES.with_borrow_mut(|scores| {
            scores.clear();
            scores.resize(len * len, 0.0);
            let scores = ArrayViewMut2::from_shape((len, len), scores.as_mut_slice()).expect("len × len block");
            let out = ArrayViewMut2::from_shape((len, d), block).expect("len × d block");
            head_attention(
                q.slice(s![rows.clone(), cols.clone()]),
                k.slice(s![rows.clone(), cols.clone()]),
                v.slice(s![rows, cols]),
                &no_padding[..len],
                scores,
                out,
            );
        });
    });
    let by_head = ndarray::Array3::from_shape_vec((heads, tokens, d), by_head).expect("heads × tokens × d values");
    let out = by_head.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    NdArrayTensor::from(out.into_shape_with_order(IxDyn(&[tokens, h])).expect("tokens × h values").into_shared())
}

#[cfg(all(test, mlr_gemm))]
mod packed_weight_tests {
    use burn::backend::NdArray;
    use burn::tensor::{Tensor, TensorData};

    /// `x · w` in f64, `x` `[1, m, k]`, `w` `[k, n]`.
    fn naive(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..k).map(|p| f64::from(x[i * k + p]) * f64::from(w[p * n + j])).sum::<f64>() as f32
            })
            .collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn a_weight_changed_after_packing_is_packed_again() {
        if super::gemm::PackedB::new(ndarray::Array2::<f32>::zeros((1, 1)).view()).is_none() {
            eprintln!("skipped: no packed GEMM on this CPU");
            return;
        }
        let (m, k, n) = (5, 40, 70);
        let device = Default::default();
        let xs: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
        let ws: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
        let x = Tensor::<NdArray<f32>, 3>::from_data(TensorData::new(xs.clone(), [1, m, k]), &device);
        let w = Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(ws.clone(), [k, n]), &device);
        let run =
            |w: Tensor<NdArray<f32>, 2>| crate::linear(x.clone(), w, None, true).into_data().into_vec::<f32>().unwrap();
        let first = run(w.clone());
        assert!(max_diff(&first, &naive(&xs, &ws, m, k, n)) < 1e-5);
        // Again: the cached copy gives the same values.
        assert_eq!(run(w.clone()), first);
        // w + 1 by burn's op, which writes in place into memory nothing else references: the
        // cache references w's, so the sum gets new memory, and the product follows it.
        let w1 = w + 1.0;
        let ws1: Vec<f32> = ws.iter().map(|v| v + 1.0).collect();
        let second = run(w1.clone());
        assert!(max_diff(&second, &naive(&xs, &ws1, m, k, n)) < 1e-5, "a stale packed weight was used");
    }

    #[test]
    fn a_dropped_weight_leaves_the_cache() {
        let device = Default::default();
        let w = Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(vec![0.5f32; 24 * 33], [24, 33]), &device);
        let primitive = w.clone().into_primitive().tensor();
        let Some(packed) = super::packed_weights::get(&primitive) else {
            eprintln!("skipped: no packed GEMM on this CPU");
            return;
        };
        let again = super::packed_weights::get(&primitive).expect("cached");
        assert!(std::sync::Arc::ptr_eq(&packed, &again), "the second lookup packed the weight again");
        let weak = std::sync::Arc::downgrade(&packed);
        drop((packed, again));
        assert!(weak.upgrade().is_some(), "the cache holds the packed copy while the weight lives");
        drop((primitive, w));
        // Any lookup sweeps the entries whose weight only the cache references.
        super::packed_weights::len();
        assert!(weak.upgrade().is_none(), "the packed copy outlived its weight");
    }
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
