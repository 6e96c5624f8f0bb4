//! `c += a · b` for row-major f32 matrices (`a` may also be a transposed view), split over
//! rayon's threads: on x86-64 CPUs with AVX-512 or AVX2 + FMA (picked at run time), and on wasm32
//! built with 128-bit SIMD (one thread).
//!
//! Why not matrixmultiply (what ndarray's `general_mat_mul` calls) everywhere: it copies ("packs")
//! both operands into blocks on every call, hands work to a thread pool of its own, and its x86
//! kernel is AVX2 at most. For the encoder's few-row inputs (one 16-token query is 16 rows against
//! weights of 384 × 1536) packing the weight costs more than multiplying by it, and its pool's
//! hand-off (spinning, then `sched_yield`) was a quarter of the time; inside the attention's
//! per-head tasks, which already run on rayon's threads, its second thread competes with them
//! (see results/bench/README.md). Its wasm kernel keeps an 8 × 8 tile in 16 SIMD registers, as
//! many as the browser's compiler has on x86-64 (one of them its scratch), so it spills.
//!
//! Here the work is cut into tasks of (a block of [`MC`] rows, a strip of `NR` columns), and each
//! task walks `k` in steps of [`KC`]: a `KC × NR` block of `b` (8 to 32 KiB) stays in L1 while
//! every `MR`-row block of the task's rows passes over it; the task's `MC × KC` values of `a` (144
//! KiB) stay in L2 across the strips one thread takes in turn. A task of more than a few row
//! blocks first copies each block of `b` into one contiguous buffer: `b`'s rows are 384 or 1536
//! floats apart in the encoder, a stride at which the block's cache lines share a few L1 sets. The microkernel keeps an
//! `MR × NR` block of `c` in registers: with AVX-512, 12 rows × 32 columns in 24 registers (24
//! FMAs per two loads of `b` and twelve broadcasts of `a`); with AVX2 + FMA, 6 × 16 in 12; with
//! wasm SIMD, 4 × 8 (a multiply and an add per FMA: wasm SIMD has no fused one
//! outside relaxed SIMD, which Safari does not run). The copy of a last strip narrower than `NR`
//! is zero-padded.
//!
//! The kernel reads `a` in place, row-major or transposed (such as the `xᵀ` of a weight gradient
//! `xᵀ · dy`: the `MR` values of a step are then adjacent). Copying `a` into panels of `MR` rows
//! first, as BLIS does, measured no faster here (a training step 1.68 s with, 1.65 s without).
//!
//! A right-hand operand used many times (a weight matrix) can be packed once ([`PackedB`]: every
//! strip's `k × NR` values contiguous) and multiplied by with [`gemm_packed`], which then reads it
//! front to back with no copy per call.
//!
//! [`gemm`] returns `false` on other CPUs and targets (wasm without SIMD, x86 CPUs without AVX2 +
//! FMA, operands whose rows are not contiguous); the caller then uses matrixmultiply. The build
//! script sets `cfg(mlr_gemm)` on the targets with a microkernel.

#![cfg_attr(not(mlr_gemm), allow(dead_code))]

use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows of `c` per task: `MC × KC` values of `a` (144 KiB) stay in L2. A multiple of every `MR`.
pub(crate) const MC: usize = 144;
/// Steps of the inner dimension: a `KC × NR` block of `b` stays in L1.
pub(crate) const KC: usize = 256;
/// A task's `b` blocks are copied when it has more than this many `MR`-row blocks.
const PACK_MIN_BLOCKS: usize = 4;
/// The largest `MR × NR` of the kernels (the scratch tile).
const TILE: usize = 12 * 32;

/// The instruction sets the GEMM has a microkernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX2 + FMA: 6 × 16 tiles in 12 of the 16 YMM registers.
    Avx2,
    /// AVX-512F: 12 × 32 tiles in 24 of the 32 ZMM registers.
    Avx512,
    /// wasm32 128-bit SIMD: 4 × 8 tiles, in 8 accumulators, two values of `b`, a broadcast of
    /// `a` and a product (V8 allocates 15 SIMD registers on x86-64; 6 × 8 would need 16, and
    /// measured slower, as did 5 × 8).
    Simd128,
}

