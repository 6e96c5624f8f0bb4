//! Encoding a corpus into a store: resumable, and split across machines by shard.
//!
//! [`encode`] streams the corpus, cuts it into shards of `shard_size` passages and, for every shard
//! its [`Slice`] owns, calls the encoder on batches of `batch_size` texts.
//!
//! - **Journal.** Each batch's vectors and docids are appended to `shard-NNNNN.<ext>.partial` and
//!   `shard-NNNNN.docids.partial` and fsynced before the next batch is encoded; a finished shard is
//!   renamed into place (`crate::store`). After Ctrl-C, a crash or an encoder error, the next run
//!   with the same arguments skips finished shards, keeps every journaled batch (a torn last write
//!   is cut back to the last whole row present in both files) and encodes only what is missing:
//!   at most the batch in flight is lost. Batches start at the same offsets within a shard as in an
//!   uninterrupted run, so with a deterministic encoder and the same batch size the files are byte
//!   for byte those of an uninterrupted run.
//! - **Checks while resuming.** The docids of finished shards and of journals are compared with the
//!   corpus as it streams past; any difference is an error ([`StoreError::CorpusChanged`]), never a
//!   silent mix of two corpora. The manifest must match the model, corpus fingerprint, dim, dtype and
//!   shard size ([`StoreError::Mismatch`]).
//! - **Slices.** `Slice { index: i, count: n }` (`--shard i/n`) owns shards `i, i + n, i + 2n, …`:
//!   round-robin needs no passage count up front (contiguous ranges would, and the count costs a pass
//!   over the corpus), and gives every slice the same share of shards, ±1. Each slice still reads the
//!   whole corpus (parsing JSON lines is far faster than encoding them) and, at its end, records the
//!   total in its manifest; `crate::merge` then combines the n directories. A directory may be run
//!   again with another slice, or none: it encodes only the shards it lacks.
//! - **Encoder output.** One vector of length `dim` per text, every value finite, and still finite
//!   once stored (f16 overflows above 65504); else [`StoreError::EncoderOutput`] names the docid.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use crate::corpus::Corpus;
use crate::store::{
    check_sizes, docid_lines, docids_path, finished_rows, io_error, lock_dir, partial_path, sync_dir, vectors_path,
    Dtype, Manifest, StoreError, StoreSpec,
};

/// Which shards a run encodes: `index` of `count` (0-based), owning shards `index + j·count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// 0-based slice index, `< count`.
    pub index: usize,
    /// Number of slices (machines), ≥ 1.
    pub count: usize,
}

impl Slice {
    /// The whole store on one machine.
    pub const ALL: Slice = Slice { index: 0, count: 1 };

    /// Whether shard `shard` belongs to this slice.
    pub fn owns(&self, shard: u64) -> bool {
        shard % self.count as u64 == self.index as u64
    }
}

impl FromStr for Slice {
    type Err = String;

    /// Parses `i/n` (0-based `i < n`).
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Slice { index, count }),
            _ => Err(format!("shard slice {s:?} is not `i/n` with 0 ≤ i < n")),
        }
    }
}

impl std::fmt::Display for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Texts per encoder call.
    pub batch_size: usize,
    /// Which shards to encode.
    pub slice: Slice,
}

/// Where an encoding is, given to the progress callback after every batch and every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Passages of this slice's shards that are stored (by this run or an earlier one).
    pub done: u64,
    /// Of those, passages encoded by this run (the rate's numerator).
    pub encoded: u64,
    /// Passages of the corpus read so far (all slices).
    pub read: u64,
    /// Passages in the corpus, if an earlier run read it to the end.
    pub total: Option<u64>,
    /// Corpus bytes read (compressed for gzip) and their total: a fraction known from the start.
    pub bytes_read: u64,
    /// Total corpus bytes.
    pub bytes_total: u64,
}

impl Progress {
    /// The fraction of the corpus read, in [0, 1]: by passages once the total is known, else by
    /// bytes. Slices own shards round-robin, so it is also about the fraction of a slice's work; an
    /// ETA is `elapsed · (1 − f) / f` (over this run's part, as earlier runs' shards are skipped fast).
    pub fn fraction(&self) -> f64 {
        match self.total {
            Some(total) if total > 0 => (self.read as f64 / total as f64).min(1.0),
            _ if self.bytes_total > 0 => (self.bytes_read as f64 / self.bytes_total as f64).min(1.0),
            _ => 0.0,
        }
    }
}

/// What an encoding did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeSummary {
    /// Passages in the corpus.
    pub total_passages: u64,
    /// Shards of the whole store.
    pub shards: u64,
    /// Passages this run encoded.
    pub encoded: u64,
    /// Passages of this slice found already stored (finished shards and journals).
    pub reused: u64,
    /// Passages left to other slices.
    pub other_slices: u64,
    /// Encoder calls this run made.
    pub calls: u64,
    /// Passages with empty text (see `crate::corpus::CorpusStats::empty_text`).
    pub empty_text: u64,
}

