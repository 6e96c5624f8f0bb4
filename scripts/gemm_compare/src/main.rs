//! mlr's CPU GEMM against the `gemm` crate (sarah-ek's) on the products of one training step of
//! multilingual-e5-small (hidden 384, feed-forward 1536) over `T` tokens: the forward products on
//! a packed weight, the input gradients `dy · Wᵀ` (packed transposes), and the weight gradients
//! `xᵀ · dy` (the transposed `x` read in place by mlr's kernel). Both on rayon's pool with all its
//! threads. Each product runs 3 times to warm up, then `--reps` times; the JSON and markdown give
//! GFLOP/s of the median and the best run. This is the measurement behind handing the weight
//! gradients to the gemm crate on AVX2 CPUs (shaders/src/cpu/gemm.rs, `library`).

#![allow(dead_code)]

#[path = "../../../shaders/src/cpu/gemm.rs"]
mod mlr;

use ndarray::{Array2, ArrayView2};
use std::time::Instant;

fn values(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
    let mut s = seed;
    Array2::from_shape_fn((rows, cols), |_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 9) as f32 / (1u32 << 23) as f32 - 0.5
    })
}

fn with_gemm_crate(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut Array2<f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let (sa, sb, sc) = (a.strides().to_vec(), b.strides().to_vec(), c.strides().to_vec());
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: live views of the stated shapes and strides; c is borrowed mutably and apart.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            sc[1],
            sc[0],
            true,
            a.as_ptr(),
            sa[1],
            sa[0],
            b.as_ptr(),
            sb[1],
            sb[0],
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

fn time(reps: usize, mut run: impl FnMut()) -> (f64, f64) {
    for _ in 0..3 {
        run();
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let out = arg("--out").unwrap_or_else(|| "gemm.json".into());
    let reps: usize = arg("--reps").and_then(|v| v.parse().ok()).unwrap_or(30);
    let tokens: Vec<usize> =
        arg("--tokens").map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect()).unwrap_or(vec![256, 1141]);
    let isa = mlr::Isa::best().expect("a CPU with AVX2 + FMA or AVX-512");
    let mut rows = Vec::new();
    for &t in &tokens {
        // (product, m, k, n, a transposed, b transposed); the input gradients multiply by the
        // transpose of a weight stored `[n, k]`, read in place, as the encoder's backward pass does.
        let shapes = [
            ("forward x·W, 384 → 1536", t, 384, 1536, false, false),
            ("forward x·W, 1536 → 384", t, 1536, 384, false, false),
            ("forward x·W, 384 → 384", t, 384, 384, false, false),
            ("input gradient dy·Wᵀ, 1536 → 384", t, 1536, 384, false, true),
            ("input gradient dy·Wᵀ, 384 → 1536", t, 384, 1536, false, true),
            ("weight gradient xᵀ·dy, 384 × 1536", 384, t, 1536, true, false),
            ("weight gradient xᵀ·dy, 1536 × 384", 1536, t, 384, true, false),
            ("weight gradient xᵀ·dy, 384 × 384", 384, t, 384, true, false),
        ];
        for (name, m, k, n, a_t, b_t) in shapes {
            let stored = if a_t { values(k, m, 1) } else { values(m, k, 1) };
            let a = if a_t { stored.t() } else { stored.view() };
            let stored_b = if b_t { values(n, k, 2) } else { values(k, n, 2) };
            let b = if b_t { stored_b.t() } else { stored_b.view() };
            let packed = mlr::PackedB::with_isa(isa, b.view());
            let flop = 2.0 * (m * n * k) as f64;
            let mut c = Array2::<f32>::zeros((m, n));
            // mlr's kernel as the encoder calls it: a packed weight for the forward and input
            // gradients, `a` read in place for the weight gradients.
            let (mlr_med, mlr_best) = time(reps, || {
                let done = if a_t {
                    mlr::gemm_with(isa, a, b.view(), c.view_mut(), true)
                } else {
                    mlr::gemm_packed(a, &packed, c.view_mut(), true)
                };
                assert!(done);
            });
            let (lib_med, lib_best) = time(reps, || with_gemm_crate(a, b.view(), &mut c));
            // Both give the same product.
            let mut x = Array2::<f32>::zeros((m, n));
            let mut y = Array2::<f32>::zeros((m, n));
            assert!(if a_t {
                mlr::gemm_with(isa, a, b, x.view_mut(), true)
            } else {
                mlr::gemm_packed(a, &packed, x.view_mut(), true)
            });
            with_gemm_crate(a, b.view(), &mut y);
            let diff = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(diff <= 1e-6 * k as f32, "{name}: the two products differ by {diff}");
            let gf = |s: f64| flop / s / 1e9;
            println!(
                "T={t:5} {name:36} mlr {:6.1} (best {:6.1}) GFLOP/s | gemm crate {:6.1} (best {:6.1}) | mlr/gemm time {:.2}",
                gf(mlr_med),
                gf(mlr_best),
                gf(lib_med),
                gf(lib_best),
                mlr_med / lib_med
            );
            rows.push(serde_json::json!({
                "tokens": t, "product": name, "m": m, "k": k, "n": n, "a_transposed": a_t,
                "mlr_gflops_median": gf(mlr_med), "mlr_gflops_best": gf(mlr_best),
                "gemm_crate_gflops_median": gf(lib_med), "gemm_crate_gflops_best": gf(lib_best),
                "time_ratio_mlr_over_gemm_crate": mlr_med / lib_med,
            }));
        }
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let report = serde_json::json!({
        "command": "cargo run --release --manifest-path scripts/gemm_compare/Cargo.toml -- --out results/bench/gemm.json",
        "machine": { "cpu": cpu, "threads": rayon::current_num_threads(), "mlr_kernel": isa.name() },
        "reps": reps,
        "rows": rows,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap() + "\n").expect("writing the JSON");
    let mut md = format!(
        "# mlr's CPU GEMM and the gemm crate on a training step's products\n\nCommand: `{}`\n\nMachine: {} ({} threads), mlr's kernel {}. GFLOP/s of the median of {} runs (best in brackets); ratio = mlr's median time over the gemm crate's (above 1: the crate is faster).\n\n| tokens | product | mlr | gemm crate | ratio |\n|---:|---|---:|---:|---:|\n",
        report["command"].as_str().unwrap(), cpu, rayon::current_num_threads(), isa.name(), reps
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} |\n",
            r["tokens"],
            r["product"].as_str().unwrap(),
            r["mlr_gflops_median"].as_f64().unwrap(),
            r["mlr_gflops_best"].as_f64().unwrap(),
            r["gemm_crate_gflops_median"].as_f64().unwrap(),
            r["gemm_crate_gflops_best"].as_f64().unwrap(),
            r["time_ratio_mlr_over_gemm_crate"].as_f64().unwrap()
        );
    }
    std::fs::write(std::path::Path::new(&out).with_extension("md"), md).expect("writing the markdown");
}
