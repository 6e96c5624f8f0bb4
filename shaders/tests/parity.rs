//! Every WGSL kernel against its plain-burn reference, natively on wgpu (Mesa lavapipe on a
//! machine without a GPU): the same inputs through the fused path and the reference on the same
//! device, and the reference on the CPU backend as a third opinion. The CPU fast path of
//! `linear` is checked against burn's linear op on the CPU, and the other CPU fast paths against
//! their references there.

use burn::backend::wgpu::WgpuDevice;
use burn::backend::{NdArray, Wgpu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use mlr_kernels::{adamw, attention, bias_gelu, cosine_top_k, layer_norm, linear, mean_pool, AdamWStep};

type G = Wgpu;
type C = NdArray<f32>;

mod common;
use common::values;

fn t<B: Backend, const D: usize>(v: &[f32], shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

fn read<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().convert::<f32>().into_vec().unwrap()
}

fn read_int<B: Backend, const D: usize>(x: Tensor<B, D, Int>) -> Vec<i64> {
    x.into_data().convert::<i64>().into_vec().unwrap()
}

/// Largest |a - b|, failing on NaN or a length mismatch.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert!(x.is_finite() && y.is_finite(), "non-finite value: {x} vs {y}");
            (x - y).abs()
        })
        .fold(0.0, f32::max)
}

fn gpu() -> WgpuDevice {
    WgpuDevice::default()
}

/// A 0/1 mask whose row r has `lens[r]` leading ones.
fn mask(lens: &[usize], seq: usize) -> Vec<f32> {
    lens.iter().flat_map(|&l| (0..seq).map(move |j| if j < l { 1.0 } else { 0.0 })).collect()
}

#[test]
fn bias_gelu_matches_reference() {
    let (g, c) = (gpu(), Default::default());
    for (rows, width, scale) in [(1, 1, 1.0), (3, 1536, 4.0), (257, 37, 8.0), (64 * 64, 1536, 3.0)] {
        let x = values(rows * width, 1, scale);
        let b = values(width, 2, 1.0);
        let fused = read(bias_gelu::<G, 2>(t(&x, [rows, width], &g), t(&b, [width], &g), true));
        let plain = read(bias_gelu::<G, 2>(t(&x, [rows, width], &g), t(&b, [width], &g), false));
        let cpu = read(bias_gelu::<C, 2>(t(&x, [rows, width], &c), t(&b, [width], &c), false));
        let (d_plain, d_cpu) = (max_diff(&fused, &plain), max_diff(&fused, &cpu));
        println!("bias_gelu [{rows}, {width}]: max |fused - plain| {d_plain:.2e}, vs cpu {d_cpu:.2e}");
        assert!(d_plain < 2e-6 * scale && d_cpu < 2e-6 * scale);
    }
}

#[test]
fn layer_norm_matches_reference() {
    let (g, c) = (gpu(), Default::default());
    // 70,000 rows need two dispatch dimensions.
    for (rows, width, residual) in [(1, 1, true), (5, 384, true), (5, 384, false), (33, 1000, true), (70_000, 8, true)]
    {
        let x = values(rows * width, 3, 2.0);
        let r = values(rows * width, 4, 2.0);
        let [bias, gamma, beta] = [5, 6, 7].map(|s| values(width, s, 1.0));
        let run = |fused: bool| {
            read(layer_norm::<G, 2>(
                t(&x, [rows, width], &g),
                t(&bias, [width], &g),
                residual.then(|| t(&r, [rows, width], &g)),
                t(&gamma, [width], &g),
                t(&beta, [width], &g),
                1e-12,
                fused,
            ))
        };
        let cpu = read(layer_norm::<C, 2>(
            t(&x, [rows, width], &c),
            t(&bias, [width], &c),
            residual.then(|| t(&r, [rows, width], &c)),
            t(&gamma, [width], &c),
            t(&beta, [width], &c),
            1e-12,
            false,
        ));
        let (fused, plain) = (run(true), run(false));
        let (d_plain, d_cpu) = (max_diff(&fused, &plain), max_diff(&fused, &cpu));
        println!(
            "layer_norm [{rows}, {width}] residual={residual}: max diff vs plain {d_plain:.2e}, vs cpu {d_cpu:.2e}"
        );
        // A one-column row normalises to exactly beta in every path.
        assert!(d_plain < 1e-5 && d_cpu < 1e-5);
    }
}

