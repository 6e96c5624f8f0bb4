//! Approximate search: an HNSW graph (usearch) over a store's rows, built once and kept beside it.
//!
//! - **What.** [`build`] adds every row of a finished [`VectorStore`] to a usearch index (inner
//!   product, vectors kept as f32, `connectivity` links per node, beam `ef_construction` while
//!   building) on all of rayon's threads, and saves it in the store's directory as
//!   [`INDEX_FILE`] with [`INDEX_META`] naming the store it indexes (model, corpus fingerprint,
//!   rows, dim) and its parameters. [`AnnIndex::open`] memory-maps it again; an index of another
//!   store, or of an earlier state of this one, is refused ([`AnnError::Stale`]).
//! - **Search.** [`search`] takes the graph's `depth` nearest rows of each query with beam width
//!   `ef` (raised to `depth` if smaller), then scores those rows exactly as [`crate::search`] does
//!   (the f32 query against the stored row decoded to f32) and ranks them with the same order
//!   (score, then docid descending). So a run differs from the exact one only by the rows the graph
//!   missed, never by a score or a tie; [`crate::search`]'s checks on queries apply unchanged.
//! - **Why usearch.** Chosen by measurement (results/bench/ann.md, scripts/ann_compare): on
//!   embedding-like vectors it reached the same recall as hnsw_rs 2–2.5× faster per query, built
//!   2–3× faster, and saves an index that is memory-mapped instead of loaded. It is built without
//!   its `numkong` SIMD library (≈10 minutes of C compilation per build profile); without it f16
//!   vectors are converted in software and searched 3× slower, so the index keeps f32 (the same
//!   recall: f16 and f32 agreed within 0.001 in the measurement). i8 storage lost recall (0.89 at
//!   best) and is not offered.
//! - **When.** Building costs far more than one exact pass: at 1 M rows on 2 cores it pays off only
//!   after tens of thousands of queries (results/bench/retrieve.md), more than any MIRACL topic set
//!   holds. The index is for a corpus searched again and again; evaluation runs stay exact unless
//!   an index exists or is asked for.
//! - **Failure.** Building writes `INDEX_FILE` under a temporary name and renames it into place
//!   after the metadata is checked, so an interrupted build leaves no index that looks finished
//!   (it starts over; building is minutes per million rows). Non-finite stored values stop the
//!   build and name the docid.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::search::{check_queries, rank_rows, Hit, SearchError};
use crate::store::{partial_path, VectorStore};

/// The index file in the store's directory.
pub const INDEX_FILE: &str = "ann.usearch";
/// Its metadata: which store it indexes, and how it was built.
pub const INDEX_META: &str = "ann.json";
const FORMAT: &str = "mlr-ann";
const VERSION: u32 = 1;

/// How to build and search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnOptions {
    /// Links per node (HNSW's M).
    pub connectivity: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Beam width while searching (at least the depth).
    pub ef_search: usize,
}

impl Default for AnnOptions {
    /// M 16, ef_construction 128, ef_search 256: recall@100 0.89 at 5.8× less CPU time than exact
    /// search on 1 M synthetic rows (results/bench/retrieve.md).
    fn default() -> Self {
        Self { connectivity: 16, ef_construction: 128, ef_search: 256 }
    }
}

/// Why an index cannot be built, opened or searched.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata file is not mlr's, or damaged.
    #[error("{}: {message}", path.display())]
    Meta {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The index was built for another store, or before the store changed.
    #[error("{}: the index was built for {built}, but the store now holds {now}: build it again (--search ann)", path.display())]
    Stale {
        /// The metadata file.
        path: PathBuf,
        /// What it was built for.
        built: String,
        /// What the store holds.
        now: String,
    },
    /// A stored vector holds NaN or an infinity.
    #[error("docid {docid}: the stored vector has a non-finite value at dimension {dim}: the store is damaged")]
    NonFiniteStored {
        /// The passage.
        docid: String,
        /// 0-based dimension.
        dim: usize,
    },
    /// usearch refused an operation.
    #[error("the HNSW index (usearch): {0}")]
    Index(String),
    /// Invalid options.
    #[error("{0}")]
    Options(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AnnError + '_ {
    move |source| AnnError::Io { path: path.to_path_buf(), source }
}

fn index_error(e: impl std::fmt::Display) -> AnnError {
    AnnError::Index(e.to_string())
}

/// The metadata file: which store the index belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnMeta {
    /// Always "mlr-ann".
    pub format: String,
    /// Format version.
    pub version: u32,
    /// The store's model identity.
    pub model: String,
    /// The store's corpus fingerprint.
    pub corpus: String,
    /// Rows indexed (the store's length).
    pub rows: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Links per node.
    pub connectivity: usize,
    /// Beam width while building.
    pub ef_construction: usize,
    /// Size of the index file: a truncated or replaced file is refused before usearch maps it.
    pub file_bytes: u64,
}

