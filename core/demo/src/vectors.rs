//! The corpus vector file: unit vectors of every candidate, then every question, of a LAReQA-format
//! set, stored as f16 or as int8 with a scale per row (the evaluator's numbers with each are in
//! results/demo/).
//!
//! Layout (little-endian): `b"MLRV"`, `u32` version, `u32` dim, `u32` candidates, `u32` questions,
//! then the `rows = candidates + questions` rows, row-major, in the set's order
//! ([`mlr_data::lareqa::LareqaSet::candidates`], then its questions):
//! - version 1 ([`VectorFormat::F16`]): `rows × dim` IEEE half floats;
//! - version 2 ([`VectorFormat::I8`]): `rows` f32 scales, then `rows × dim` `i8` values; value `j`
//!   of row `r` is `q[r][j] · scale[r]`, with `scale = max|x| / 127` (a quarter of f16's bytes);
//! - version 3 ([`VectorFormat::Q8`]): each row as blocks of 32 values (`dim` a multiple of 32),
//!   each an f16 scale `d = max|x| / 127` and 32 `i8` values `round(x / d)` (GGML's Q8_0): 6 %
//!   more bytes than version 2, and a finer step wherever a block holds no outlier dimension.

use std::collections::HashMap;

use half::f16;
use mlr_data::lareqa::{EvalIndex, LareqaSet};

use crate::DemoError;

const MAGIC: &[u8; 4] = b"MLRV";
const HEADER: usize = 20;
const Q8_BLOCK: usize = 32;

/// How a vector file stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorFormat {
    /// IEEE half floats (file version 1).
    F16,
    /// `i8` with an f32 scale per row (file version 2).
    I8,
    /// `i8` with an f16 scale per 32 values (file version 3).
    Q8,
}

impl VectorFormat {
    fn version(self) -> u32 {
        match self {
            VectorFormat::F16 => 1,
            VectorFormat::I8 => 2,
            VectorFormat::Q8 => 3,
        }
    }

    /// The name used in manifests and reports (`f16`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            VectorFormat::F16 => "f16",
            VectorFormat::I8 => "int8",
            VectorFormat::Q8 => "q8_0",
        }
    }
}

/// Decoded corpus vectors (f32, as the f16 values were stored).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorFile {
    /// Vector width.
    pub dim: usize,
    /// Candidates, row-major `[n_candidates, dim]`.
    pub candidates: Vec<f32>,
    /// Questions, row-major `[n_questions, dim]`.
    pub questions: Vec<f32>,
}

impl VectorFile {
    /// Number of candidate rows.
    pub fn n_candidates(&self) -> usize {
        self.candidates.len() / self.dim.max(1)
    }

    /// Number of question rows.
    pub fn n_questions(&self) -> usize {
        self.questions.len() / self.dim.max(1)
    }

    /// Candidate row `i`.
    pub fn candidate(&self, i: usize) -> &[f32] {
        &self.candidates[i * self.dim..(i + 1) * self.dim]
    }

    /// Question row `i`.
    pub fn question(&self, i: usize) -> &[f32] {
        &self.questions[i * self.dim..(i + 1) * self.dim]
    }

    /// Encodes row-major f32 vectors as the file (values rounded to the nearest f16).
    pub fn encode(dim: usize, candidates: &[f32], questions: &[f32]) -> Vec<u8> {
        Self::encode_as(VectorFormat::F16, dim, candidates, questions)
    }