#[test]
fn attention_matches_reference() {
    let (g, c) = (gpu(), Default::default());
    // (batch, seq, heads, head width, token counts): e5-small's 12 × 32 heads, padding, one-token
    // rows, a row of padding only, sizes that are not multiples of the workgroup.
    let cases: Vec<(usize, usize, usize, usize, Vec<usize>)> = vec![
        (1, 1, 1, 1, vec![1]),
        (2, 16, 12, 32, vec![16, 5]),
        (3, 64, 12, 32, vec![64, 1, 0]),
        (4, 7, 3, 8, vec![7, 6, 2, 3]),
        (2, 256, 12, 32, vec![256, 200]),
    ];
    for (b, s, heads, d, lens) in cases {
        let h = heads * d;
        let [q, k, v] = [8, 9, 10].map(|seed| values(b * s * h, seed, 2.0));
        let m = mask(&lens, s);
        let run = |fused: bool| {
            read(attention::<G>(
                t(&q, [b, s, h], &g),
                t(&k, [b, s, h], &g),
                t(&v, [b, s, h], &g),
                t(&m, [b, s], &g),
                heads,
                fused,
            ))
        };
        let cpu = read(attention::<C>(
            t(&q, [b, s, h], &c),
            t(&k, [b, s, h], &c),
            t(&v, [b, s, h], &c),
            t(&m, [b, s], &c),
            heads,
            false,
        ));
        let (fused, plain) = (run(true), run(false));
        let (d_plain, d_cpu) = (max_diff(&fused, &plain), max_diff(&fused, &cpu));
        println!("attention b={b} s={s} heads={heads} d={d}: max diff vs plain {d_plain:.2e}, vs cpu {d_cpu:.2e}");
        assert!(d_plain < 2e-5 && d_cpu < 2e-5);
    }
}

#[test]
fn mean_pool_matches_reference() {
    let (g, c) = (gpu(), Default::default());
    let cases: Vec<(usize, usize, usize, Vec<usize>)> = vec![
        (1, 1, 1, vec![1]),
        (3, 9, 384, vec![9, 1, 0]),
        (8, 64, 384, vec![64, 3, 17, 1, 64, 30, 2, 9]),
        (70_000, 1, 4, vec![1; 70_000]),
    ];
    for (b, s, w, lens) in cases {
        let x = values(b * s * w, 11, 3.0);
        let m = mask(&lens, s);
        for normalize in [true, false] {
            let run = |fused: bool| read(mean_pool::<G>(t(&x, [b, s, w], &g), t(&m, [b, s], &g), normalize, fused));
            let cpu = read(mean_pool::<C>(t(&x, [b, s, w], &c), t(&m, [b, s], &c), normalize, false));
            let (fused, plain) = (run(true), run(false));
            let (d_plain, d_cpu) = (max_diff(&fused, &plain), max_diff(&fused, &cpu));
            println!(
                "mean_pool [{b}, {s}, {w}] normalize={normalize}: max diff vs plain {d_plain:.2e}, vs cpu {d_cpu:.2e}"
            );
            assert!(d_plain < 1e-5 && d_cpu < 1e-5);
            if lens.contains(&0) {
                // The all-padding row pools to zeros, not NaN.
                let zero = lens.iter().position(|&l| l == 0).unwrap();
                assert!(fused[zero * w..(zero + 1) * w].iter().all(|&v| v == 0.0));
            }
        }
    }
}