impl AnnMeta {
    fn of(store: &VectorStore, options: &AnnOptions) -> Self {
        let manifest = store.manifest();
        Self {
            format: FORMAT.into(),
            version: VERSION,
            model: manifest.model.clone(),
            corpus: manifest.corpus.clone(),
            rows: store.len(),
            dim: store.dim(),
            connectivity: options.connectivity,
            ef_construction: options.ef_construction,
            file_bytes: 0,
        }
    }

    fn describe(&self) -> String {
        format!("{} rows of dimension {} (model {}, corpus {})", self.rows, self.dim, self.model, self.corpus)
    }
}

/// An index opened over its store.
pub struct AnnIndex {
    index: usearch::Index,
    meta: AnnMeta,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("meta", &self.meta).finish()
    }
}

fn usearch_options(dim: usize, options: &AnnOptions) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: dim,
        metric: usearch::MetricKind::IP,
        quantization: usearch::ScalarKind::F32,
        connectivity: options.connectivity,
        expansion_add: options.ef_construction,
        expansion_search: options.ef_search,
        multi: false,
    }
}

/// Whether `store`'s directory holds an index file (current or not).
pub fn exists(store: &VectorStore) -> bool {
    store.dir().join(INDEX_META).is_file() && store.dir().join(INDEX_FILE).is_file()
}

impl AnnIndex {
    /// Opens the index saved beside `store` (memory-mapped), refusing one built for another store.
    pub fn open(store: &VectorStore) -> Result<Self, AnnError> {
        let meta_path = store.dir().join(INDEX_META);
        let bytes = std::fs::read(&meta_path).map_err(io_error(&meta_path))?;
        let meta: AnnMeta = serde_json::from_slice(&bytes)
            .map_err(|e| AnnError::Meta { path: meta_path.clone(), message: e.to_string() })?;
        if meta.format != FORMAT || meta.version != VERSION {
            let message =
                format!("format {:?} version {}, expected {FORMAT:?} version {VERSION}", meta.format, meta.version);
            return Err(AnnError::Meta { path: meta_path, message });
        }
        let now = AnnMeta {
            connectivity: meta.connectivity,
            ef_construction: meta.ef_construction,
            file_bytes: meta.file_bytes,
            ..AnnMeta::of(store, &AnnOptions::default())
        };
        if now != meta {
            return Err(AnnError::Stale { path: meta_path, built: meta.describe(), now: now.describe() });
        }
        let path = store.dir().join(INDEX_FILE);
        let bytes = std::fs::metadata(&path).map_err(io_error(&path))?.len();
        if bytes != meta.file_bytes {
            let message =
                format!("{bytes} bytes, but the index was saved with {}: damaged or replaced", meta.file_bytes);
            return Err(AnnError::Meta { path, message });
        }
        let options = AnnOptions {
            connectivity: meta.connectivity,
            ef_construction: meta.ef_construction,
            ..AnnOptions::default()
        };
        let index = usearch::Index::new(&usearch_options(meta.dim, &options)).map_err(index_error)?;
        index
            .view(&path.to_string_lossy())
            .map_err(|e| AnnError::Meta { path: path.clone(), message: e.to_string() })?;
        if index.size() != meta.rows || index.dimensions() != meta.dim {
            let message = format!(
                "{} rows of dimension {}, the metadata says {}",
                index.size(),
                index.dimensions(),
                meta.describe()
            );
            return Err(AnnError::Meta { path, message });
        }
        index.reserve_capacity_and_threads(meta.rows, rayon::current_num_threads()).map_err(index_error)?;
        Ok(Self { index, meta })
    }

    /// What the index holds.
    pub fn meta(&self) -> &AnnMeta {
        &self.meta
    }

    /// Bytes usearch holds in its own memory for the index. An opened index is memory-mapped, so
    /// its graph and vectors are in the mapped file (`meta().file_bytes`), not in this count.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }
}