    /// Encodes row-major f32 vectors in `format` ([`VectorFormat::Q8`] needs `dim` a multiple of 32).
    pub fn encode_as(format: VectorFormat, dim: usize, candidates: &[f32], questions: &[f32]) -> Vec<u8> {
        assert!(
            dim > 0 && candidates.len().is_multiple_of(dim) && questions.len().is_multiple_of(dim),
            "rows of width {dim}"
        );
        assert!(format != VectorFormat::Q8 || dim.is_multiple_of(Q8_BLOCK), "q8_0 rows of width {dim}");
        let values = candidates.len() + questions.len();
        let mut out = Vec::with_capacity(HEADER + 2 * values);
        out.extend_from_slice(MAGIC);
        for v in [format.version(), dim as u32, (candidates.len() / dim) as u32, (questions.len() / dim) as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        match format {
            VectorFormat::F16 => {
                for &x in candidates.iter().chain(questions) {
                    out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
                }
            }
            VectorFormat::Q8 => {
                for block in candidates.chunks_exact(Q8_BLOCK).chain(questions.chunks_exact(Q8_BLOCK)) {
                    // A non-finite value makes the block's scale NaN, which decoding refuses.
                    let amax = match block.iter().all(|x| x.is_finite()) {
                        true => block.iter().fold(0f32, |m, x| m.max(x.abs())),
                        false => f32::NAN,
                    };
                    let d = f16::from_f32(amax / 127.0);
                    let inv = if d.to_f32() > 0.0 { 1.0 / d.to_f32() } else { 0.0 };
                    out.extend_from_slice(&d.to_le_bytes());
                    out.extend(block.iter().map(|&x| (x * inv).round().clamp(-127.0, 127.0) as i8 as u8));
                }
            }
            VectorFormat::I8 => {
                let rows: Vec<&[f32]> = candidates.chunks_exact(dim).chain(questions.chunks_exact(dim)).collect();
                // A non-finite value makes its row's scale NaN (`f32::max` would skip a NaN), so
                // decoding refuses the row instead of reading zeros.
                let scale = |r: &[f32]| match r.iter().all(|x| x.is_finite()) {
                    true => r.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0,
                    false => f32::NAN,
                };
                let scales: Vec<f32> = rows.iter().map(|r| scale(r)).collect();
                for s in &scales {
                    out.extend_from_slice(&s.to_le_bytes());
                }
                for (row, &scale) in rows.iter().zip(&scales) {
                    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                    out.extend(row.iter().map(|&x| (x * inv).round().clamp(-127.0, 127.0) as i8 as u8));
                }
            }
        }
        out
    }

    /// The format of an encoded file, from its header.
    pub fn format_of(bytes: &[u8]) -> Result<VectorFormat, DemoError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(DemoError::Vectors("not an mlr vector file (no MLRV header)".into()));
        }
        match u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) {
            1 => Ok(VectorFormat::F16),
            2 => Ok(VectorFormat::I8),
            3 => Ok(VectorFormat::Q8),
            v => Err(DemoError::Vectors(format!("version {v} (this build reads 1: f16, 2: int8, 3: q8_0)"))),
        }
    }

    /// Decodes a file; a wrong magic, version or length is an error saying which.
    pub fn decode(bytes: &[u8]) -> Result<Self, DemoError> {
        let format = Self::format_of(bytes)?;
        let word = |i: usize| u32::from_le_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize;
        let (dim, nc, nq) = (word(1), word(2), word(3));
        if dim == 0 {
            return Err(DemoError::Vectors("dimension 0".into()));
        }
        // Checked at every step: on wasm32 a usize is 32 bits, and the counts come from the file.
        let rows = nc.checked_add(nq);
        let want = match format {
            VectorFormat::F16 => rows.and_then(|n| n.checked_mul(dim)).and_then(|n| n.checked_mul(2)),
            VectorFormat::I8 => rows.and_then(|n| n.checked_mul(dim).and_then(|v| v.checked_add(n.checked_mul(4)?))),
            VectorFormat::Q8 if !dim.is_multiple_of(Q8_BLOCK) => {
                return Err(DemoError::Vectors(format!("q8_0 rows of width {dim}, not a multiple of {Q8_BLOCK}")))
            }
            VectorFormat::Q8 => rows.and_then(|n| n.checked_mul(dim / Q8_BLOCK)).and_then(|b| b.checked_mul(34)),
        }
        .and_then(|n| n.checked_add(HEADER));
        if want != Some(bytes.len()) {
            return Err(DemoError::Vectors(format!(
                "{} bytes, but {nc} candidates + {nq} questions of dimension {dim} need {}",
                bytes.len(),
                want.map_or("more than fit in memory".into(), |n| n.to_string())
            )));
        }
        let body = &bytes[HEADER..];
        let mut candidates: Vec<f32> = match format {
            VectorFormat::F16 => body.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            VectorFormat::Q8 => body
                .chunks_exact(2 + Q8_BLOCK)
                .flat_map(|b| {
                    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    b[2..].iter().map(move |&q| q as i8 as f32 * d)
                })
                .collect(),
            VectorFormat::I8 => {
                let (scales, values) = body.split_at(4 * (nc + nq));
                let scales = scales.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")));
                values
                    .chunks_exact(dim)
                    .zip(scales)
                    .flat_map(|(row, s)| row.iter().map(move |&q| q as i8 as f32 * s))
                    .collect()
            }
        };
        // A NaN row would rank first against every query.
        if let Some(i) = candidates.iter().position(|x| !x.is_finite()) {
            let (what, row) = if i < nc * dim { ("candidate", i / dim) } else { ("question", i / dim - nc) };
            return Err(DemoError::Vectors(format!(
                "{what} {row} has a non-finite value ({}) at dimension {}",
                candidates[i],
                i % dim
            )));
        }
        let questions = candidates.split_off(nc * dim);
        Ok(Self { dim, candidates, questions })
    }

    /// Checks that the file fits a model of width `model_dim` and a corpus of `n_candidates` and
    /// `n_questions` (scoring a query of another width would be meaningless, or out of bounds).
    pub fn check_fits(&self, model_dim: usize, n_candidates: usize, n_questions: usize) -> Result<(), DemoError> {
        if self.dim != model_dim {
            return Err(DemoError::Mismatch(format!(
                "the vectors are {} wide, the model's {model_dim}: they were not made with this model",
                self.dim
            )));
        }
        if self.n_candidates() != n_candidates || self.n_questions() != n_questions {
            return Err(DemoError::Mismatch(format!(
                "the vectors hold {} candidates and {} questions, the corpus {n_candidates} and {n_questions}",
                self.n_candidates(),
                self.n_questions()
            )));
        }
        Ok(())
    }
}