#[test]
fn cosine_top_k_matches_reference() {
    let (g, c) = (gpu(), Default::default());
    // The last three: 4,000 rows of width 1,536 and 50,000 of e5-small's width (far past 65,535
    // loop iterations for a 64-wide workgroup on lavapipe), and a corpus too large for one
    // workgroup per query (the reference path then answers).
    for (nq, n, w, k) in [
        (1, 1, 1, 1),
        (3, 1000, 384, 10),
        (5, 13_014, 384, 50),
        (2, 300, 16, 128),
        (4, 97, 8, 5),
        (1, 4000, 1536, 10),
        (1, 50_000, 384, 10),
        (1, 900_000, 16, 10),
    ] {
        let q = values(nq * w, 12, 1.0);
        let corpus = values(n * w, 13, 1.0);
        let (fs, fi) = cosine_top_k::<G>(t(&q, [nq, w], &g), t(&corpus, [n, w], &g), k, true);
        let (ps, pi) = cosine_top_k::<G>(t(&q, [nq, w], &g), t(&corpus, [n, w], &g), k, false);
        let (cs, ci) = cosine_top_k::<C>(t(&q, [nq, w], &c), t(&corpus, [n, w], &c), k, false);
        let (fs, ps, cs) = (read(fs), read(ps), read(cs));
        let (fi, pi, ci) = (read_int(fi), read_int(pi), read_int(ci));
        // Random scores have no ties, so the ids must agree exactly.
        assert_eq!(fi, pi, "top-{k} ids, fused vs plain (nq={nq}, n={n})");
        assert_eq!(fi, ci, "top-{k} ids, fused vs cpu");
        let (d_plain, d_cpu) = (max_diff(&fs, &ps), max_diff(&fs, &cs));
        println!("cosine_top_k nq={nq} n={n} w={w} k={k}: ids equal, max score diff vs plain {d_plain:.2e}, vs cpu {d_cpu:.2e}");
        // Sums of up to 384 products of size ~0.3: f32 summation order moves them by ~1e-5.
        assert!(d_plain < 5e-5 && d_cpu < 5e-5);
    }
}

#[test]
fn cosine_top_k_ties_go_to_the_lower_row_and_short_corpora_are_padded() {
    let g = gpu();
    // Rows 1 and 3 tie for the query [0, 1]; row 2 is next; row 0 scores 0.
    let corpus = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, 0.0, 1.0];
    let (scores, ids) = cosine_top_k::<G>(t(&[0.0, 1.0], [1, 2], &g), t(&corpus, [4, 2], &g), 6, true);
    assert_eq!(read_int(ids), vec![1, 3, 2, 0, -1, -1]);
    assert_eq!(read(scores), vec![1.0, 1.0, 0.8, 0.0, f32::MIN, f32::MIN]);
}

#[test]
fn the_reference_pads_like_the_kernel() {
    let c = Default::default();
    let (scores, ids) = cosine_top_k::<C>(t(&[0.0, 1.0], [1, 2], &c), t(&[0.6, 0.8], [1, 2], &c), 3, false);
    assert_eq!(read_int(ids), vec![0, -1, -1]);
    assert_eq!(read(scores), vec![0.8, f32::MIN, f32::MIN]);
}

/// The CPU GEMM path of `linear` vs burn's linear op: with and without bias, contiguous and
/// transposed-view inputs, one row and many, an odd width.
#[test]
fn linear_on_the_cpu_matches_burns_linear() {
    let c = burn::backend::ndarray::NdArrayDevice::Cpu;
    for &(b, s, k, n) in &[(1usize, 1usize, 8usize, 3usize), (2, 16, 384, 1536), (3, 7, 37, 11)] {
        let x = values(b * s * k, 11, 1.0);
        let w = values(k * n, 12, 0.5);
        let bias = values(n, 13, 1.0);
        for with_bias in [true, false] {
            for transposed in [false, true] {
                let input = || {
                    if transposed {
                        // [s, b, k] values seen as [b, s, k]: a non-contiguous view.
                        t::<C, 3>(&x, [s, b, k], &c).swap_dims(0, 1)
                    } else {
                        t::<C, 3>(&x, [b, s, k], &c)
                    }
                };
                let run = |fused: bool| {
                    read(linear(
                        input(),
                        t::<C, 2>(&w, [k, n], &c),
                        with_bias.then(|| t::<C, 1>(&bias, [n], &c)),
                        fused,
                    ))
                };
                let want = run(false);
                assert_eq!(want.len(), b * s * n);
                let diff = max_diff(&run(true), &want);
                assert!(diff < 1e-4, "b{b} s{s} k{k} n{n} bias {with_bias} transposed {transposed}: {diff}");
            }
        }
    }
}

