//! A word-embedding table kept outside the model: block-quantised rows in pieces, fetched and
//! decoded only as the texts being encoded need them.
//!
//! multilingual-e5-small's table is 96 M of its 118 M values (250,037 rows of 384): in Q4_0 it
//! is 54 MB, most of the web demo's download, while a query reads a few dozen rows. So
//! `mlr demo build` writes the table as pieces of [`WordsLayout::rows_per_piece`] consecutive
//! rows (XLM-R's ids run roughly from frequent to rare, so the first pieces serve most text), the
//! weights file records the layout under the metadata key [`WORDS_KEY`], and the page fetches a
//! piece when a text needs one of its rows. A piece is the raw blocks of its rows, row-major;
//! each is checked against the sha256 the layout gives before it is used.
//!
//! [`WordTable::gather`] decodes the rows of a batch's ids; the model runs from them
//! ([`mlr_model::BertModel::forward_words`]). Pieces are added through a shared reference, so
//! two models (a base and a model fine-tuned with its table frozen) share one table.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::quant::{Quant, BLOCK};
use crate::WeightsError;

/// Metadata key of a weights file whose word table is kept in pieces: a JSON [`WordsLayout`].
pub const WORDS_KEY: &str = "mlr.words";

/// Where and how a word table's pieces are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordsLayout {
    /// [`Quant::name`] of the blocks.
    pub format: String,
    /// Rows of the table (`vocab_size`).
    pub rows: usize,
    /// Values per row (`hidden_size`), a multiple of 32.
    pub hidden: usize,
    /// Rows per piece (the last piece may have fewer).
    pub rows_per_piece: usize,
    /// Each piece's file, relative to the weights file's directory.
    pub files: Vec<String>,
    /// Each piece's sha256 (lower-case hex).
    pub sha256: Vec<String>,
}

impl WordsLayout {
    /// Rows of piece `i`.
    pub fn piece_rows(&self, i: usize) -> usize {
        self.rows.saturating_sub(i * self.rows_per_piece).min(self.rows_per_piece)
    }

    /// The size piece `i` must have.
    pub fn piece_bytes(&self, i: usize, quant: Quant) -> usize {
        self.piece_rows(i) * self.hidden / BLOCK * quant.block_bytes()
    }

    fn check(&self) -> Result<Quant, WeightsError> {
        let bad = |m: String| Err(WeightsError::Format(format!("metadata `{WORDS_KEY}`: {m}")));
        let Some(quant) = Quant::from_name(&self.format) else {
            return bad(format!("unknown format {:?} (q4_0, q8_0)", self.format));
        };
        if self.hidden == 0 || !self.hidden.is_multiple_of(BLOCK) || self.rows == 0 || self.rows_per_piece == 0 {
            return bad(format!(
                "rows {}, hidden {} (a multiple of {BLOCK}), rows per piece {}",
                self.rows, self.hidden, self.rows_per_piece
            ));
        }
        let pieces = self.rows.div_ceil(self.rows_per_piece);
        if self.files.len() != pieces || self.sha256.len() != pieces {
            return bad(format!(
                "{} rows in pieces of {} make {pieces} pieces, but {} files and {} checksums are listed",
                self.rows,
                self.rows_per_piece,
                self.files.len(),
                self.sha256.len()
            ));
        }
        Ok(quant)
    }

    /// Splits a whole table's blocks (row-major, `rows × hidden` values) into pieces.
    pub fn split(
        quant: Quant,
        rows: usize,
        hidden: usize,
        blocks: &[u8],
        rows_per_piece: usize,
        file_name: impl Fn(usize) -> String,
    ) -> (Self, Vec<Vec<u8>>) {
        let row_bytes = hidden / BLOCK * quant.block_bytes();
        assert_eq!(blocks.len(), rows * row_bytes, "whole rows of blocks");
        let pieces: Vec<Vec<u8>> = blocks.chunks(rows_per_piece * row_bytes).map(<[u8]>::to_vec).collect();
        let layout = Self {
            format: quant.name().to_string(),
            rows,
            hidden,
            rows_per_piece,
            files: (0..pieces.len()).map(file_name).collect(),
            sha256: pieces.iter().map(|p| crate::sha256_hex(p)).collect(),
        };
        (layout, pieces)
    }
}

/// Why rows could not be looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    /// The rows live in pieces that have not been added yet.
    #[error("the word table's pieces {0:?} are not loaded")]
    Missing(Vec<usize>),
    /// An id beyond the table.
    #[error("token id {id} is beyond the word table's {rows} rows")]
    OutOfRange {
        /// The id.
        id: u32,
        /// Rows of the table.
        rows: usize,
    },
}

/// A word table in pieces, some of which may not be loaded yet.
#[derive(Debug)]
pub struct WordTable {
    layout: WordsLayout,
    quant: Quant,
    pieces: Mutex<Vec<Option<Arc<Vec<u8>>>>>,
}

impl WordTable {
    /// An empty table of `layout` (no piece loaded).
    pub fn new(layout: WordsLayout) -> Result<Self, WeightsError> {
        let quant = layout.check()?;
        let n = layout.files.len();
        Ok(Self { layout, quant, pieces: Mutex::new(vec![None; n]) })
    }

    /// Its layout.
    pub fn layout(&self) -> &WordsLayout {
        &self.layout
    }

    /// The piece holding row `id`.
    pub fn piece_of(&self, id: u32) -> usize {
        id as usize / self.layout.rows_per_piece
    }

