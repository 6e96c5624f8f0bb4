//! The backward passes of the CPU fast paths against burn's autodiff of the plain-burn references:
//! for each fused operation on `Autodiff<NdArray<f32>>`, the gradient of `Σ out ⊙ r` (a random
//! `r`) with respect to every input, on edge shapes (one row, padding, all-padding rows, one-token
//! sequences, odd widths, 256 tokens). Relative error: max |fused − reference| / max |reference|
//! per input, at most 1e-4.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use mlr_kernels::{attention, attention_ragged, bias_gelu, layer_norm, linear};

type A = Autodiff<NdArray<f32>>;

mod common;
use common::values;

fn param<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<A, D> {
    Tensor::<A, D>::from_data(TensorData::new(v.to_vec(), shape), &Default::default()).require_grad()
}

fn constant<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<A, D> {
    Tensor::<A, D>::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
}

fn read<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().convert::<f32>().into_vec().unwrap()
}

/// max |a − b| / max |b| (max |a − b| where the reference is all zeros, as for q and k of a
/// one-token sequence), failing on NaN or a length mismatch.
fn relative(a: &[f32], b: &[f32], what: &str) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert!(x.is_finite() && y.is_finite(), "{what}: non-finite value {x} vs {y}");
            (x - y).abs()
        })
        .fold(0.0, f32::max)
        / scale
}

/// The output (as values) and the gradients of `Σ out ⊙ r` with respect to `inputs`, for the
/// fused path (`fused`) or the reference; `f` builds the output from fresh copies of the inputs.
fn grads<const D: usize, const R: usize>(
    inputs: &[(Vec<f32>, Vec<usize>)],
    fused: bool,
    f: impl Fn(&[Tensor<A, R>], bool) -> Tensor<A, D>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let tensors: Vec<Tensor<A, R>> = inputs
        .iter()
        .map(|(v, shape)| {
            let mut dims = [1usize; R];
            dims[R - shape.len()..].copy_from_slice(shape);
            param(v, dims)
        })
        .collect();
    let out = f(&tensors, fused);
    let n = out.shape().num_elements();
    let r = constant(&values(n, 99, 1.0), out.dims());
    let loss = (out.clone() * r).sum();
    let g = loss.backward();
    let grads = tensors
        .iter()
        .zip(inputs)
        .map(|(t, (_, shape))| {
            let grad = t.grad(&g).unwrap_or_else(|| panic!("no gradient for an input of shape {shape:?}"));
            read(grad)
        })
        .collect();
    (read(out), grads)
}

/// Runs both paths and checks the output and every gradient.
fn check<const D: usize, const R: usize>(
    case: &str,
    names: &[&str],
    inputs: &[(Vec<f32>, Vec<usize>)],
    f: impl Fn(&[Tensor<A, R>], bool) -> Tensor<A, D>,
) {
    let (out_fused, g_fused) = grads(inputs, true, &f);
    let (out_plain, g_plain) = grads(inputs, false, &f);
    let out_err = relative(&out_fused, &out_plain, &format!("{case} output"));
    assert!(out_err <= 1e-5, "{case}: outputs differ by {out_err:.2e}");
    for ((name, a), b) in names.iter().zip(&g_fused).zip(&g_plain) {
        let err = relative(a, b, &format!("{case} d{name}"));
        println!("{case}: d{name} relative error {err:.2e}");
        assert!(err <= 1e-4, "{case}: d{name} differs by {err:.2e} (relative)");
    }
}

fn input(n: usize, shape: &[usize], seed: u64, scale: f32) -> (Vec<f32>, Vec<usize>) {
    (values(n, seed, scale), shape.to_vec())
}

#[test]
fn linear_gradients_match_the_reference() {
    for (b, s, k, n) in [(1, 1, 1, 1), (2, 3, 5, 7), (3, 17, 33, 65), (2, 64, 384, 1536), (1, 256, 384, 384)] {
        let case = format!("linear [{b}, {s}, {k}] x [{k}, {n}]");
        let inputs = [input(b * s * k, &[b, s, k], 1, 1.0), input(k * n, &[k, n], 2, 0.1), input(n, &[n], 3, 1.0)];
        // Inputs as rank-3 tensors (leading ones); reshaped back to their own ranks.
        check::<3, 3>(&case, &["x", "w", "b"], &inputs, |t, fused| {
            let w = t[1].clone().reshape([k, n]);
            let bias = t[2].clone().reshape([n]);
            linear(t[0].clone(), w, Some(bias), fused)
        });
        check::<3, 3>(&format!("{case} without bias"), &["x", "w"], &inputs[..2], |t, fused| {
            linear(t[0].clone(), t[1].clone().reshape([k, n]), None, fused)
        });
    }
}

#[test]
fn bias_gelu_gradients_match_the_reference() {
    for (b, s, w, scale) in [(1, 1, 1, 1.0), (2, 5, 37, 4.0), (4, 64, 1536, 3.0)] {
        let inputs = [input(b * s * w, &[b, s, w], 4, scale), input(w, &[w], 5, 1.0)];
        check::<3, 3>(&format!("bias_gelu [{b}, {s}, {w}]"), &["x", "b"], &inputs, |t, fused| {
            bias_gelu(t[0].clone(), t[1].clone().reshape([w]), fused)
        });
    }
}