/// The wgpu paths of `linear` vs burn's linear op on wgpu and on the CPU: `kernels/linear.wgsl`
/// (up to 48 rows, widths multiples of 4; a last block of 3 rows) and burn's matmul on the folded
/// rows (128 rows, odd widths), one token, a non-contiguous input.
#[test]
fn linear_on_wgpu_matches_burns_linear() {
    let (g, c) = (gpu(), Default::default());
    for &(b, s, k, n) in
        &[(1usize, 1usize, 8usize, 3usize), (3, 5, 64, 100), (2, 16, 384, 1536), (8, 16, 384, 1536), (3, 7, 37, 11)]
    {
        let x = values(b * s * k, 21, 1.0);
        let w = values(k * n, 22, 0.5);
        let bias = values(n, 23, 1.0);
        for with_bias in [true, false] {
            for transposed in [false, true] {
                let input = || {
                    if transposed {
                        t::<G, 3>(&x, [s, b, k], &g).swap_dims(0, 1)
                    } else {
                        t::<G, 3>(&x, [b, s, k], &g)
                    }
                };
                let run = |fused: bool| {
                    read(linear(
                        input(),
                        t::<G, 2>(&w, [k, n], &g),
                        with_bias.then(|| t::<G, 1>(&bias, [n], &g)),
                        fused,
                    ))
                };
                let cpu_x = if transposed {
                    t::<C, 3>(&x, [s, b, k], &c).swap_dims(0, 1)
                } else {
                    t::<C, 3>(&x, [b, s, k], &c)
                };
                let cpu =
                    read(linear(cpu_x, t::<C, 2>(&w, [k, n], &c), with_bias.then(|| t::<C, 1>(&bias, [n], &c)), false));
                let (fused, plain) = (run(true), run(false));
                assert_eq!(fused.len(), b * s * n);
                let (d_plain, d_cpu) = (max_diff(&fused, &plain), max_diff(&fused, &cpu));
                println!("linear b{b} s{s} k{k} n{n} bias {with_bias} transposed {transposed}: max |fused - plain| {d_plain:.2e}, vs cpu {d_cpu:.2e}");
                assert!(d_plain < 1e-4 && d_cpu < 1e-4, "b{b} s{s} k{k} n{n} bias {with_bias} transposed {transposed}");
            }
        }
    }
}

/// The CPU fast paths of bias + GELU, LayerNorm and attention vs their references on the CPU:
/// rank-3 inputs (no reshape on the fast path), inputs that are still shared after the call (the
/// in-place paths must copy them, not write into them), padding, a row of padding only.
#[test]
fn cpu_fast_paths_match_the_references() {
    let c = burn::backend::ndarray::NdArrayDevice::Cpu;
    for (b, s, w, scale) in [(1usize, 1usize, 1usize, 1.0f32), (2, 16, 1536, 4.0), (3, 5, 37, 8.0)] {
        let x = values(b * s * w, 21, scale);
        let bias = values(w, 22, 1.0);
        let input = t::<C, 3>(&x, [b, s, w], &c);
        let fused = read(bias_gelu::<C, 3>(input.clone(), t(&bias, [w], &c), true));
        let plain = read(bias_gelu::<C, 3>(t(&x, [b, s, w], &c), t(&bias, [w], &c), false));
        let diff = max_diff(&fused, &plain);
        println!("cpu bias_gelu [{b}, {s}, {w}]: max |fast - reference| {diff:.2e}");
        assert!(diff < 2e-6 * scale, "bias_gelu [{b}, {s}, {w}]: {diff}");
        assert_eq!(read(input), x, "bias_gelu wrote into a shared input");
    }
    for (b, s, w, residual) in
        [(1usize, 1usize, 1usize, true), (2, 7, 384, true), (2, 7, 384, false), (1, 33, 1000, true)]
    {
        let x = values(b * s * w, 23, 2.0);
        let r = values(b * s * w, 24, 2.0);
        let [bias, gamma, beta] = [25, 26, 27].map(|seed| values(w, seed, 1.0));
        let input = t::<C, 3>(&x, [b, s, w], &c);
        let res = t::<C, 3>(&r, [b, s, w], &c);
        let run = |x: Tensor<C, 3>, fused: bool| {
            read(layer_norm::<C, 3>(
                x,
                t(&bias, [w], &c),
                residual.then(|| res.clone()),
                t(&gamma, [w], &c),
                t(&beta, [w], &c),
                1e-12,
                fused,
            ))
        };
        let fused = run(input.clone(), true);
        let plain = run(t(&x, [b, s, w], &c), false);
        let diff = max_diff(&fused, &plain);
        println!("cpu layer_norm [{b}, {s}, {w}] residual={residual}: max |fast - reference| {diff:.2e}");
        assert!(diff < 1e-5, "layer_norm [{b}, {s}, {w}] residual={residual}: {diff}");
        assert_eq!(read(input), x, "layer_norm wrote into a shared input");
        assert_eq!(read(res.clone()), r, "layer_norm wrote into the residual");
    }
    let cases: Vec<(usize, usize, usize, usize, Vec<usize>)> = vec![
        (1, 1, 1, 1, vec![1]),
        (2, 16, 12, 32, vec![16, 5]),
        (3, 64, 12, 32, vec![64, 1, 0]),
        (4, 7, 3, 8, vec![7, 6, 2, 3]),
        (1, 256, 12, 32, vec![256]),
        (2, 256, 12, 32, vec![256, 200]),
    ];
    for (b, s, heads, d, lens) in cases {
        let h = heads * d;
        let [q, k, v] = [28, 29, 30].map(|seed| values(b * s * h, seed, 2.0));
        let m = mask(&lens, s);
        let run = |fused: bool| {
            read(attention::<C>(
                t(&q, [b, s, h], &c),
                t(&k, [b, s, h], &c),
                t(&v, [b, s, h], &c),
                t(&m, [b, s], &c),
                heads,
                fused,
            ))
        };
        let diff = max_diff(&run(true), &run(false));
        println!("cpu attention b={b} s={s} heads={heads} d={d}: max |fast - reference| {diff:.2e}");
        assert!(diff < 2e-5, "attention b={b} s={s} heads={heads} d={d}: {diff}");
    }
}