impl Isa {
    /// `(MR, NR)`: the rows and columns of one microkernel tile.
    pub(crate) fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx2 => (6, 16),
            Isa::Avx512 => (12, 32),
            Isa::Simd128 => (4, 8),
        }
    }

    /// Whether this CPU runs it (detected at run time on x86-64; wasm SIMD is a compile-time
    /// feature).
    pub(crate) fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Isa::Simd128 => cfg!(all(mlr_gemm, target_arch = "wasm32", target_feature = "simd128")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The widest instruction set this CPU has, if any, or the one `MLR_CPU_ISA` names
    /// (`avx512`, `avx2` or `none`, for tests and benchmarks of the narrower paths on a wider
    /// CPU; a set this CPU lacks, or an unknown name, is ignored with a warning).
    pub(crate) fn best() -> Option<Isa> {
        static BEST: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let widest = [Isa::Avx512, Isa::Avx2, Isa::Simd128].into_iter().find(|isa| isa.supported());
            match std::env::var("MLR_CPU_ISA").ok().as_deref() {
                None | Some("") => widest,
                Some("none") => None,
                Some(name) => match [Isa::Avx512, Isa::Avx2].into_iter().find(|isa| isa.name() == name) {
                    Some(isa) if isa.supported() => Some(isa),
                    _ => {
                        eprintln!("mlr: MLR_CPU_ISA={name} is not an instruction set this CPU runs (avx512, avx2, none); using {:?}", widest);
                        widest
                    }
                },
            }
        })
    }

    /// The name `MLR_CPU_ISA` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Simd128 => "simd128",
        }
    }
}

/// Whether this CPU runs [`gemm`].
pub(crate) fn available() -> bool {
    Isa::best().is_some()
}

/// `c += a · b` with `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`; `b` and `c` with contiguous rows
/// (any row stride), `a` with contiguous rows or contiguous columns (a transposed view, such as
/// the `xᵀ` of a weight gradient `xᵀ · dy`, read in place), with the widest kernel this CPU has.
/// Runs on rayon's threads if `threads` (and the product is big enough to be worth it; wasm without
/// shared memory has one thread). Returns `false`, leaving `c` unchanged, when this CPU or these layouts have no
/// fast path.
pub(crate) fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>, threads: bool) -> bool {
    let isa = Isa::best();
    #[cfg(not(target_arch = "wasm32"))]
    if isa == Some(Isa::Avx2) && a_layout(&a).is_some_and(|(_, a_t)| a_t) && a.ncols() > 1 {
        return library::gemm(a, b, c, threads);
    }
    isa.is_some_and(|isa| gemm_with(isa, a, b, c, threads))
}

/// Rows of activations from which [`gemm_many_rows`] hands a product with a weight to the `gemm`
/// crate. At 1,141 rows (a training step's ragged pass over 32 texts) the crate ran the forward
/// products and the input gradients 1.05–1.22× faster than a packed weight here; at 512 and 768
/// rows the two were within each other's noise (0.94–1.07), and there the crate also saves
/// packing a weight that changes at every training step (packing was 4.7 % of a step's samples);
/// at 256 rows and below (queries at inference) the packed weight is as fast or faster
/// (results/bench/gemm.md). Native only, as the crate is.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const LIBRARY_MIN_ROWS: usize = 512;

/// `c += a · w` for a product of activations `a` `[rows, k]` with a weight `w` `[k, n]` (any
/// strides, such as the transposed weight of an input gradient `dy · wᵀ`, read in place) by the
/// `gemm` crate, where that is the faster path: natively, on CPUs whose widest kernel here is
/// AVX2 + FMA, with at least [`LIBRARY_MIN_ROWS`] rows. Returns `false`, leaving `c` unchanged,
/// elsewhere; the caller then multiplies by the packed weight ([`gemm_packed`]).
pub(crate) fn gemm_many_rows(a: ArrayView2<f32>, w: ArrayView2<f32>, c: ArrayViewMut2<f32>, threads: bool) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    if Isa::best() == Some(Isa::Avx2) && a.nrows() >= LIBRARY_MIN_ROWS {
        return library::gemm(a, w, c, threads);
    }
    let _ = (a, w, c, threads);
    false
}

/// The products handed to the `gemm` crate (sarah-ek's, which candle runs), natively, on CPUs
/// whose widest kernel here is AVX2 + FMA: by [`gemm`], those with a transposed `a`, which in the
/// encoder are the weight gradients `xᵀ · dy` (`[d_in, tokens] · [tokens, d_out]`); by
/// [`gemm_many_rows`], the products with a weight over many rows. That crate copies both operands
/// into cache-sized panels (BLIS's scheme) and measured 9–36 % faster than this file's kernel on
/// the weight gradients, whose `a` is read here with a stride of 384 or 1536 floats per step. The
/// products with a packed weight over fewer rows stay here, and with AVX-512 everything does
/// (this file has the wider kernel; the crate's needs a feature that is not built). The crate runs
/// on rayon's pool, as the rest of the CPU path does.
#[cfg(not(target_arch = "wasm32"))]
mod library {
    use ndarray::{ArrayView2, ArrayViewMut2};

