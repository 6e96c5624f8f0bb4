//! Language centering: a training-free remedy for language bias. Each language's mean vector
//! (queries and candidates separately), estimated on held-out articles, is subtracted from that
//! language's vectors, which are then scaled back to unit length. What remains is less "which
//! language is this" and more "what does it say".

/// Mean vector of each language: `vectors` is row-major `[n, dim]`, `langs[i]` the language of row
/// i. Languages without rows get `None`.
pub fn language_means(vectors: &[f32], langs: &[usize], n_langs: usize, dim: usize) -> Vec<Option<Vec<f32>>> {
    let mut sums = vec![vec![0f64; dim]; n_langs];
    let mut counts = vec![0usize; n_langs];
    for (row, &l) in vectors.chunks(dim).zip(langs) {
        for (s, &v) in sums[l].iter_mut().zip(row) {
            *s += v as f64;
        }
        counts[l] += 1;
    }
    sums.into_iter()
        .zip(counts)
        .map(|(s, n)| (n > 0).then(|| s.iter().map(|v| (v / n as f64) as f32).collect()))
        .collect()
}

/// Subtracts its language's mean from every row and re-normalises it to unit length. Rows of a
/// language without a mean are left as they are.
pub fn center(vectors: &mut [f32], langs: &[usize], means: &[Option<Vec<f32>>], dim: usize) {
    for (row, &l) in vectors.chunks_mut(dim).zip(langs) {
        let Some(mean) = &means[l] else { continue };
        for (v, m) in row.iter_mut().zip(mean) {
            *v -= m;
        }
        let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
        for v in row.iter_mut() {
            *v = (*v as f64 / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_language_offset() {
        // Two languages whose vectors share content directions but carry different offsets.
        let s = 0.5f32;
        let raw = [[1.0, 0.0, s], [0.0, 1.0, s], [1.0, 0.0, -s], [0.0, 1.0, -s]];
        let langs = [0, 0, 1, 1];
        let mut v: Vec<f32> = raw.iter().flatten().copied().collect();
        let means = language_means(&v, &langs, 3, 3);
        assert_eq!(means[0].as_deref(), Some(&[0.5, 0.5, s][..]));
        assert_eq!(means[2], None);
        center(&mut v, &langs, &means, 3);
        let r = std::f32::consts::FRAC_1_SQRT_2;
        let want = [r, -r, 0.0, -r, r, 0.0, r, -r, 0.0, -r, r, 0.0];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{v:?}");
        }
        // After centering, row 0 (lang 0) and row 2 (lang 1) say the same thing: cosine 1.
        let dot: f32 = v[0..3].iter().zip(&v[6..9]).map(|(a, b)| a * b).sum();
        assert!((dot - 1.0).abs() < 1e-6);
    }
}
