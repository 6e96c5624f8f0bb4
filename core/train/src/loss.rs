//! InfoNCE over cosine similarity with in-batch negatives.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use mlr_kernels::reference::log_softmax;

/// Mean InfoNCE loss of `queries[i]` against `passages`, whose first `queries.len()` rows are the
/// positives in order (row i belongs to query i) and whose remaining rows are extra negatives
/// (hard negatives) shared by every query. Both inputs must be L2-normalised, so the dot product
/// is the cosine; logits are cosine / τ.
///
/// `L = mean_i −log( exp(s(q_i,p_i)/τ) / Σ_j exp(s(q_i,p_j)/τ) )`
///
/// `ignore[i][j]` true drops passage j from query i's denominator (a passage that is also a right
/// answer of query i); the diagonal must stay false.
///
/// # Shapes
/// queries `[b, h]`, passages `[b + n, h]`, ignore `[b, b + n]` -> `[1]`
pub fn info_nce<B: Backend>(
    queries: Tensor<B, 2>,
    passages: Tensor<B, 2>,
    tau: f64,
    ignore: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 1> {
    let [b, _] = queries.dims();
    let device = queries.device();
    let mut logits = queries.matmul(passages.transpose()).div_scalar(tau); // [b, b + n]
    if let Some(ignore) = ignore {
        logits = logits.mask_fill(ignore, -1e9);
    }
    let targets = Tensor::<B, 1, Int>::arange(0..b as i64, &device).reshape([b, 1]);
    log_softmax(logits, 1).gather(1, targets).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    fn t(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    /// The loss computed by hand in f64 from the definition.
    fn reference(q: &[[f32; 2]], p: &[[f32; 2]], tau: f64, ignore: &[(usize, usize)]) -> f64 {
        let mut total = 0.0;
        for (i, qi) in q.iter().enumerate() {
            let s: Vec<f64> = p.iter().map(|pj| (qi[0] * pj[0] + qi[1] * pj[1]) as f64 / tau).collect();
            let log_z = s
                .iter()
                .enumerate()
                .filter(|(j, _)| !ignore.contains(&(i, *j)))
                .map(|(_, v)| v.exp())
                .sum::<f64>()
                .ln();
            total += log_z - s[i];
        }
        total / q.len() as f64
    }

    #[test]
    fn matches_the_definition_with_and_without_extra_negatives() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let q = [[1.0, 0.0], [0.0, 1.0], [s, s]];
        let p = [[s, s], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]];
        for (n, tau) in [(3, 0.05), (4, 0.05), (3, 1.0), (4, 0.5)] {
            let got: f32 = info_nce(t(&q), t(&p[..n]), tau, None).into_scalar();
            let want = reference(&q, &p[..n], tau, &[]);
            assert!((got as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "n={n} τ={tau}: {got} vs {want}");
        }
    }

    #[test]
    fn ignored_passages_leave_the_denominator() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let q = [[1.0, 0.0], [0.0, 1.0], [s, s]];
        let p = [[s, s], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]];
        let ignore = [(0, 2), (2, 0), (1, 3)];
        let mut flags = vec![false; 12];
        for &(i, j) in &ignore {
            flags[i * 4 + j] = true;
        }
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(flags, [3, 4]), &Default::default());
        let got: f32 = info_nce(t(&q), t(&p), 0.1, Some(mask)).into_scalar();
        let want = reference(&q, &p, 0.1, &ignore);
        assert!((got as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "{got} vs {want}");
        assert!((want - reference(&q, &p, 0.1, &[])).abs() > 0.1, "the case must be sensitive to the mask");
    }

    #[test]
    fn perfect_alignment_gives_a_small_loss_and_swapped_a_large_one() {
        let good: f32 = info_nce(t(&[[1.0, 0.0], [0.0, 1.0]]), t(&[[1.0, 0.0], [0.0, 1.0]]), 0.05, None).into_scalar();
        let bad: f32 = info_nce(t(&[[1.0, 0.0], [0.0, 1.0]]), t(&[[0.0, 1.0], [1.0, 0.0]]), 0.05, None).into_scalar();
        assert!(good < 1e-6 && bad > 19.0, "{good} {bad}");
    }
}