    /// `c += a · b` for any strides; always `true`.
    pub(super) fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, threads: bool) -> bool {
        let (m, k) = a.dim();
        let n = b.ncols();
        assert_eq!(b.nrows(), k, "mlr-kernels gemm: a has {k} columns, b {} rows", b.nrows());
        assert_eq!(c.dim(), (m, n), "mlr-kernels gemm: c must be [{m}, {n}]");
        if m == 0 || n == 0 || k == 0 {
            return true;
        }
        let parallelism = if threads && rayon::current_num_threads() > 1 {
            gemm::Parallelism::Rayon(rayon::current_num_threads())
        } else {
            gemm::Parallelism::None
        };
        let [a_rs, a_cs] = [a.strides()[0], a.strides()[1]];
        let [b_rs, b_cs] = [b.strides()[0], b.strides()[1]];
        let [c_rs, c_cs] = [c.strides()[0], c.strides()[1]];
        // SAFETY: the pointers and strides are those of live ndarray views of the stated shapes,
        // `c` is borrowed mutably for the call and overlaps neither operand (a mutable view
        // cannot alias shared ones). `read_dst` with alpha 1 and beta 1 is `c = c + a · b`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                c_cs,
                c_rs,
                true,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
        true
    }
}

/// [`gemm`] with the kernel of `isa`, which this CPU must support (else `false`).
pub(crate) fn gemm_with(
    isa: Isa,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<f32>,
    threads: bool,
) -> bool {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    assert_eq!(k, kb, "mlr-kernels gemm: a has {k} columns, b {kb} rows");
    assert_eq!(c.dim(), (m, n), "mlr-kernels gemm: c must be [{m}, {n}]");
    if !isa.supported() {
        return false;
    }
    if m == 0 || n == 0 || k == 0 {
        // Nothing to add (and empty arrays may have zero strides).
        return true;
    }
    let (Some((lda, a_t)), Some(ldb), Some(ldc)) = (a_layout(&a), row_stride(&b), row_stride(&c.view())) else {
        return false;
    };
    #[cfg(mlr_gemm)]
    {
        let mut c = c;
        let (mr, nr) = isa.tile();
        let problem = Problem {
            a: a.as_ptr(),
            lda,
            a_t,
            b: B::Strided(b.as_ptr(), ldb),
            c: SyncPtr(c.as_mut_ptr()),
            ldc,
            m,
            n,
            k,
            mr,
            nr,
            tile: tile_of(isa),
        };
        problem.run(threads);
        true
    }
    #[cfg(not(mlr_gemm))]
    {
        let _ = (lda, a_t, ldb, ldc, threads);
        unreachable!("no instruction set is supported on this target")
    }
}

/// A `[k, n]` right-hand operand copied once into the order the microkernel reads it: strips of
/// `NR` columns, each strip's `k × NR` values contiguous (the last strip zero-padded), so that a
/// product streams it front to back. A weight matrix packed once, at its first use, is read this way on every
/// call: its rows are 384 or 1536 floats apart, a stride the hardware prefetchers do not follow
/// across pages, so with few input rows the in-place reads waited on memory.
pub(crate) struct PackedB {
    isa: Isa,
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// `b` packed for the widest kernel this CPU has; `None` where [`gemm`] has none.
    pub(crate) fn new(b: ArrayView2<f32>) -> Option<Self> {
        Isa::best().map(|isa| Self::with_isa(isa, b))
    }

    /// `b` packed for the kernel of `isa` (which [`gemm_packed`] then runs; the CPU must have it).
    pub(crate) fn with_isa(isa: Isa, b: ArrayView2<f32>) -> Self {
        let (k, n) = b.dim();
        let nr = isa.tile().1;
        let strips = n.div_ceil(nr);
        let mut data = vec![0.0f32; strips * k * nr];
        for (s, strip) in data.chunks_exact_mut((k * nr).max(1)).enumerate().take(strips) {
            let (j0, j1) = (s * nr, ((s + 1) * nr).min(n));
            for (p, row) in strip.chunks_exact_mut(nr).enumerate() {
                for (dst, src) in row.iter_mut().zip(b.slice(ndarray::s![p, j0..j1])) {
                    *dst = *src;
                }
            }
        }
        PackedB { isa, k, n, data }
    }