/// Opens (creating if needed) store `dir` for `spec` over `corpus`: a new directory gets a manifest,
/// an existing one must match. The caller holds the store's lock.
fn open_store(dir: &Path, spec: &StoreSpec, corpus: &str) -> Result<Manifest, StoreError> {
    match Manifest::read(dir)? {
        Some(m) => {
            m.check(dir, spec, corpus)?;
            Ok(m)
        }
        None => {
            let m = Manifest::new(spec, corpus);
            m.write(dir)?;
            Ok(m)
        }
    }
}

fn check_docids(path: &Path, stored: &[&str], corpus: &[String]) -> Result<(), StoreError> {
    for (row, (s, c)) in stored.iter().zip(corpus).enumerate() {
        if *s != c.as_str() {
            return Err(StoreError::CorpusChanged {
                path: path.to_path_buf(),
                row,
                stored: s.to_string(),
                corpus: c.clone(),
            });
        }
    }
    if stored.len() > corpus.len() {
        let (row, stored) = (corpus.len(), stored[corpus.len()].to_string());
        return Err(StoreError::CorpusChanged { path: path.to_path_buf(), row, stored, corpus: "(the end)".into() });
    }
    Ok(())
}

/// Rows of a shard's journal, cut back to whole rows present in both files and checked against the
/// corpus's docids.
fn resume_journal(vectors: &Path, ids: &Path, row_bytes: usize, docids: &[String]) -> Result<usize, StoreError> {
    let (jv, ji) = (partial_path(vectors), partial_path(ids));
    // A crash between the two final renames leaves the vectors final and the docids journaled.
    if vectors.exists() && !jv.exists() {
        std::fs::rename(vectors, &jv).map_err(io_error(vectors))?;
    }
    let id_bytes = match std::fs::read(&ji) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(StoreError::Io { path: ji, source }),
    };
    let vector_len = match std::fs::metadata(&jv) {
        Ok(m) => m.len() as usize,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => return Err(StoreError::Io { path: jv, source }),
    };
    // Whole lines only: a torn last line is dropped.
    let whole = id_bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines = docid_lines(&id_bytes[..whole], &ji)?;
    let rows = (lines.len() - 1).min(vector_len / row_bytes).min(docids.len());
    let text = std::str::from_utf8(&id_bytes[..lines[rows]]).unwrap_or_default();
    let stored: Vec<&str> = text.lines().collect();
    check_docids(&ji, &stored, docids)?;
    for (path, len) in [(&jv, rows * row_bytes), (&ji, lines[rows])] {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io_error(path))?;
        file.set_len(len as u64).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))?;
    }
    Ok(rows)
}

fn append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new().append(true).open(path).map_err(io_error(path))
}

/// Encodes shard `shard` (passages `docids`/`texts`) through its journal, resuming what an earlier
/// run left; returns the rows found journaled. `on_batch` gets each stored batch's size.
#[allow(clippy::too_many_arguments)]
fn encode_shard<F, E>(
    dir: &Path,
    shard: u64,
    spec: &StoreSpec,
    batch_size: usize,
    docids: &[String],
    texts: &[String],
    encoder: &mut F,
    on_batch: &mut dyn FnMut(usize),
) -> Result<usize, StoreError>
where
    F: FnMut(&[String]) -> Result<Vec<Vec<f32>>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (dim, dtype) = (spec.dim, spec.dtype);
    let row_bytes = dtype.row_bytes(dim);
    let (vectors, ids) = (vectors_path(dir, shard, dtype), docids_path(dir, shard));
    let reused = resume_journal(&vectors, &ids, row_bytes, docids)?;
    let (jv, ji) = (partial_path(&vectors), partial_path(&ids));
    let (mut fv, mut fi) = (append(&jv)?, append(&ji)?);
    let mut start = reused;
    while start < docids.len() {
        let end = (start + batch_size).min(docids.len());
        let batch = &texts[start..end];
        let out = encoder(batch).map_err(|e| StoreError::Encoder {
            shard,
            docid: docids[start].clone(),
            source: e.into(),
        })?;
        if out.len() != batch.len() {
            return Err(StoreError::EncoderOutput {
                docid: docids[start].clone(),
                message: format!("{} vectors for a batch of {} texts starting here", out.len(), batch.len()),
            });
        }
        let mut bytes = Vec::with_capacity(batch.len() * row_bytes);
        let mut lines = String::new();
        for (v, docid) in out.iter().zip(&docids[start..end]) {
            let bad = |message: String| StoreError::EncoderOutput { docid: docid.clone(), message };
            if v.len() != dim {
                return Err(bad(format!("dimension {}, the store's is {dim}", v.len())));
            }
            if let Some(d) = v.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!("value {} at dimension {d} is not finite", v[d])));
            }
            if dtype == Dtype::F16 {
                if let Some(d) = v.iter().position(|x| !half::f16::from_f32(*x).is_finite()) {
                    return Err(bad(format!("value {} at dimension {d} overflows f16", v[d])));
                }
            }
            dtype.encode_row(v, &mut bytes);
            lines.push_str(docid);
            lines.push('\n');
        }
        // Vectors before docids, both synced before the next batch: a crash leaves at worst a torn
        // tail, which the next run cuts back (resume_journal).
        fv.write_all(&bytes).map_err(io_error(&jv))?;
        fi.write_all(lines.as_bytes()).map_err(io_error(&ji))?;
        fv.sync_data().map_err(io_error(&jv))?;
        fi.sync_data().map_err(io_error(&ji))?;
        start = end;
        on_batch(batch.len());
    }
    drop((fv, fi));
    // The directory is synced between the renames too, so that no filesystem can keep the final
    // docids (which mark a shard finished) while losing the rename of its vectors.
    std::fs::rename(&jv, &vectors).map_err(io_error(&vectors))?;
    sync_dir(dir)?;
    std::fs::rename(&ji, &ids).map_err(io_error(&ids))?;
    sync_dir(dir)?;
    Ok(reused)
}

