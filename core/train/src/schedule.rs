//! The learning-rate schedule: linear warm-up, then linear decay to zero (BERT's schedule).

/// Learning rate before optimiser step `step` (0-based) of `total`.
///
/// Warm-up rises as `lr·(step+1)/warmup` so that the first step already moves; decay falls as
/// `lr·(total−step)/(total−warmup)`, reaching `lr/(total−warmup)` at the last step.
pub fn learning_rate(lr: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        lr * (step + 1) as f64 / warmup as f64
    } else {
        let left = total.saturating_sub(step) as f64;
        lr * left / (total - warmup).max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::learning_rate;

    #[test]
    fn warmup_then_linear_decay() {
        let lr = |s| learning_rate(1.0, s, 4, 10);
        assert_eq!([lr(0), lr(1), lr(3)], [0.25, 0.5, 1.0]);
        assert_eq!(lr(4), 1.0);
        assert!((lr(7) - 0.5).abs() < 1e-12);
        assert!((lr(9) - 1.0 / 6.0).abs() < 1e-12);
        // No warm-up: starts at the peak.
        assert_eq!(learning_rate(2.0, 0, 0, 5), 2.0);
        let all: Vec<f64> = (0..10).map(lr).collect();
        assert!(all[4..].windows(2).all(|w| w[1] < w[0]), "{all:?}");
    }
}