    /// Values held, the last strip's padding included.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// `[k, n]`.
    #[cfg(test)]
    pub(crate) fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// `c += a · b` for a packed `b` (see [`gemm`]); `false`, leaving `c` unchanged, when `a` has
/// neither contiguous rows nor contiguous columns or `c` has no contiguous rows.
pub(crate) fn gemm_packed(a: ArrayView2<f32>, b: &PackedB, c: ArrayViewMut2<f32>, threads: bool) -> bool {
    let (m, k) = a.dim();
    assert_eq!(k, b.k, "mlr-kernels gemm: a has {k} columns, b {} rows", b.k);
    assert_eq!(c.dim(), (m, b.n), "mlr-kernels gemm: c must be [{m}, {}]", b.n);
    if !b.isa.supported() {
        return false;
    }
    if m == 0 || b.n == 0 || k == 0 {
        return true;
    }
    let (Some((lda, a_t)), Some(ldc)) = (a_layout(&a), row_stride(&c.view())) else {
        return false;
    };
    #[cfg(mlr_gemm)]
    {
        let mut c = c;
        let (mr, nr) = b.isa.tile();
        let problem = Problem {
            a: a.as_ptr(),
            lda,
            a_t,
            b: B::Packed(b.data.as_ptr()),
            c: SyncPtr(c.as_mut_ptr()),
            ldc,
            m,
            n: b.n,
            k,
            mr,
            nr,
            tile: tile_of(b.isa),
        };
        problem.run(threads);
        true
    }
    #[cfg(not(mlr_gemm))]
    {
        let _ = (lda, a_t, ldc, threads);
        unreachable!("PackedB::new has no instruction set on this target")
    }
}

/// The microkernel of `isa` (one this target has: `supported` was checked).
#[cfg(mlr_gemm)]
fn tile_of(isa: Isa) -> Tile {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::tile as Tile,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::tile as Tile,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => simd128::tile as Tile,
        #[allow(unreachable_patterns)]
        _ => unreachable!("{isa:?} has no microkernel on this target"),
    }
}

/// The row stride of a matrix whose rows are contiguous (column stride 1, or a single column),
/// `None` otherwise (a transposed view, negative strides).
fn row_stride(x: &ArrayView2<f32>) -> Option<usize> {
    let (rows, cols) = x.dim();
    let [rs, cs] = [x.strides()[0], x.strides()[1]];
    if cols > 1 && cs != 1 {
        return None;
    }
    if rows <= 1 {
        return Some(cols.max(1));
    }
    usize::try_from(rs).ok().filter(|&rs| rs >= cols)
}

/// How the microkernel reads `a`: `(stride, false)` for contiguous rows `stride` apart,
/// `(stride, true)` for contiguous columns `stride` apart (a transposed view); `None` otherwise.
fn a_layout(a: &ArrayView2<f32>) -> Option<(usize, bool)> {
    if let Some(lda) = row_stride(a) {
        return Some((lda, false));
    }
    row_stride(&a.t()).map(|lda| (lda, true))
}

/// A pointer to `c` that tasks on several threads write through, each to its own tiles.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: tasks write disjoint (row block, column strip) tiles of `c`, and `gemm` holds the only
// mutable borrow of `c` until every task has finished.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

/// A microkernel: `out[r · NR + j] = Σ_p a[r, p] · b[p, j]` for `rows ≤ MR` rows of `a` (row
/// stride `lda`, or column stride `lda` if `a_t`), `kc` steps, and `NR` columns of `b` (row stride
/// `ldb`).
#[cfg(mlr_gemm)]
type Tile = unsafe fn(
    rows: usize,
    kc: usize,
    a: *const f32,
    lda: usize,
    a_t: bool,
    b: *const f32,
    ldb: usize,
    out: &mut [f32; TILE],
);

/// Where `b` is: row-major with a row stride, or packed ([`PackedB`]'s layout for this `NR`).
#[cfg(mlr_gemm)]
#[derive(Clone, Copy)]
enum B {
    Strided(*const f32, usize),
    Packed(*const f32),
}

/// One product `c += a · b`, as raw pointers with strides (checked by [`gemm`]): `b` and `c`
/// row-major, `a` row-major or, if `a_t`, column-major; and the microkernel with its tile.
#[cfg(mlr_gemm)]
struct Problem {
    a: *const f32,
    lda: usize,
    a_t: bool,
    b: B,
    c: SyncPtr,
    ldc: usize,
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    nr: usize,
    tile: Tile,
}

// SAFETY: `a` and `b` are only read, during `gemm`'s borrow of them; `c` as above.
#[cfg(mlr_gemm)]
unsafe impl Sync for Problem {}