/// Where each candidate and question of the full set sits in a [`VectorFile`], to gather the
/// vectors of any subset of it (fewer languages, one split, the first N questions).
#[derive(Debug, Clone)]
pub struct Rows {
    candidate: HashMap<String, usize>,
    question: HashMap<(String, String), usize>,
}

impl Rows {
    /// Indexes `full`, the set the file was written for (all its languages, every article).
    pub fn new(full: &LareqaSet, file: &VectorFile) -> Result<Self, DemoError> {
        if file.n_candidates() != full.candidates.len() || file.n_questions() != full.questions.len() {
            return Err(DemoError::Mismatch(format!(
                "the vectors hold {} candidates and {} questions, the dataset {} and {}",
                file.n_candidates(),
                file.n_questions(),
                full.candidates.len(),
                full.questions.len()
            )));
        }
        let candidate = full.candidates.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let question =
            full.questions.iter().enumerate().map(|(i, q)| ((full.langs[q.lang].clone(), q.id.clone()), i)).collect();
        Ok(Self { candidate, question })
    }

    /// The candidate vectors of `set` and the question vectors of `index` (built from `set`),
    /// row-major, ready for `mlr_eval::lareqa::LareqaInput::from_index`.
    pub fn gather(
        &self,
        file: &VectorFile,
        set: &LareqaSet,
        index: &EvalIndex,
    ) -> Result<(Vec<f32>, Vec<f32>), DemoError> {
        let mut cands = Vec::with_capacity(set.candidates.len() * file.dim);
        for c in &set.candidates {
            let row = self
                .candidate
                .get(&c.id)
                .ok_or_else(|| DemoError::Mismatch(format!("candidate {} has no vector", c.id)))?;
            cands.extend_from_slice(file.candidate(*row));
        }
        let mut queries = Vec::with_capacity(index.questions.len() * file.dim);
        for (&lang, id) in index.query_lang.iter().zip(&index.question_ids) {
            let key = (index.langs[lang].clone(), id.clone());
            let row = self
                .question
                .get(&key)
                .ok_or_else(|| DemoError::Mismatch(format!("question {} ({}) has no vector", key.1, key.0)))?;
            queries.extend_from_slice(file.question(*row));
        }
        Ok((cands, queries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rounds_to_f16_and_checks_lengths() {
        let c = [0.5f32, -0.25, 0.1, 1.0];
        let q = [0.3f32, 0.7];
        let bytes = VectorFile::encode(2, &c, &q);
        assert_eq!(bytes.len(), 20 + 6 * 2);
        let f = VectorFile::decode(&bytes).unwrap();
        assert_eq!((f.dim, f.n_candidates(), f.n_questions()), (2, 2, 1));
        assert_eq!(f.candidate(0), &[0.5, -0.25]);
        // 0.1 is not a half float: the nearest one is 0.0999755859375.
        assert_eq!(f.candidate(1)[0], 0.099975586);
        assert!((f.question(0)[1] - 0.7).abs() < 4e-4);
        let err = VectorFile::decode(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("31 bytes, but 2 candidates + 1 questions of dimension 2 need 32"), "{err}");
        assert!(VectorFile::decode(b"NOPE").unwrap_err().to_string().contains("no MLRV header"));
    }

    #[test]
    fn int8_rows_keep_every_value_within_half_a_step_of_its_row() {
        let c: Vec<f32> = (0..8).map(|i| ((i as f32) * 0.9).cos() * 0.4).collect();
        let q = [0.0f32, 0.0, 0.0, 0.0];
        let bytes = VectorFile::encode_as(VectorFormat::I8, 4, &c, &q);
        assert_eq!(bytes.len(), 20 + 3 * 4 + 12);
        assert_eq!(VectorFile::format_of(&bytes).unwrap(), VectorFormat::I8);
        let f = VectorFile::decode(&bytes).unwrap();
        assert_eq!((f.dim, f.n_candidates(), f.n_questions()), (4, 2, 1));
        for (row, back) in c.chunks(4).zip(f.candidates.chunks(4)) {
            let step = row.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            // The largest value is exact up to f32 rounding; the rest within half a step.
            for (a, b) in row.iter().zip(back) {
                assert!((a - b).abs() <= 0.5 * step + 1e-7, "{a} vs {b}");
            }
        }
        assert_eq!(f.question(0), &[0.0; 4]);
        for bad in [f32::NAN, f32::INFINITY] {
            let err = VectorFile::decode(&VectorFile::encode_as(VectorFormat::I8, 2, &[0.6, 0.8], &[bad, 0.0]));
            assert!(err.unwrap_err().to_string().starts_with("vector file: question 0 has a non-finite value"));
        }
        let err = VectorFile::decode(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("2 candidates + 1 questions of dimension 4 need 44"), "{err}");
        let mut v9 = bytes.clone();
        v9[4] = 9;
        assert!(VectorFile::decode(&v9).unwrap_err().to_string().contains("version 9"));
    }

    #[test]
    fn q8_0_rows_keep_every_value_within_half_a_step_of_its_block() {
        let c: Vec<f32> = (0..128).map(|i| ((i as f32) * 0.37).sin() * if i == 5 { 0.9 } else { 0.05 }).collect();
        let q = vec![0.0f32; 64];
        let bytes = VectorFile::encode_as(VectorFormat::Q8, 64, &c, &q);
        assert_eq!(bytes.len(), 20 + 3 * 2 * 34);
        let f = VectorFile::decode(&bytes).unwrap();
        assert_eq!(
            (f.dim, f.n_candidates(), f.n_questions(), VectorFile::format_of(&bytes).unwrap()),
            (64, 2, 1, VectorFormat::Q8)
        );
        for (block, back) in c.chunks(32).zip(f.candidates.chunks(32)) {
            let step = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
            for (a, b) in block.iter().zip(back) {
                assert!((a - b).abs() <= 0.5 * step * 1.01 + 1e-7, "{a} vs {b}");
            }
        }
        // The outlier at 5 coarsens only its own block, not the row.
        let first = (c[..32].iter().zip(&f.candidates[..32])).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let second = (c[32..64].iter().zip(&f.candidates[32..64])).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(second * 5.0 < first, "{second} vs {first}");
        let err = VectorFile::decode(&VectorFile::encode_as(VectorFormat::Q8, 32, &[f32::NAN; 32], &[]));
        assert!(err.unwrap_err().to_string().starts_with("vector file: candidate 0 has a non-finite value"));
        let err = VectorFile::decode(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(err.contains("need 224"), "{err}");
    }

    #[test]
    fn non_finite_rows_and_overflowing_counts_are_refused() {
        for bad in [f32::NAN, f32::INFINITY, 1e6] {
            // 1e6 overflows f16 to infinity.
            let err = VectorFile::decode(&VectorFile::encode(2, &[0.5, 0.5, 0.6, 0.8], &[0.0, bad])).unwrap_err();
            assert!(err.to_string().starts_with("vector file: question 0 has a non-finite value"), "{bad}: {err}");
        }
        let err = VectorFile::decode(&VectorFile::encode(2, &[0.5, f32::NAN], &[])).unwrap_err().to_string();
        assert_eq!(err, "vector file: candidate 0 has a non-finite value (NaN) at dimension 1");
        // Counts whose sum overflows 32 bits (wasm32) are an error, not a wrap-around.
        let mut bytes = VectorFile::encode(1, &[1.0], &[]);
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = VectorFile::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("4294967295 candidates + 4294967295 questions of dimension 1 need"), "{err}");
    }

    #[test]
    fn vectors_of_another_width_or_corpus_do_not_fit() {
        let f = VectorFile::decode(&VectorFile::encode(2, &[0.6, 0.8, 1.0, 0.0], &[0.0, 1.0])).unwrap();
        assert!(f.check_fits(2, 2, 1).is_ok());
        let err = f.check_fits(384, 2, 1).unwrap_err().to_string();
        assert_eq!(err, "the vectors are 2 wide, the model's 384: they were not made with this model");
        let err = f.check_fits(2, 3, 1).unwrap_err().to_string();
        assert_eq!(err, "the vectors hold 2 candidates and 1 questions, the corpus 3 and 1");
    }
}
