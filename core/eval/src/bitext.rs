//! Bitext retrieval accuracy (Tatoeba, as in LASER and XTREME): sentence i of one side must find
//! its translation, sentence i of the other side, as its nearest neighbour.

use crate::score::{check_scorable, dot_scores};
use crate::EvalError;

/// Share of rows of `source` whose highest-scoring row of `target` is the aligned one. Scores are
/// dot products (cosine for unit vectors); among equal best scores the lowest index wins, so a tie
/// with a wrong sentence counts as correct only if the right one comes first.
pub fn accuracy(source: &[f32], target: &[f32], dim: usize) -> Result<f64, EvalError> {
    if dim == 0 || !source.len().is_multiple_of(dim) || target.len() != source.len() {
        return Err(EvalError::Shape(format!(
            "bitext sides of {} and {} floats for dimension {dim}: they must hold the same number of vectors",
            source.len(),
            target.len()
        )));
    }
    let n = source.len() / dim;
    if n == 0 {
        return Err(EvalError::Shape("no sentences".into()));
    }
    check_scorable(source, target, dim)?;
    let block = 256;
    let mut scores = vec![0f32; block * n];
    let mut correct = 0usize;
    for start in (0..n).step_by(block) {
        let rows = block.min(n - start);
        let out = &mut scores[..rows * n];
        dot_scores(&source[start * dim..(start + rows) * dim], target, dim, out);
        for r in 0..rows {
            let row = &out[r * n..(r + 1) * n];
            let mut best = 0;
            for (j, &s) in row.iter().enumerate() {
                if s > row[best] {
                    best = j;
                }
            }
            correct += usize::from(best == start + r);
        }
    }
    Ok(correct as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_neighbour_accuracy() {
        // Source 0 finds target 0; source 1 prefers target 0 (wrong); source 2 ties 1 and 2 → 1 (wrong).
        let source = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0];
        let target = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let acc = super::accuracy(&source, &target, 2).unwrap();
        assert!((acc - 1.0 / 3.0).abs() < 1e-12);
        assert!(super::accuracy(&source, &target[..4], 2).is_err());
        // A NaN row would otherwise never lose a comparison and count as found.
        let nan = [1.0, 0.0, f32::NAN, 0.1, 0.0, 1.0];
        let err = super::accuracy(&source, &nan, 2).unwrap_err().to_string();
        assert!(err.starts_with("candidate vector 1 has a non-finite value (NaN)"), "{err}");
    }
}
