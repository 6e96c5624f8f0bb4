//! The on-disk vector store of one (corpus, model) pair, and its memory-mapped reader.
//!
//! A store is a directory:
//!
//! ```text
//! manifest.json          format, version, model, corpus fingerprint, dim, dtype, shard size,
//!                        total passages and shards (null until a run has read the whole corpus)
//! shard-00000.f16        rows of shard 0: raw little-endian vectors, row-major
//! shard-00000.docids     their docids, one per line, in the same order
//! shard-00001.f16 …
//! .lock                 held (flock) by the process that writes: one writer at a time
//! ```
//!
//! - **Shards.** Shard `k` holds passages `k·shard_size ..` `(k+1)·shard_size` of the corpus in its
//!   reading order (`crate::corpus`); only the last may be shorter.
//! - **Dtypes.** `f16`: `dim` IEEE half floats per row (`.f16`; a relative rounding error of at
//!   most 2⁻¹¹ per value of a unit vector above 6e-5, the default). `int8`: per row a little-endian f32 scale `s` then `dim` signed bytes `q`,
//!   the vector being `s·q` with `s = max|x| / 127` (`.i8`; 4 + dim bytes a row, half of f16's size).
//! - **Which files are final.** A shard is done when its `.docids` exists: the encoder writes both
//!   files under `*.partial` names, fsyncs them and renames the vectors first and the docids last
//!   (then fsyncs the directory), so a crash at any point leaves either a finished shard or a journal
//!   the next run resumes (`crate::encode`). `manifest.json` is replaced the same way.
//! - **Identity.** The manifest names what the vectors are of; a store is only opened for the same
//!   model string, corpus fingerprint, dim, dtype and shard size ([`Manifest::check`]). The model
//!   string is the caller's and must change with anything that changes the vectors (weights,
//!   prefix, maximum length, pooling).
//!
//! [`VectorStore`] memory-maps every shard and reads rows as f32, converting on the fly.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use half::f16;
use half::slice::HalfFloatSliceExt;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

/// The `format` of a manifest.
pub const FORMAT: &str = "mlr-vectors";
/// The version of the layout this crate writes and reads.
pub const VERSION: u32 = 1;
/// Passages per shard unless the caller chooses: a shard of e5-small vectors is 77 MB in f16.
pub const DEFAULT_SHARD_SIZE: usize = 100_000;

/// Why a store cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The corpus could not be read.
    #[error(transparent)]
    Corpus(#[from] crate::corpus::CorpusError),
    /// `manifest.json` is not a manifest of this format and version.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The directory holds vectors of something else.
    #[error(
        "{}: the store holds vectors for {field} {found}, not {expected}: use another directory (or delete this one to start over)",
        dir.display()
    )]
    Mismatch {
        /// The store.
        dir: PathBuf,
        /// `model`, `corpus`, `dim`, `dtype` or `shard_size`.
        field: &'static str,
        /// What the manifest says.
        found: String,
        /// What was asked for.
        expected: String,
    },
    /// Another process is writing the store.
    #[error("{}: another process is writing this store (it holds .lock); wait for it or stop it", dir.display())]
    Busy {
        /// The store.
        dir: PathBuf,
    },
    /// Shards are missing, or the whole corpus was never read.
    #[error("{}: {message}", dir.display())]
    Incomplete {
        /// The store.
        dir: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A shard's files disagree with each other or with the manifest.
    #[error("{}: {message}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A finished shard (or a journal) lists other docids than the corpus has at its place.
    #[error(
        "{}: row {row} is docid {stored:?} but the corpus has {corpus:?} there: the corpus changed since these vectors were written",
        path.display()
    )]
    CorpusChanged {
        /// The docids file.
        path: PathBuf,
        /// 0-based row within the shard.
        row: usize,
        /// The docid in the store.
        stored: String,
        /// The docid in the corpus.
        corpus: String,
    },
    /// The encoder callback failed.
    #[error("encoding the batch of shard {shard} that starts at docid {docid}: {source}")]
    Encoder {
        /// The shard being encoded.
        shard: u64,
        /// The first docid of the batch.
        docid: String,
        /// The callback's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The encoder callback returned something that cannot be stored.
    #[error("the encoder's vector of docid {docid}: {message}")]
    EncoderOutput {
        /// The passage.
        docid: String,
        /// What is wrong.
        message: String,
    },
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// How vectors are stored (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE half floats.
    F16,
    /// Signed bytes with a per-vector f32 scale.
    Int8,
}