/// Encodes the slice `options.slice` of `corpus` into store `dir` (see the module docs), calling
/// `encoder` on batches of passage texts and `progress` after every batch and skipped shard.
pub fn encode<F, E, P>(
    dir: &Path,
    corpus: &Corpus,
    spec: &StoreSpec,
    options: &EncodeOptions,
    mut encoder: F,
    mut progress: P,
) -> Result<EncodeSummary, StoreError>
where
    F: FnMut(&[String]) -> Result<Vec<Vec<f32>>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    P: FnMut(&Progress),
{
    if options.batch_size == 0 {
        return Err(StoreError::Invalid("the batch size must be positive".into()));
    }
    check_sizes(spec.dim, spec.shard_size).map_err(StoreError::Invalid)?;
    if options.slice.count == 0 || options.slice.index >= options.slice.count {
        return Err(StoreError::Invalid(format!("shard slice {} is not i/n with 0 ≤ i < n", options.slice)));
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let _lock = lock_dir(dir)?;
    let mut manifest = open_store(dir, spec, &corpus.fingerprint)?;
    let mut reader = corpus.passages();
    let mut summary = EncodeSummary::default();
    let mut state = Progress { total: manifest.total_passages, bytes_total: corpus.bytes(), ..Default::default() };
    let mut report = |state: &mut Progress, reader: &crate::corpus::CorpusReader| {
        let stats = reader.stats();
        (state.read, state.bytes_read) = (stats.passages, stats.bytes_read);
        progress(state);
    };
    let mut shard = 0u64;
    loop {
        let chunk = reader.next_chunk(spec.shard_size)?;
        if chunk.is_empty() {
            break;
        }
        let (docids, texts): (Vec<String>, Vec<String>) = chunk.into_iter().map(|p| (p.docid, p.text)).unzip();
        if !options.slice.owns(shard) {
            summary.other_slices += docids.len() as u64;
        } else if let Some(rows) = finished_rows(dir, &manifest, shard)? {
            let ids = docids_path(dir, shard);
            let bytes = std::fs::read(&ids).map_err(io_error(&ids))?;
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            check_docids(&ids, &text.lines().collect::<Vec<_>>(), &docids)?;
            if rows != docids.len() {
                return Err(StoreError::CorpusChanged {
                    path: ids.clone(),
                    row: rows,
                    stored: "(the end)".into(),
                    corpus: docids[rows].clone(),
                });
            }
            summary.reused += rows as u64;
            state.done += rows as u64;
        } else {
            let mut on_batch = |n: usize| {
                (summary.encoded, summary.calls) = (summary.encoded + n as u64, summary.calls + 1);
                (state.done, state.encoded) = (state.done + n as u64, state.encoded + n as u64);
                report(&mut state, &reader);
            };
            let reused =
                encode_shard(dir, shard, spec, options.batch_size, &docids, &texts, &mut encoder, &mut on_batch)?;
            summary.reused += reused as u64;
            state.done += reused as u64;
        }
        report(&mut state, &reader);
        shard += 1;
    }
    let stats = reader.stats();
    if stats.passages == 0 {
        return Err(StoreError::Invalid("the corpus has no passages".into()));
    }
    let shards = stats.passages.div_ceil(spec.shard_size as u64);
    match manifest.total_passages {
        Some(total) if total != stats.passages => {
            return Err(StoreError::Manifest {
                path: dir.join("manifest.json"),
                message: format!("total_passages is {total} but the corpus has {}", stats.passages),
            })
        }
        Some(_) => {}
        None => {
            (manifest.total_passages, manifest.shards) = (Some(stats.passages), Some(shards));
            manifest.write(dir)?;
        }
    }
    summary.total_passages = stats.passages;
    summary.shards = shards;
    summary.empty_text = stats.empty_text;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_parse_and_own_round_robin() {
        let s: Slice = "1/3".parse().unwrap();
        assert_eq!(s, Slice { index: 1, count: 3 });
        assert_eq!((0..7).filter(|&k| s.owns(k)).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(s.to_string(), "1/3");
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Slice>().is_err(), "{bad}");
        }
        assert!((0..5).all(|k| Slice::ALL.owns(k)));
    }
}
