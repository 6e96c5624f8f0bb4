//! Deterministic pseudo-random weights, identical on every backend and target.
//!
//! Small random-weight encoders of the real architecture let tests run where the full model is too
//! slow (a software WebGPU adapter in a headless browser). burn's own random ops differ between
//! backends, so the values come from a seeded SplitMix64 on the host instead.

use crate::bert::{WeightError, WeightSource};

/// A [`WeightSource`] that fills every tensor from a seed: LayerNorm weights near 1, everything else
/// uniform in `[-scale, scale]`. The same seed gives the same bits everywhere.
///
/// The values depend on the order in which tensors are requested: one stream of numbers is dealt
/// out tensor by tensor, in the order `BertModel::from_source` asks for them (embeddings, then each
/// layer's attention, intermediate and output weights). Changing that order, or a tensor's shape,
/// changes every later value, and fixtures made from seeded weights must then be re-blessed.
#[derive(Debug, Clone)]
pub struct SeededWeights {
    state: u64,
    scale: f32,
}

impl SeededWeights {
    /// A source with the given seed and uniform range.
    pub fn new(seed: u64, scale: f32) -> Self {
        Self { state: seed, scale }
    }

    fn next_unit(&mut self) -> f32 {
        // SplitMix64, then the top 24 bits as a float in [0, 1).
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

impl WeightSource for SeededWeights {
    fn get(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightError> {
        let n: usize = shape.iter().product();
        let is_ln_gain = name.ends_with("LayerNorm.weight");
        Ok((0..n)
            .map(|_| {
                let u = self.next_unit() * 2.0 - 1.0;
                if is_ln_gain {
                    1.0 + 0.1 * u
                } else {
                    self.scale * u
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_range() {
        let a = SeededWeights::new(7, 0.5).get("x.weight", &[1000]).unwrap();
        let b = SeededWeights::new(7, 0.5).get("x.weight", &[1000]).unwrap();
        let c = SeededWeights::new(8, 0.5).get("x.weight", &[1000]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        let ln = SeededWeights::new(7, 0.5).get("l.LayerNorm.weight", &[100]).unwrap();
        assert!(ln.iter().all(|v| (0.9..1.1).contains(v)));
    }
}