impl Dtype {
    /// Bytes of one row of `dim` values.
    pub fn row_bytes(self, dim: usize) -> usize {
        match self {
            Dtype::F16 => 2 * dim,
            Dtype::Int8 => 4 + dim,
        }
    }

    /// File extension of the vector files.
    pub fn extension(self) -> &'static str {
        match self {
            Dtype::F16 => "f16",
            Dtype::Int8 => "i8",
        }
    }

    /// Appends the stored form of `row` to `out`.
    pub fn encode_row(self, row: &[f32], out: &mut Vec<u8>) {
        match self {
            Dtype::F16 => out.extend(row.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes())),
            Dtype::Int8 => {
                let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
                let scale = max / 127.0;
                out.extend(scale.to_le_bytes());
                let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                out.extend(row.iter().map(|&x| (x * inverse).round().clamp(-127.0, 127.0) as i8 as u8));
            }
        }
    }

    /// Decodes consecutive rows of `bytes` into `out` (`out.len()` = rows × `dim`).
    pub fn decode_rows(self, bytes: &[u8], dim: usize, out: &mut [f32]) {
        debug_assert_eq!(bytes.len() / self.row_bytes(dim.max(1)) * dim, out.len());
        match self {
            Dtype::F16 => {
                let bytes = &bytes[..2 * out.len()];
                // SAFETY: f16 is a `repr(transparent)` u16, valid for every bit pattern; the cast is
                // only taken when the pointer is 2-aligned and the target is little-endian (the file's
                // byte order), else the rows are converted one value at a time.
                if cfg!(target_endian = "little") && bytes.as_ptr().align_offset(2) == 0 {
                    let halves = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f16>(), out.len()) };
                    halves.convert_to_f32_slice(out);
                } else {
                    for (x, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                        *x = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    }
                }
            }
            Dtype::Int8 => {
                for (row, b) in out.chunks_exact_mut(dim).zip(bytes.chunks_exact(4 + dim)) {
                    let scale = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    for (x, &q) in row.iter_mut().zip(&b[4..]) {
                        *x = scale * (q as i8) as f32;
                    }
                }
            }
        }
    }
}

/// The largest dimension a store takes (encoders have hundreds to a few thousand).
pub const MAX_DIM: usize = 1 << 16;
/// The largest shard size a store takes.
pub const MAX_SHARD_SIZE: usize = 1 << 28;

/// Checks dim and shard size: positive and at most [`MAX_DIM`] and [`MAX_SHARD_SIZE`] (so no size
/// computed from them overflows).
pub(crate) fn check_sizes(dim: usize, shard_size: usize) -> Result<(), String> {
    if dim == 0 || dim > MAX_DIM || shard_size == 0 || shard_size > MAX_SHARD_SIZE {
        return Err(format!(
            "dim {dim} and shard size {shard_size} must lie in 1..={MAX_DIM} and 1..={MAX_SHARD_SIZE}"
        ));
    }
    Ok(())
}

/// What a store is asked to hold: checked against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// The model's identity (the caller's string; see the module docs).
    pub model: String,
    /// Vector dimension.
    pub dim: usize,
    /// How vectors are stored.
    pub dtype: Dtype,
    /// Passages per shard.
    pub shard_size: usize,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version ([`VERSION`]).
    pub version: u32,
    /// The model's identity.
    pub model: String,
    /// The corpus fingerprint (`crate::corpus::Corpus::fingerprint`).
    pub corpus: String,
    /// How the corpus's passages were turned into text (documentation for readers).
    pub passage_text: String,
    /// Vector dimension.
    pub dim: usize,
    /// How vectors are stored.
    pub dtype: Dtype,
    /// Passages per shard.
    pub shard_size: usize,
    /// Passages in the corpus, once a run has read it to the end.
    pub total_passages: Option<u64>,
    /// Shards of the whole store, once known (`ceil(total_passages / shard_size)`).
    pub shards: Option<u64>,
}