    /// Adds piece `i` after checking its size and sha256 (and that every scale is finite).
    pub fn insert(&self, i: usize, bytes: Vec<u8>) -> Result<(), WeightsError> {
        let name = self.layout.files.get(i).ok_or_else(|| {
            WeightsError::Format(format!("word table piece {i}: the table has {} pieces", self.layout.files.len()))
        })?;
        let want = self.layout.piece_bytes(i, self.quant);
        if bytes.len() != want {
            return Err(WeightsError::Format(format!("{name}: {} bytes, the layout says {want}", bytes.len())));
        }
        let sha = crate::sha256_hex(&bytes);
        if sha != self.layout.sha256[i] {
            return Err(WeightsError::Format(format!(
                "{name}: sha256 {sha}, the layout says {}",
                self.layout.sha256[i]
            )));
        }
        for (b, block) in bytes.chunks_exact(self.quant.block_bytes()).enumerate() {
            if !half::f16::from_le_bytes([block[0], block[1]]).is_finite() {
                return Err(WeightsError::Format(format!("{name}: block {b} has a non-finite scale")));
            }
        }
        self.lock()[i] = Some(Arc::new(bytes));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<Vec<u8>>>>> {
        // A panic while holding the lock cannot leave a piece half-written (pieces are swapped in
        // whole), so a poisoned lock is still consistent.
        self.pieces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pieces `ids` need that are not loaded, in order, each once.
    pub fn missing(&self, ids: &[u32]) -> Vec<usize> {
        let pieces = self.lock();
        let mut out: Vec<usize> =
            ids.iter().map(|&id| self.piece_of(id)).filter(|&p| pieces.get(p).is_some_and(Option::is_none)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether every piece is loaded.
    pub fn is_complete(&self) -> bool {
        self.lock().iter().all(Option::is_some)
    }

    /// The rows of `ids`, decoded to f32, row-major (`ids.len() × hidden`).
    pub fn gather(&self, ids: &[u32]) -> Result<Vec<f32>, WordsError> {
        let rows = self.layout.rows;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= rows) {
            return Err(WordsError::OutOfRange { id, rows });
        }
        let missing = self.missing(ids);
        if !missing.is_empty() {
            return Err(WordsError::Missing(missing));
        }
        let pieces = self.lock();
        let row_bytes = self.layout.hidden / BLOCK * self.quant.block_bytes();
        let mut out = Vec::with_capacity(ids.len() * self.layout.hidden);
        for &id in ids {
            let piece = pieces[self.piece_of(id)].as_ref().expect("checked above");
            let local = id as usize % self.layout.rows_per_piece;
            let row = &piece[local * row_bytes..(local + 1) * row_bytes];
            out.extend(self.quant.decode(row).expect("whole blocks"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, hidden: usize, rows_per_piece: usize) -> (Vec<f32>, WordsLayout, Vec<Vec<u8>>) {
        let values: Vec<f32> = (0..rows * hidden).map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0).collect();
        let values = Quant::Q4_0.decode(&Quant::Q4_0.encode(&values)).unwrap();
        let blocks = Quant::Q4_0.encode(&values);
        let (layout, pieces) =
            WordsLayout::split(Quant::Q4_0, rows, hidden, &blocks, rows_per_piece, |i| format!("words-{i:03}.q4_0"));
        (values, layout, pieces)
    }

    #[test]
    fn rows_come_back_exactly_once_their_pieces_are_in() {
        let (values, layout, pieces) = table(10, 64, 4);
        assert_eq!(pieces.len(), 3);
        assert_eq!((layout.piece_rows(2), layout.piece_bytes(2, Quant::Q4_0)), (2, 2 * 2 * 18));
        let t = WordTable::new(layout).unwrap();
        assert_eq!(t.missing(&[9, 0, 1, 9]), vec![0, 2]);
        assert_eq!(t.gather(&[1]).unwrap_err(), WordsError::Missing(vec![0]));
        t.insert(0, pieces[0].clone()).unwrap();
        t.insert(2, pieces[2].clone()).unwrap();
        assert!(!t.is_complete());
        let got = t.gather(&[9, 0, 1]).unwrap();
        let row = |r: usize| &values[r * 64..(r + 1) * 64];
        assert_eq!(got, [row(9), row(0), row(1)].concat());
        assert_eq!(t.gather(&[10]).unwrap_err(), WordsError::OutOfRange { id: 10, rows: 10 });
        assert_eq!(t.gather(&[5]).unwrap_err(), WordsError::Missing(vec![1]));
    }

    #[test]
    fn a_damaged_or_misplaced_piece_is_refused() {
        let (_, layout, pieces) = table(10, 64, 4);
        let t = WordTable::new(layout.clone()).unwrap();
        let err = t.insert(1, pieces[0].clone()).unwrap_err().to_string();
        assert!(err.contains("words-001.q4_0") && err.contains("sha256"), "{err}");
        let err = t.insert(2, pieces[0].clone()).unwrap_err().to_string();
        assert!(err.contains("words-002.q4_0: 144 bytes, the layout says 72"), "{err}");
        assert!(t.insert(3, pieces[0].clone()).is_err());
        let mut nan = pieces[0].clone();
        nan[0..2].copy_from_slice(&half::f16::NAN.to_le_bytes());
        let mut bad_layout = layout.clone();
        bad_layout.sha256[0] = crate::sha256_hex(&nan);
        let err = WordTable::new(bad_layout).unwrap().insert(0, nan).unwrap_err().to_string();
        assert!(err.contains("block 0 has a non-finite scale"), "{err}");
        let mut short = layout;
        short.files.pop();
        assert!(WordTable::new(short).unwrap_err().to_string().contains("make 3 pieces, but 2 files"));
    }
}
