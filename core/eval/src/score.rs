//! Scores and the order of a ranking.
//!
//! Candidates are ranked by score, highest first. Equal scores are broken the way trec_eval breaks
//! them: by document id, in *descending* byte order. [`tie_order`] turns ids into a rank key so the
//! fast paths (rank counting) and the TREC path (sorting) produce the same ranking.
//!
//! Scores are only computed from finite vectors ([`check_scorable`]): NaN compares false with
//! everything, so a NaN candidate would rank first and score perfectly.

use crate::EvalError;

/// Writes `out[i * n + j] = queries[i] · candidates[j]` for `m` queries and `n` candidates of
/// dimension `dim` (row-major). With unit vectors this is the cosine similarity.
pub fn dot_scores(queries: &[f32], candidates: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0, "dimension must be positive");
    let m = queries.len() / dim;
    let n = candidates.len() / dim;
    assert_eq!(queries.len(), m * dim, "queries are not a multiple of the dimension");
    assert_eq!(candidates.len(), n * dim, "candidates are not a multiple of the dimension");
    assert_eq!(out.len(), m * n, "output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices hold exactly m×dim, n×dim and m×n elements (checked above); the strides
    // describe row-major A (m×k), Bᵀ read from row-major candidates (k×n) and row-major C (m×n).
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            n,
            1.0,
            queries.as_ptr(),
            dim as isize,
            1,
            candidates.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Checks that every value of `vectors` (row-major, rows of `dim`) is finite and returns the
/// largest row norm. Scores of vectors whose norms multiply to less than `f32::MAX` are finite
/// (Cauchy–Schwarz bounds every partial sum of a dot product), which [`check_scorable`] checks.
pub fn check_finite(what: &'static str, vectors: &[f32], dim: usize) -> Result<f64, EvalError> {
    let mut max_norm = 0f64;
    for (row, v) in vectors.chunks(dim.max(1)).enumerate() {
        if let Some(d) = v.iter().position(|x| !x.is_finite()) {
            return Err(EvalError::NonFinite { what, row, dim: d, value: v[d] });
        }
        max_norm = max_norm.max(v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt());
    }
    Ok(max_norm)
}

/// Checks both sides of a scoring: finite values, and norms small enough that no dot product
/// overflows f32 (unit vectors have norm 1; only hostile inputs come near the limit).
pub fn check_scorable(queries: &[f32], candidates: &[f32], dim: usize) -> Result<(), EvalError> {
    let q = check_finite("query vector", queries, dim)?;
    let c = check_finite("candidate vector", candidates, dim)?;
    if q * c >= f32::MAX as f64 / 2.0 {
        return Err(EvalError::Shape(format!(
            "vector norms up to {q:.3e} (queries) and {c:.3e} (candidates) would overflow f32 scores"
        )));
    }
    Ok(())
}

/// For each candidate, its position when ids are sorted in descending byte order: among equal
/// scores, a smaller key ranks first (trec_eval's rule). Ids must be distinct.
pub fn tie_order<S: AsRef<str>>(ids: &[S]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| ids[b].as_ref().as_bytes().cmp(ids[a].as_ref().as_bytes()));
    let mut key = vec![0u32; ids.len()];
    for (position, &i) in order.iter().enumerate() {
        key[i] = position as u32;
    }
    key
}

/// Whether a candidate with `(score, tie)` is ranked before one with `(other_score, other_tie)`.
#[inline]
pub fn precedes(score: f32, tie: u32, other_score: f32, other_tie: u32) -> bool {
    score > other_score || (score == other_score && tie < other_tie)
}

/// A `u64` whose ascending order is the ranking order (score descending, then tie key ascending).
#[inline]
pub fn rank_key(score: f32, tie: u32) -> u64 {
    // -0.0 == 0.0 for `precedes`, so both get the same key.
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    // Map the float to an unsigned integer with the same order, then invert it for "descending".
    let ordered = if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 };
    ((!ordered as u64) << 32) | tie as u64
}

/// Indices of the candidates in ranking order (all of them). Tie keys must be distinct.
pub fn ranking(scores: &[f32], ties: &[u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by_key(|&i| rank_key(scores[i], ties[i]));
    order
}

/// The first `depth` candidates in ranking order (all of them if `depth` is larger).
pub fn top(scores: &[f32], ties: &[u32], depth: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let depth = depth.min(order.len());
    if depth == 0 {
        return Vec::new();
    }
    if depth < order.len() {
        order.select_nth_unstable_by_key(depth - 1, |&i| rank_key(scores[i], ties[i]));
        order.truncate(depth);
    }
    order.sort_unstable_by_key(|&i| rank_key(scores[i], ties[i]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_or_overflowing_vectors_are_refused() {
        let good = [0.6f32, 0.8, 1.0, 0.0];
        assert!(check_scorable(&good, &good, 2).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let v = [0.6f32, 0.8, 1.0, bad];
            let err = check_scorable(&good, &v, 2).unwrap_err();
            assert!(matches!(err, EvalError::NonFinite { what: "candidate vector", row: 1, dim: 1, .. }), "{err}");
            let err = check_scorable(&v, &good, 2).unwrap_err().to_string();
            assert!(err.starts_with("query vector 1 has a non-finite value"), "{err}");
        }
        let huge = [3e19f32, 0.0];
        let err = check_scorable(&huge, &huge, 2).unwrap_err().to_string();
        assert!(err.contains("would overflow f32 scores"), "{err}");
    }

    #[test]
    fn scores_are_dot_products() {
        let q = [1.0, 0.0, 0.5, 0.5];
        let c = [1.0, 2.0, 0.0, 1.0, -1.0, 0.0];
        let mut out = [0.0; 6];
        dot_scores(&q, &c, 2, &mut out);
        assert_eq!(out, [1.0, 0.0, -1.0, 1.5, 0.5, -0.5]);
    }

    #[test]
    fn ties_break_by_descending_id_like_trec_eval() {
        let ids = ["d1", "d3", "d2", "d10"];
        let ties = tie_order(&ids);
        // Descending byte order: d3, d2, d10, d1.
        assert_eq!(ties, vec![3, 0, 1, 2]);
        let order = ranking(&[0.5, 0.5, 0.9, 0.5], &ties);
        assert_eq!(order, vec![2, 1, 3, 0]);
        assert_eq!(top(&[0.5, 0.5, 0.9, 0.5], &ties, 2), vec![2, 1]);
    }

    #[test]
    fn rank_key_orders_negative_and_positive_scores() {
        let scores = [-1.0f32, -0.0, 0.0, 0.25, -0.5, 3.0];
        let mut keys: Vec<(u64, f32)> = scores.iter().map(|&s| (rank_key(s, 0), s)).collect();
        keys.sort_by_key(|k| k.0);
        let sorted: Vec<f32> = keys.iter().map(|k| k.1).collect();
        assert_eq!(sorted[0], 3.0);
        assert_eq!(sorted[1], 0.25);
        assert_eq!(*sorted.last().unwrap(), -1.0);
        assert!(precedes(0.3, 5, 0.2, 0) && precedes(0.3, 1, 0.3, 2) && !precedes(0.3, 2, 0.3, 1));
    }
}