/// What [`Manifest::passage_text`] says.
pub const PASSAGE_TEXT: &str = "title + \" \" + text (text alone when the title is empty)";

impl Manifest {
    /// A new manifest for `spec` over the corpus with fingerprint `corpus`.
    pub fn new(spec: &StoreSpec, corpus: &str) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            model: spec.model.clone(),
            corpus: corpus.into(),
            passage_text: PASSAGE_TEXT.into(),
            dim: spec.dim,
            dtype: spec.dtype,
            shard_size: spec.shard_size,
            total_passages: None,
            shards: None,
        }
    }

    /// The manifest of store `dir`, or None if it has none.
    pub fn read(dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = dir.join("manifest.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| StoreError::Manifest { path: path.clone(), message: e.to_string() })?;
        if manifest.format != FORMAT || manifest.version != VERSION {
            let message = format!(
                "format {:?} version {} is not {FORMAT:?} version {VERSION}",
                manifest.format, manifest.version
            );
            return Err(StoreError::Manifest { path, message });
        }
        if let Err(message) = check_sizes(manifest.dim, manifest.shard_size) {
            return Err(StoreError::Manifest { path, message });
        }
        let expected = manifest.total_passages.map(|n| n.div_ceil(manifest.shard_size as u64));
        if manifest.shards != expected {
            let message =
                format!("shards {:?} do not fit total_passages {:?}", manifest.shards, manifest.total_passages);
            return Err(StoreError::Manifest { path, message });
        }
        Ok(Some(manifest))
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let json = serde_json::to_string_pretty(self).map_err(|e| StoreError::Invalid(e.to_string()))?;
        write_atomic(&dir.join("manifest.json"), (json + "\n").as_bytes())?;
        sync_dir(dir)
    }

    /// Refuses a manifest made for another model, corpus, dim, dtype or shard size.
    pub fn check(&self, dir: &Path, spec: &StoreSpec, corpus: &str) -> Result<(), StoreError> {
        let mismatch = |field, found: String, expected: String| {
            Err(StoreError::Mismatch { dir: dir.to_path_buf(), field, found, expected })
        };
        if self.model != spec.model {
            return mismatch("model", format!("{:?}", self.model), format!("{:?}", spec.model));
        }
        if self.corpus != corpus {
            return mismatch("corpus", format!("fingerprint {}", self.corpus), format!("fingerprint {corpus}"));
        }
        if self.dim != spec.dim {
            return mismatch("dim", self.dim.to_string(), spec.dim.to_string());
        }
        if self.dtype != spec.dtype {
            return mismatch("dtype", format!("{:?}", self.dtype), format!("{:?}", spec.dtype));
        }
        if self.shard_size != spec.shard_size {
            return mismatch("shard_size", self.shard_size.to_string(), spec.shard_size.to_string());
        }
        Ok(())
    }

    /// Rows of shard `k` in a finished store.
    pub fn shard_rows(&self, k: u64) -> Option<usize> {
        let total = self.total_passages?;
        let start = k.checked_mul(self.shard_size as u64)?;
        (start < total).then(|| (total - start).min(self.shard_size as u64) as usize)
    }
}

/// `dir/shard-NNNNN.<ext>`.
pub fn vectors_path(dir: &Path, shard: u64, dtype: Dtype) -> PathBuf {
    dir.join(format!("shard-{shard:05}.{}", dtype.extension()))
}

/// `dir/shard-NNNNN.docids`.
pub fn docids_path(dir: &Path, shard: u64) -> PathBuf {
    dir.join(format!("shard-{shard:05}.docids"))
}

/// The journal name of a shard file (`….partial`).
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes `path` through a `.partial` sibling: write, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = partial_path(path);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Takes the writer's lock of store `dir` (`dir/.lock`, created if needed); held until the returned
/// file is dropped, and released by the operating system if the process dies.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(".lock");
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Busy { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}

/// Makes renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    // Directories cannot be opened for fsync on every platform; where they can, do it.
    if cfg!(unix) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    }
    Ok(())
}