#[cfg(mlr_gemm)]
impl Problem {
    fn run(&self, threads: bool) {
        let strips = self.n.div_ceil(self.nr);
        let tasks = self.m.div_ceil(MC) * strips;
        // Below ~1 MFLOP a second thread costs more than it saves.
        #[cfg(mlr_threads)]
        if threads && 2 * self.m * self.n * self.k >= 1 << 20 && tasks > 1 {
            use rayon::prelude::*;
            // At least ~256 kFLOP per rayon job, so that few-row products are not cut finer
            // than the hand-off is worth.
            let per_task = 2 * self.m.min(MC) * self.nr * self.k;
            let min_len = (1usize << 18).div_ceil(per_task.max(1)).max(1);
            (0..tasks).into_par_iter().with_min_len(min_len).for_each(|t| self.task(t / strips, t % strips));
            return;
        }
        // One thread (wasm without shared memory has no other).
        let _ = threads;
        (0..tasks).for_each(|t| self.task(t / strips, t % strips));
    }

    /// The tile of rows `[chunk · MC, …)` × columns `[strip · NR, …)` of `c`.
    fn task(&self, chunk: usize, strip: usize) {
        let (mr, nr) = (self.mr, self.nr);
        let (r0, r1) = (chunk * MC, ((chunk + 1) * MC).min(self.m));
        let (j0, j1) = (strip * nr, ((strip + 1) * nr).min(self.n));
        let width = j1 - j0;
        // With few rows the copy costs more than it saves (one 16-token text: 13.8 ms packed,
        // 10.5 ms in place; 128 rows: 46.8 ms packed, 51.2 in place), and b is read in place.
        let pack = matches!(self.b, B::Strided(..)) && (width < nr || r1 - r0 > PACK_MIN_BLOCKS * mr);
        let mut packed = vec![0.0f32; if pack { KC * nr } else { 0 }];
        let mut out = [0.0f32; TILE];
        for p0 in (0..self.k).step_by(KC) {
            let kc = KC.min(self.k - p0);
            let (b, ldb) = match self.b {
                // SAFETY: strip < ⌈n / NR⌉ strips of k × NR values; row p0 < k.
                B::Packed(b) => (unsafe { b.add(strip * self.k * nr + p0 * nr) }, nr),
                B::Strided(b, ldb) if pack => {
                    for (p, row) in packed.chunks_exact_mut(nr).take(kc).enumerate() {
                        // SAFETY: row p0 + p < k, columns j0..j1 ≤ n of b.
                        let src = unsafe { std::slice::from_raw_parts(b.add((p0 + p) * ldb + j0), width) };
                        row[..width].copy_from_slice(src);
                    }
                    (packed.as_ptr(), nr)
                }
                // SAFETY: row p0 < k, columns j0..j0 + NR ≤ n of b.
                B::Strided(b, ldb) => (unsafe { b.add(p0 * ldb + j0) }, ldb),
            };
            for i in (r0..r1).step_by(mr) {
                let rows = mr.min(r1 - i);
                let at = if self.a_t { p0 * self.lda + i } else { i * self.lda + p0 };
                // SAFETY: the CPU supports the kernel (checked by gemm_with); rows i..i + rows < m
                // of a with columns p0..p0 + kc ≤ k; b covers kc rows of NR values.
                unsafe { (self.tile)(rows, kc, self.a.add(at), self.lda, self.a_t, b, ldb, &mut out) };
                for (r, acc) in out.chunks_exact(nr).take(rows).enumerate() {
                    // SAFETY: row i + r < m, columns j0..j1 < n of c; no other task writes this tile.
                    let dst = unsafe { std::slice::from_raw_parts_mut(self.c.0.add((i + r) * self.ldc + j0), width) };
                    dst.iter_mut().zip(acc).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

/// One microkernel per instruction set: `R` rows (a const, so that the accumulators are
/// registers) × `LANES · VECS` columns, and `tile`, which picks `R` for a tile's row count.
#[cfg(mlr_gemm)]
macro_rules! microkernel {
    ($name:ident, $feature:literal, $imports:item, $vec:ty, $lanes:literal, $zero:ident, $load:ident, $store:ident, $splat:ident, $fma:ident, $mr:literal: $($r:literal)+) => {
        mod $name {
            use super::TILE;
            #[allow(clippy::wildcard_imports)]
            $imports

            const NR: usize = 2 * $lanes;

            /// `out[r · NR + j] = Σ_p a[r, p] · b[p, j]` for `R` rows, `k` steps; `a[r, p]` at
            /// `a + r · lda + p`, or at `a + p · lda + r` if `T` (a transposed view).
            ///
            /// # Safety
            /// The CPU has the target feature; `a` covers `R` rows of `k` values (row stride
            /// `lda`, or column stride `lda` if `T`), `b` covers `k` rows of `NR` values (row
            /// stride `ldb`).
            #[target_feature(enable = $feature)]
            unsafe fn kernel<const R: usize, const T: bool>(k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, out: &mut [f32; TILE]) {
                let mut lo: [$vec; R] = [$zero(); R];
                let mut hi: [$vec; R] = [$zero(); R];
                for p in 0..k {
                    // SAFETY: as the function's contract.
                    unsafe {
                        let row = b.add(p * ldb);
                        let (b0, b1) = ($load(row), $load(row.add($lanes)));
                        for r in 0..R {
                            let x = $splat(*a.add(if T { p * lda + r } else { r * lda + p }));
                            lo[r] = $fma(x, b0, lo[r]);
                            hi[r] = $fma(x, b1, hi[r]);
                        }
                    }
                }
                for r in 0..R {
                    // SAFETY: R × NR ≤ TILE values.
                    unsafe {
                        $store(out.as_mut_ptr().add(r * NR), lo[r]);
                        $store(out.as_mut_ptr().add(r * NR + $lanes), hi[r]);
                    }
                }
            }

            /// The kernel for `rows` (1 ..= MR) rows.
            ///
            /// # Safety
            /// As [`kernel`], for `rows` rows.
            #[allow(clippy::too_many_arguments, reason = "the raw operands of a hot microkernel, called through a fn pointer")]
            pub(super) unsafe fn tile(rows: usize, k: usize, a: *const f32, lda: usize, a_t: bool, b: *const f32, ldb: usize, out: &mut [f32; TILE]) {
                debug_assert!((1..=$mr).contains(&rows));
                // SAFETY: as the function's contract.
                unsafe {
                    match (rows, a_t) {
                        $(($r, false) => kernel::<$r, false>(k, a, lda, b, ldb, out),)+
                        $(($r, true) => kernel::<$r, true>(k, a, lda, b, ldb, out),)+
                        (_, false) => kernel::<$mr, false>(k, a, lda, b, ldb, out),
                        (_, true) => kernel::<$mr, true>(k, a, lda, b, ldb, out),
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
microkernel!(avx2, "avx2,fma", use std::arch::x86_64::*;, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, 6: 1 2 3 4 5);
#[cfg(target_arch = "x86_64")]
microkernel!(avx512, "avx512f", use std::arch::x86_64::*;, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, 12: 1 2 3 4 5 6 7 8 9 10 11);
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
microkernel!(simd128, "simd128", use super::simd128_ops::*;, v128, 4, zero, loadu, storeu, splat, mul_add, 4: 1 2 3);

/// wasm SIMD in the x86 intrinsics' shapes, for [`microkernel!`].
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128_ops {
    pub(super) use core::arch::wasm32::v128;
    use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128_load, v128_store};

    #[inline(always)]
    pub(super) fn zero() -> v128 {
        f32x4_splat(0.0)
    }

    /// # Safety
    /// `p` covers 4 values (any alignment).
    #[inline(always)]
    pub(super) unsafe fn loadu(p: *const f32) -> v128 {
        // SAFETY: as the function's contract; v128_load reads unaligned.
        unsafe { v128_load(p.cast()) }
    }

    /// # Safety
    /// `p` covers 4 values (any alignment).
    #[inline(always)]
    pub(super) unsafe fn storeu(p: *mut f32, v: v128) {
        // SAFETY: as the function's contract; v128_store writes unaligned.
        unsafe { v128_store(p.cast(), v) }
    }

    #[inline(always)]
    pub(super) fn splat(x: f32) -> v128 {
        f32x4_splat(x)
    }

    /// `a · b + c`, rounded after the product and after the sum (wasm SIMD has no fused
    /// multiply-add outside relaxed SIMD).
    #[inline(always)]
    pub(super) fn mul_add(a: v128, b: v128, c: v128) -> v128 {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

#[cfg(test)]
mod tests {
    use super::{gemm_packed, gemm_with, Isa, PackedB, KC, MC};
    use ndarray::{s, Array2};

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `c + a · b` in f64, one dot product at a time.
    fn naive(a: &Array2<f32>, b: &Array2<f32>, c: &Array2<f32>) -> Array2<f32> {
        Array2::from_shape_fn(c.dim(), |(i, j)| {
            let dot: f64 = (0..a.ncols()).map(|p| f64::from(a[[i, p]]) * f64::from(b[[p, j]])).sum();
            (f64::from(c[[i, j]]) + dot) as f32
        })
    }

    /// The instruction sets this CPU runs; the tests say so when there is none.
    fn supported() -> Vec<Isa> {
        let isas: Vec<Isa> = [Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.supported()).collect();
        if isas.is_empty() {
            eprintln!("skipped: this CPU has neither AVX2 + FMA nor AVX-512, so gemm() always declines (the caller uses matrixmultiply)");
        }
        isas
    }

    #[test]
    fn matches_a_naive_product_on_every_edge_shape() {
        for isa in supported() {
            let (mr, nr) = isa.tile();
            // Row counts around MR and MC, column counts around NR, k around KC; on the
            // threaded path too.
            let ms = [1, 2, mr - 1, mr, mr + 1, 16, MC - 1, MC + 5, 2 * MC + 7];
            let ns = [1, 3, nr - 1, nr, nr + 1, 2 * nr + 5, 384];
            let ks = [0, 1, 7, 32, 384, KC + 3];
            let mut worst = 0.0f32;
            let shapes = ms.iter().flat_map(|&m| ns.iter().flat_map(move |&n| ks.map(|k| (m, n, k))));
            for (case, (m, n, k)) in shapes.enumerate() {
                let seed = case as u64;
                let a = Array2::from_shape_vec((m, k), values(m * k, seed)).unwrap();
                let b = Array2::from_shape_vec((k, n), values(k * n, seed + 1000)).unwrap();
                let c0 = Array2::from_shape_vec((m, n), values(m * n, seed + 2000)).unwrap();
                let expected = naive(&a, &b, &c0);
                let packed = PackedB::with_isa(isa, b.view());
                assert_eq!(packed.dim(), (k, n));
                // a also as a transposed view (contiguous columns), read in place.
                let a_columns = a.t().as_standard_layout().into_owned();
                let settings = [false, true].into_iter().flat_map(|t| [false, true].map(|threads| (threads, t)));
                for ((threads, transposed), prepacked) in settings.flat_map(|s| [(s, false), (s, true)]) {
                    let a = if transposed { a_columns.t() } else { a.view() };
                    let mut c = c0.clone();
                    let done = if prepacked {
                        gemm_packed(a, &packed, c.view_mut(), threads)
                    } else {
                        gemm_with(isa, a, b.view(), c.view_mut(), threads)
                    };
                    assert!(done, "{isa:?} declined {m}×{k}·{k}×{n} (a transposed: {transposed})");
                    let err = (&c - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
                    // Each value is c plus a sum of k products of values below 1 in magnitude.
                    assert!(
                        err <= 1e-6 * (k as f32).max(8.0),
                        "{isa:?} {m}×{k}·{k}×{n} (threads {threads}, prepacked {prepacked}, a transposed {transposed}): max error {err}"
                    );
                    worst = worst.max(err);
                }
            }
            eprintln!("gemm ({isa:?}) vs the f64 naive product: max abs error {worst:e}");
        }
    }

    /// The `gemm` crate's path (weight gradients on AVX2 CPUs), called directly so that it runs
    /// on every x86-64 CPU, and through [`gemm`], whichever path this CPU takes.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_library_path_matches_a_naive_product_on_transposed_and_strided_views() {
        let mut worst = 0.0f32;
        for (case, &(m, k, n)) in
            [(1, 1, 1), (7, 1, 5), (384, 3, 17), (19, 300, 37), (64, 1141, 96), (200, 64, 1)].iter().enumerate()
        {
            let seed = 10 * case as u64;
            // a as the xᵀ of a weight gradient: a [k, m] matrix read transposed.
            let x = Array2::from_shape_vec((k, m), values(k * m, seed)).unwrap();
            let wide_b = Array2::from_shape_vec((k, 2 * n), values(k * 2 * n, seed + 1)).unwrap();
            let b = wide_b.slice(s![.., n..]);
            let c0 = Array2::from_shape_vec((m, n), values(m * n, seed + 2)).unwrap();
            let expected = naive(&x.t().to_owned(), &b.to_owned(), &c0);
            for threads in [false, true] {
                for dispatch in [false, true] {
                    let mut wide_c = Array2::<f32>::zeros((m, n + 3));
                    wide_c.slice_mut(s![.., ..n]).assign(&c0);
                    let done = if dispatch {
                        super::gemm(x.t(), b, wide_c.slice_mut(s![.., ..n]), threads)
                    } else {
                        super::library::gemm(x.t(), b, wide_c.slice_mut(s![.., ..n]), threads)
                    };
                    if !done {
                        assert!(dispatch && !super::available(), "{m}×{k}·{k}×{n} declined");
                        continue;
                    }
                    let err = (&wide_c.slice(s![.., ..n]) - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
                    assert!(
                        err <= 1e-6 * (k as f32).max(8.0),
                        "{m}×{k}·{k}×{n} (threads {threads}, through gemm() {dispatch}): max error {err}"
                    );
                    assert!(wide_c.slice(s![.., n..]).iter().all(|&v| v == 0.0), "wrote outside c's view");
                    worst = worst.max(err);
                }
            }
        }
        eprintln!("gemm crate path vs the f64 naive product: max abs error {worst:e}");
    }

    /// [`gemm_many_rows`]: the crate's product with a weight read transposed in place (an input
    /// gradient `dy · wᵀ`) from [`LIBRARY_MIN_ROWS`] rows on AVX2 CPUs; below that, or on other
    /// CPUs, it declines and leaves `c` as it was.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn many_rows_go_to_the_library_with_a_transposed_weight_and_fewer_rows_are_declined() {
        use super::{gemm_many_rows, LIBRARY_MIN_ROWS};
        let (k, n) = (40, 24);
        let w_stored = Array2::from_shape_vec((n, k), values(n * k, 7)).unwrap();
        let w = w_stored.t();
        for m in [LIBRARY_MIN_ROWS - 1, LIBRARY_MIN_ROWS, LIBRARY_MIN_ROWS + 13] {
            let a = Array2::from_shape_vec((m, k), values(m * k, m as u64)).unwrap();
            let c0 = Array2::from_shape_vec((m, n), values(m * n, 3)).unwrap();
            let expected = naive(&a, &w.to_owned(), &c0);
            for threads in [false, true] {
                let mut c = c0.clone();
                let done = gemm_many_rows(a.view(), w, c.view_mut(), threads);
                let expected_path = Isa::best() == Some(Isa::Avx2) && m >= LIBRARY_MIN_ROWS;
                assert_eq!(done, expected_path, "{m} rows (best ISA {:?})", Isa::best());
                if !done {
                    assert_eq!(c, c0, "a declined product changed c");
                    continue;
                }
                let err = (&c - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
                assert!(err <= 1e-6 * (k as f32).max(8.0), "{m} rows (threads {threads}): max error {err}");
            }
        }
    }

    #[test]
    fn reads_strided_and_transposed_views_of_a_and_declines_a_transposed_b() {
        for isa in supported() {
            // Views into wider matrices (row stride > columns), as the attention's per-head slices are.
            let (m, k, n) = (19, 24, 37);
            let wide_a = Array2::from_shape_vec((m, 3 * k), values(m * 3 * k, 1)).unwrap();
            let wide_b = Array2::from_shape_vec((k, 2 * n), values(k * 2 * n, 2)).unwrap();
            let a = wide_a.slice(s![.., k..2 * k]);
            let b = wide_b.slice(s![.., n..]);
            let mut wide_c = Array2::<f32>::zeros((m, 2 * n));
            assert!(gemm_with(isa, a, b, wide_c.slice_mut(s![.., ..n]), true));
            let expected = naive(&a.to_owned(), &b.to_owned(), &Array2::zeros((m, n)));
            let err = (&wide_c.slice(s![.., ..n]) - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
            assert!(err < 1e-5, "{isa:?} strided views: max error {err}");
            assert!(wide_c.slice(s![.., n..]).iter().all(|&v| v == 0.0), "{isa:?} wrote outside c's view");
            // A transposed a (contiguous columns, as xᵀ of a weight gradient) is read in place, by
            // every kernel height (m = 19 leaves a last block of 1 row for 6-row tiles).
            let wide_at = Array2::from_shape_vec((k, 2 * m), values(k * 2 * m, 4)).unwrap();
            let at = wide_at.slice(s![.., m..]);
            let mut c = Array2::<f32>::zeros((m, n));
            assert!(gemm_with(isa, at.t(), b, c.view_mut(), true));
            let expected = naive(&at.t().to_owned(), &b.to_owned(), &Array2::zeros((m, n)));
            let err = (&c - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
            assert!(err < 1e-5, "{isa:?} transposed a: max error {err}");
            let packed = PackedB::with_isa(isa, b);
            let mut c = Array2::<f32>::zeros((m, n));
            assert!(gemm_packed(at.t(), &packed, c.view_mut(), false));
            let err = (&c - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
            assert!(err < 1e-5, "{isa:?} transposed a, packed b: max error {err}");
            // A transposed b has no contiguous rows: declined, c untouched.
            let bt = Array2::from_shape_vec((n, k), values(n * k, 3)).unwrap();
            let mut c = Array2::<f32>::zeros((m, n));
            assert!(!gemm_with(isa, a, bt.t(), c.view_mut(), false));
            assert!(c.iter().all(|&v| v == 0.0));
            // A packed b copies from any layout, the transposed one included; a strided a is read in place.
            let packed = PackedB::with_isa(isa, bt.t());
            assert!(gemm_packed(a, &packed, c.view_mut(), true));
            let expected = naive(&a.to_owned(), &bt.t().to_owned(), &Array2::zeros((m, n)));
            let err = (&c - &expected).iter().fold(0.0f32, |acc, d| acc.max(d.abs()));
            assert!(err < 1e-5, "{isa:?} packed from a transposed view: max error {err}");
        }
    }
}