/// The CPU AdamW pass against its reference: the same bits (the same operations in the same
/// order), on the first step (no moments yet) and a later one, with and without weight decay and
/// a clipping factor, lengths that leave a ragged last chunk, a rank-3 parameter, a parameter still
/// shared after the call (it must be copied, not written into), and the reference on wgpu as a
/// third opinion.
#[test]
fn adamw_on_the_cpu_is_the_reference_bit_for_bit() {
    let c = burn::backend::ndarray::NdArrayDevice::Cpu;
    for (n, time, decay, scale) in
        [(1usize, 1usize, 0.0f32, 1.0f32), (7, 1, 0.01, 0.5), (16_385, 3, 0.01, 1.0), (40_001, 120, 0.1, 0.037)]
    {
        let step = AdamWStep {
            lr: 3e-5 * time as f64,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: decay,
            time,
            grad_scale: scale,
        };
        let (p, g) = (values(n, 31, 1.0), values(n, 32, 3.0));
        let m1 = values(n, 33, 0.1);
        let m2: Vec<f32> = values(n, 34, 0.1).iter().map(|v| v * v).collect();
        let shape = [1, n, 1];
        let moments =
            |d: &burn::tensor::Device<C>| (time > 1).then(|| (t::<C, 3>(&m1, shape, d), t::<C, 3>(&m2, shape, d)));
        let param = t::<C, 3>(&p, shape, &c);
        let (fp, f1, f2) = adamw::<C, 3>(param.clone(), t(&g, shape, &c), moments(&c), &step, true);
        let (rp, r1, r2) = adamw::<C, 3>(t(&p, shape, &c), t(&g, shape, &c), moments(&c), &step, false);
        assert_eq!(read(fp.clone()), read(rp), "parameter, n {n} t {time}");
        assert_eq!(read(f1), read(r1), "moment 1, n {n} t {time}");
        assert_eq!(read(f2), read(r2), "moment 2, n {n} t {time}");
        assert_eq!(read(param), p, "adamw wrote into a shared parameter");
        assert_ne!(read(fp.clone()), p, "the step changed nothing");
        let gm = (time > 1).then(|| (t::<G, 3>(&m1, shape, &gpu()), t::<G, 3>(&m2, shape, &gpu())));
        let (gp, ..) = adamw::<G, 3>(t(&p, shape, &gpu()), t(&g, shape, &gpu()), gm, &step, true);
        let diff = max_diff(&read(fp), &read(gp));
        println!("adamw n {n} t {time}: cpu = reference bit for bit; max |cpu - wgpu reference| {diff:.2e}");
        assert!(diff < 1e-6, "adamw n {n} t {time} vs wgpu: {diff}");
    }
}