/// Offsets of the line starts of a docids file, checked: UTF-8, every line ends with `\n`, no empty
/// line. Returns `rows + 1` offsets (the last is the length).
pub(crate) fn docid_lines(bytes: &[u8], path: &Path) -> Result<Vec<usize>, StoreError> {
    let damaged = |message: String| StoreError::Damaged { path: path.to_path_buf(), message };
    std::str::from_utf8(bytes).map_err(|e| damaged(format!("not UTF-8: {e}")))?;
    if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
        return Err(damaged("the last line has no newline".into()));
    }
    let mut starts = vec![0];
    starts.extend(bytes.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1));
    if starts.windows(2).any(|w| w[1] == w[0] + 1) {
        return Err(damaged("an empty docid line".into()));
    }
    Ok(starts)
}

/// Rows of a finished shard, checked against the files' sizes; None if the shard is not done.
pub(crate) fn finished_rows(dir: &Path, m: &Manifest, shard: u64) -> Result<Option<usize>, StoreError> {
    let ids = docids_path(dir, shard);
    let bytes = match std::fs::read(&ids) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { path: ids, source }),
    };
    let rows = docid_lines(&bytes, &ids)?.len() - 1;
    let vectors = vectors_path(dir, shard, m.dtype);
    let len = std::fs::metadata(&vectors).map_err(io_error(&vectors))?.len();
    let expected = (rows * m.dtype.row_bytes(m.dim)) as u64;
    if len != expected || rows == 0 || rows > m.shard_size {
        let message = format!("{len} bytes for {rows} docids of dimension {} (expected {expected})", m.dim);
        return Err(StoreError::Damaged { path: vectors, message });
    }
    Ok(Some(rows))
}

struct Shard {
    vectors: Mmap,
    docids: Mmap,
    /// `rows + 1` line starts in `docids`.
    lines: Vec<usize>,
    /// Global index of the first row.
    start: usize,
}

/// A finished store, memory-mapped: rows as f32 on the fly, docids by row.
///
/// The files are mapped, not read: the operating system pages in what a search touches. A mapped
/// file must not be changed while mapped; mlr never changes a finished shard (it only ever renames
/// new files into place), but another program truncating one would make reads fault.
pub struct VectorStore {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    len: usize,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore").field("dir", &self.dir).field("manifest", &self.manifest).finish()
    }
}

fn map(path: &Path) -> Result<Mmap, StoreError> {
    let file = File::open(path).map_err(io_error(path))?;
    // SAFETY: see the type's docs: store files are written under other names and renamed into
    // place, never modified once final.
    unsafe { Mmap::map(&file) }.map_err(io_error(path))
}