/// Builds the index of `store` and saves it beside it (see the module docs); `progress` receives
/// the rows added so far.
pub fn build(store: &VectorStore, options: &AnnOptions, progress: impl Fn(usize) + Sync) -> Result<AnnIndex, AnnError> {
    if options.connectivity < 2 || options.ef_construction == 0 || options.ef_search == 0 {
        return Err(AnnError::Options("connectivity must be at least 2 and the beam widths positive".into()));
    }
    let dim = store.dim();
    let index = usearch::Index::new(&usearch_options(dim, options)).map_err(index_error)?;
    index.reserve_capacity_and_threads(store.len(), rayon::current_num_threads()).map_err(index_error)?;
    let added = std::sync::atomic::AtomicUsize::new(0);
    for (start, len) in store.blocks(16_384) {
        let mut rows = vec![0.0f32; len * dim];
        store.read_rows(start, &mut rows);
        if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
            return Err(AnnError::NonFiniteStored { docid: store.docid(start + i / dim).to_string(), dim: i % dim });
        }
        rows.par_chunks_exact(dim).enumerate().try_for_each(|(j, row)| {
            index.add((start + j) as u64, row).map_err(index_error)?;
            let n = added.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(1024) {
                progress(n);
            }
            Ok::<_, AnnError>(())
        })?;
    }
    progress(store.len());
    let path = store.dir().join(INDEX_FILE);
    let partial = partial_path(&path);
    index
        .save(&partial.to_string_lossy())
        .map_err(|e| AnnError::Meta { path: partial.clone(), message: e.to_string() })?;
    let file_bytes = std::fs::metadata(&partial).map_err(io_error(&partial))?.len();
    let meta = AnnMeta { file_bytes, ..AnnMeta::of(store, options) };
    let meta_path = store.dir().join(INDEX_META);
    let meta_partial = partial_path(&meta_path);
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| AnnError::Meta { path: meta_path.clone(), message: e.to_string() })?;
    std::fs::write(&meta_partial, json).map_err(io_error(&meta_partial))?;
    // The index before its metadata: a metadata file never names an index that is not in place.
    let _ = std::fs::remove_file(&meta_path);
    std::fs::rename(&partial, &path).map_err(io_error(&path))?;
    std::fs::rename(&meta_partial, &meta_path).map_err(io_error(&meta_path))?;
    drop(index);
    AnnIndex::open(store)
}

/// The `depth` best rows of `store` for each query by the index, scored and ranked as
/// [`crate::search::search`] does (see the module docs). `queries` is `[qids.len(), store.dim()]`.
pub fn search(
    index: &AnnIndex,
    store: &VectorStore,
    qids: &[String],
    queries: &[f32],
    depth: usize,
    ef: usize,
) -> Result<Vec<Vec<Hit>>, SearchError> {
    check_queries(store, qids, queries, depth)?;
    if index.meta.rows != store.len() || index.meta.dim != store.dim() {
        return Err(SearchError::Shape(format!("the index holds {}, not this store", index.meta.describe())));
    }
    let dim = store.dim();
    index.index.change_expansion_search(ef.max(depth));
    qids.par_iter()
        .zip(queries.par_chunks_exact(dim))
        .map(|(qid, q)| {
            let matches = index
                .index
                .search(q, depth)
                .map_err(|e| SearchError::Shape(format!("query {qid}: the HNSW index: {e}")))?;
            let found: Vec<usize> = matches.keys.iter().map(|&k| k as usize).collect();
            if let Some(&r) = found.iter().find(|&&r| r >= store.len()) {
                return Err(SearchError::Shape(format!(
                    "the HNSW index returned row {r} of a store of {}",
                    store.len()
                )));
            }
            let mut rows = vec![0.0f32; found.len() * dim];
            for (&r, out) in found.iter().zip(rows.chunks_exact_mut(dim)) {
                store.read_rows(r, out);
                if let Some(d) = out.iter().position(|x| !x.is_finite()) {
                    return Err(SearchError::NonFiniteStored {
                        docid: store.docid(r).to_string(),
                        dim: d,
                        value: out[d],
                    });
                }
            }
            // The exact search's product (same SGEMM), so that a row scores the same on both paths.
            let mut scores = vec![0.0f32; found.len()];
            mlr_eval::score::dot_scores(q, &rows, dim, &mut scores);
            if let Some(j) = scores.iter().position(|s| !s.is_finite()) {
                let (docid, score) = (store.docid(found[j]).to_string(), scores[j]);
                return Err(SearchError::NonFiniteScore { qid: qid.clone(), docid, score });
            }
            let scored: Vec<(usize, f32)> = found.into_iter().zip(scores).collect();
            Ok(rank_rows(store, &scored, depth))
        })
        .collect()
}