#[test]
fn layer_norm_gradients_match_the_reference() {
    for (b, s, w) in [(1, 1, 1), (1, 1, 7), (2, 5, 384), (3, 33, 1000), (4, 64, 384)] {
        let inputs = [
            input(b * s * w, &[b, s, w], 6, 2.0),
            input(w, &[w], 7, 1.0),
            input(w, &[w], 8, 1.0),
            input(w, &[w], 9, 1.0),
            input(b * s * w, &[b, s, w], 10, 2.0),
        ];
        let vec = |t: &Tensor<A, 3>| t.clone().reshape([w]);
        let case = format!("layer_norm [{b}, {s}, {w}]");
        if w > 1 {
            // Width 1 normalises every row to 0: nothing flows back to x or the residual.
            check::<3, 3>(&case, &["x", "bias", "gamma", "beta", "residual"], &inputs, |t, fused| {
                layer_norm(t[0].clone(), vec(&t[1]), Some(t[4].clone()), vec(&t[2]), vec(&t[3]), 1e-12, fused)
            });
        }
        check::<3, 3>(
            &format!("{case} without residual"),
            &["gamma", "beta"],
            &[inputs[2].clone(), inputs[3].clone()],
            |t, fused| {
                let x = constant(&inputs[0].0, [b, s, w]);
                let bias = constant(&inputs[1].0, [w]);
                layer_norm(x, bias, None, vec(&t[0]), vec(&t[1]), 1e-5, fused)
            },
        );
    }
}

/// A 0/1 mask whose row r has `lens[r]` leading ones.
fn mask(lens: &[usize], seq: usize) -> Vec<f32> {
    lens.iter().flat_map(|&l| (0..seq).map(move |j| if j < l { 1.0 } else { 0.0 })).collect()
}

#[test]
fn attention_gradients_match_the_reference() {
    // (seq, hidden, heads, lengths): one token, padding, an all-padding row, odd widths, 256 tokens.
    let cases: [(usize, usize, usize, Vec<usize>); 5] = [
        (1, 4, 1, vec![1]),
        (5, 12, 3, vec![5, 1, 3]),
        (7, 15, 5, vec![0, 7]),
        (37, 384, 12, vec![37, 20]),
        (256, 64, 2, vec![256, 100]),
    ];
    for (s, h, heads, lens) in cases {
        let b = lens.len();
        let n = b * s * h;
        let inputs = [input(n, &[b, s, h], 11, 1.0), input(n, &[b, s, h], 12, 1.0), input(n, &[b, s, h], 13, 1.0)];
        let m = mask(&lens, s);
        check::<3, 3>(
            &format!("attention b{b} s{s} h{h}/{heads} lens {lens:?}"),
            &["q", "k", "v"],
            &inputs,
            |t, fused| attention(t[0].clone(), t[1].clone(), t[2].clone(), constant(&m, [b, s]), heads, fused),
        );
    }
}

#[test]
fn ragged_attention_gradients_match_the_reference() {
    // (hidden, heads, lengths): one token, texts of no token first, in the middle and last, odd
    // widths, 256 tokens; the reference runs each text through the reference attention alone.
    let cases: [(usize, usize, Vec<usize>); 6] = [
        (4, 1, vec![1]),
        (12, 3, vec![5, 1, 3]),
        (15, 5, vec![0, 7]),
        (8, 2, vec![3, 0, 0, 9, 1, 0]),
        (384, 12, vec![37, 20, 64]),
        (64, 2, vec![256, 100]),
    ];
    for (h, heads, lens) in cases {
        let tokens: usize = lens.iter().sum();
        let n = tokens * h;
        let inputs =
            [input(n, &[tokens, h], 21, 1.0), input(n, &[tokens, h], 22, 1.0), input(n, &[tokens, h], 23, 1.0)];
        check::<2, 2>(
            &format!("ragged attention h{h}/{heads} lens {lens:?}"),
            &["q", "k", "v"],
            &inputs,
            |t, fused| {
                attention_ragged(t[0].clone(), t[1].clone(), t[2].clone(), &lens, heads, fused)
                    .expect("the CPU backend has the ragged path")
            },
        );
    }
}

/// The ragged attention equals the padded, masked attention on the same texts: each text's rows
/// of the fused ragged output against its rows of the fused padded output.
#[test]
fn ragged_attention_equals_the_padded_attention() {
    let (h, heads, lens) = (24, 4, [6usize, 1, 0, 11]);
    let (b, s) = (lens.len(), 11);
    let tokens: usize = lens.iter().sum();
    let padded: Vec<[Vec<f32>; 1]> = (0..3).map(|i| [values(b * s * h, 30 + i, 1.0)]).collect();
    // The token matrix: each text's first lens[t] rows of its padded block, end to end.
    let rows: Vec<Vec<f32>> = padded
        .iter()
        .map(|[p]| {
            lens.iter().enumerate().flat_map(|(t, &len)| p[t * s * h..(t * s + len) * h].iter().copied()).collect()
        })
        .collect();
    let device = Default::default();
    let t2 = |v: &[f32]| Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(v.to_vec(), [tokens, h]), &device);
    let t3 = |v: &[f32]| Tensor::<NdArray<f32>, 3>::from_data(TensorData::new(v.to_vec(), [b, s, h]), &device);
    let ragged = attention_ragged(t2(&rows[0]), t2(&rows[1]), t2(&rows[2]), &lens, heads, true).expect("CPU path");
    let m = Tensor::<NdArray<f32>, 2>::from_data(TensorData::new(mask(&lens, s), [b, s]), &device);
    let full = attention(t3(&padded[0][0]), t3(&padded[1][0]), t3(&padded[2][0]), m, heads, true);
    let (ragged, full) = (read(ragged), read(full));
    let mut start = 0;
    for (t, &len) in lens.iter().enumerate() {
        let got = &ragged[start * h..(start + len) * h];
        let want = &full[t * s * h..(t * s + len) * h];
        let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err <= 1e-6, "text {t} ({len} tokens): ragged and padded differ by {err:e}");
        start += len;
    }
}