impl VectorStore {
    /// Opens a finished store: every shard present, sizes agreeing with the manifest.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let incomplete = |message: String| StoreError::Incomplete { dir: dir.to_path_buf(), message };
        let manifest = Manifest::read(dir)?.ok_or_else(|| incomplete("no manifest.json: not a vector store".into()))?;
        let shards = manifest.shards.ok_or_else(|| {
            incomplete("the corpus was never read to the end: run the encoding (again) to finish it".into())
        })?;
        let mut out = Vec::new();
        let mut start = 0usize;
        for k in 0..shards {
            let expected = manifest.shard_rows(k).unwrap_or(0);
            match finished_rows(dir, &manifest, k)? {
                Some(rows) if rows == expected => {}
                Some(rows) => {
                    let message = format!("{rows} rows, but the manifest makes shard {k} {expected} rows");
                    return Err(StoreError::Damaged { path: docids_path(dir, k), message });
                }
                None => {
                    return Err(incomplete(format!(
                        "shard {k} of {shards} is missing (a --shard slice? merge the slices first)"
                    )))
                }
            }
            let docids = map(&docids_path(dir, k))?;
            let lines = docid_lines(&docids, &docids_path(dir, k))?;
            let vectors = map(&vectors_path(dir, k, manifest.dtype))?;
            out.push(Shard { vectors, docids, lines, start });
            start += expected;
        }
        Ok(Self { dir: dir.to_path_buf(), manifest, shards: out, len: start })
    }

    /// Opens a finished store and checks it holds `spec`'s vectors of the corpus `corpus`.
    pub fn open_for(dir: &Path, spec: &StoreSpec, corpus: &str) -> Result<Self, StoreError> {
        let store = Self::open(dir)?;
        store.manifest.check(dir, spec, corpus)?;
        Ok(store)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Vectors (passages) in the store.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store has no vectors (never true of a store [`VectorStore::open`] accepts).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    fn locate(&self, row: usize) -> (&Shard, usize) {
        let k = row / self.manifest.shard_size;
        let shard = &self.shards[k];
        (shard, row - shard.start)
    }

    /// The docid of global row `row` (`row < len()`).
    pub fn docid(&self, row: usize) -> &str {
        let (shard, r) = self.locate(row);
        let bytes = &shard.docids[shard.lines[r]..shard.lines[r + 1] - 1];
        // Checked to be UTF-8 when opened, and split at newlines, which are never inside a character.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Decodes rows `start .. start + out.len() / dim` into `out`; the rows must lie in one shard
    /// (see [`VectorStore::blocks`]).
    pub fn read_rows(&self, start: usize, out: &mut [f32]) {
        let dim = self.dim();
        let rows = out.len() / dim;
        let (shard, r) = self.locate(start);
        let shard_rows = shard.lines.len() - 1;
        assert!(r + rows <= shard_rows, "rows {start}.. cross a shard boundary");
        let row_bytes = self.manifest.dtype.row_bytes(dim);
        self.manifest.dtype.decode_rows(&shard.vectors[r * row_bytes..(r + rows) * row_bytes], dim, out);
    }

    /// Row `row` as f32.
    pub fn row(&self, row: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.dim()];
        self.read_rows(row, &mut out);
        out
    }

    /// The raw stored bytes of shard `k` (for export).
    pub(crate) fn shard_bytes(&self, k: usize) -> &[u8] {
        &self.shards[k].vectors
    }

    /// Splits the rows into blocks of at most `rows` rows that never cross a shard: `(start, len)`.
    pub fn blocks(&self, rows: usize) -> Vec<(usize, usize)> {
        let rows = rows.max(1);
        let mut out = Vec::new();
        for shard in &self.shards {
            let n = shard.lines.len() - 1;
            out.extend((0..n).step_by(rows).map(|r| (shard.start + r, rows.min(n - r))));
        }
        out
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_both_dtypes() {
        let row = [0.5f32, -0.25, 0.125, 0.0, -1.0, 0.3];
        let mut bytes = Vec::new();
        Dtype::F16.encode_row(&row, &mut bytes);
        assert_eq!(bytes.len(), Dtype::F16.row_bytes(6));
        let mut out = [0f32; 6];
        Dtype::F16.decode_rows(&bytes, 6, &mut out);
        assert_eq!(&out[..5], &row[..5]);
        assert!((out[5] - 0.3).abs() < 1e-3);
        // Misaligned bytes take the scalar path and give the same values.
        let mut shifted = vec![0u8];
        shifted.extend(&bytes);
        let mut again = [0f32; 6];
        Dtype::F16.decode_rows(&shifted[1..], 6, &mut again);
        assert_eq!(out, again);

        let mut bytes = Vec::new();
        Dtype::Int8.encode_row(&row, &mut bytes);
        assert_eq!(bytes.len(), Dtype::Int8.row_bytes(6));
        Dtype::Int8.decode_rows(&bytes, 6, &mut out);
        for (a, b) in out.iter().zip(row) {
            assert!((a - b).abs() <= 1.0 / 254.0 + 1e-6, "{a} vs {b}");
        }
        assert_eq!(out[4], -1.0);
        // A zero vector has scale 0 and decodes to zeros.
        let mut bytes = Vec::new();
        Dtype::Int8.encode_row(&[0.0; 6], &mut bytes);
        Dtype::Int8.decode_rows(&bytes, 6, &mut out);
        assert_eq!(out, [0.0; 6]);
    }

    #[test]
    fn docid_files_are_checked() {
        let p = Path::new("x.docids");
        assert_eq!(docid_lines(b"a\nbb\n", p).unwrap(), vec![0, 2, 5]);
        assert_eq!(docid_lines(b"", p).unwrap(), vec![0]);
        assert!(docid_lines(b"a\nb", p).unwrap_err().to_string().contains("no newline"));
        assert!(docid_lines(b"a\n\n", p).unwrap_err().to_string().contains("empty docid"));
    }
}
