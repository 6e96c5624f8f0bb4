//! Exact top-k search of a store by inner product, and TREC runs of the result.
//!
//! - **What.** For each query vector `q` (rows of `[queries, dim]`), the `depth` stored rows with the
//!   largest `q · x`, in ranking order; all rows when the store has fewer. With unit vectors (E5's)
//!   this is cosine similarity. Scores are f32 products of the f32 query and the stored row decoded
//!   to f32 (f16 converts exactly; an int8 row is its f32 product `s·q`).
//! - **Order.** Highest score first; equal scores broken by docid in *descending* byte order, the
//!   evaluator's convention (`mlr_eval::trec::ranked`, trec_eval's), so a run is the same on every
//!   machine and thread count, and trec_eval re-sorting it changes nothing. `-0` and `0` tie.
//! - **How.** The rows are cut into blocks of `block_rows` that never cross a shard; rayon's threads
//!   take blocks, decode each into an f32 scratch buffer and compute all queries against it with one
//!   SGEMM (`mlr_eval::score::dot_scores`: matrixmultiply, SIMD on x86-64 and aarch64, the product
//!   ndarray's `general_mat_mul` also calls), keeping per query a heap bounded by `depth` whose
//!   weakest entry rejects most scores with one comparison. Per-thread heaps are merged at the end.
//!   Memory: one block of rows and one `[queries, block_rows]` score block per thread, plus the heaps.
//!   Threads: rayon's current pool (wrap the call in `ThreadPool::install` to choose).
//! - **Non-finite values are errors, never results.** A NaN or infinite query value
//!   ([`SearchError::NonFiniteQuery`]), stored value ([`SearchError::NonFiniteStored`]) or score
//!   (an overflow: [`SearchError::NonFiniteScore`]) stops the search and names the query or docid.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::io::Write;

use mlr_eval::trec::Run;
use rayon::prelude::*;

use crate::store::VectorStore;

/// Why a search cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Inconsistent sizes or invalid options.
    #[error("{0}")]
    Shape(String),
    /// Two queries share an id.
    #[error("query id {0} is given twice")]
    DuplicateQuery(String),
    /// A query vector holds NaN or an infinity.
    #[error("query {qid}: the vector has a non-finite value ({value}) at dimension {dim}: nothing was searched")]
    NonFiniteQuery {
        /// The query.
        qid: String,
        /// 0-based dimension.
        dim: usize,
        /// The value.
        value: f32,
    },
    /// A stored vector holds NaN or an infinity.
    #[error(
        "docid {docid}: the stored vector has a non-finite value ({value}) at dimension {dim}: the store is damaged"
    )]
    NonFiniteStored {
        /// The passage.
        docid: String,
        /// 0-based dimension.
        dim: usize,
        /// The value.
        value: f32,
    },
    /// A score overflowed.
    #[error("query {qid} · docid {docid} = {score}: vectors this large cannot be scored in f32")]
    NonFiniteScore {
        /// The query.
        qid: String,
        /// The passage.
        docid: String,
        /// The score.
        score: f32,
    },
}

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Results per query (the run's depth; MIRACL's measures need 100).
    pub depth: usize,
    /// Rows per block (one SGEMM each).
    pub block_rows: usize,
}

impl Default for SearchOptions {
    /// Depth 100; blocks of 4096 rows (6 MB of f32 at dim 384).
    fn default() -> Self {
        Self { depth: 100, block_rows: 4096 }
    }
}

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Its row in the store.
    pub row: usize,
    /// Its docid.
    pub docid: String,
    /// Its score (never NaN or infinite, never -0).
    pub score: f32,
}

/// A candidate: ordered by score, then by docid, greater being better (ranked first).
#[derive(Clone, Copy)]
struct Entry<'a> {
    score: f32,
    docid: &'a str,
    row: usize,
}

impl Ord for Entry<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| self.docid.as_bytes().cmp(other.docid.as_bytes()))
    }
}

impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry<'_> {}

/// Per query, the best `depth` entries so far; each heap's top is its weakest entry.
struct TopK<'a> {
    depth: usize,
    heaps: Vec<BinaryHeap<Reverse<Entry<'a>>>>,
}

impl<'a> TopK<'a> {
    fn new(queries: usize, depth: usize) -> Self {
        Self { depth, heaps: (0..queries).map(|_| BinaryHeap::new()).collect() }
    }

    /// The score below which nothing enters heap `q` (None while it is not full).
    fn floor(&self, q: usize) -> Option<f32> {
        let heap = &self.heaps[q];
        if heap.len() < self.depth {
            None
        } else {
            heap.peek().map(|e| e.0.score)
        }
    }

    fn push(&mut self, q: usize, entry: Entry<'a>) {
        let heap = &mut self.heaps[q];
        if heap.len() < self.depth {
            heap.push(Reverse(entry));
        } else if let Some(mut weakest) = heap.peek_mut() {
            if entry > weakest.0 {
                *weakest = Reverse(entry);
            }
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for (q, heap) in other.heaps.into_iter().enumerate() {
            for Reverse(entry) in heap {
                self.push(q, entry);
            }
        }
        self
    }
}

/// Checks what every search needs of its queries: `queries` is `[qids.len(), store.dim()]`, the
/// depth is positive, no qid repeats, every value is finite.
pub(crate) fn check_queries(
    store: &VectorStore,
    qids: &[String],
    queries: &[f32],
    depth: usize,
) -> Result<(), SearchError> {
    let (dim, nq) = (store.dim(), qids.len());
    if queries.len() != nq * dim {
        return Err(SearchError::Shape(format!(
            "{} query values for {nq} queries of dimension {dim} (the store's)",
            queries.len()
        )));
    }
    if depth == 0 {
        return Err(SearchError::Shape("the depth must be positive".into()));
    }
    let mut seen = HashSet::new();
    if let Some(q) = qids.iter().find(|q| !seen.insert(q.as_str())) {
        return Err(SearchError::DuplicateQuery(q.clone()));
    }
    for (qid, v) in qids.iter().zip(queries.chunks_exact(dim)) {
        if let Some(d) = v.iter().position(|x| !x.is_finite()) {
            return Err(SearchError::NonFiniteQuery { qid: qid.clone(), dim: d, value: v[d] });
        }
    }
    Ok(())
}

/// Ranks scored rows as [`search`] does (score, then docid descending) and keeps the first `depth`.
pub(crate) fn rank_rows(store: &VectorStore, scored: &[(usize, f32)], depth: usize) -> Vec<Hit> {
    let mut entries: Vec<Entry> =
        scored.iter().map(|&(row, score)| Entry { score: score + 0.0, docid: store.docid(row), row }).collect();
    entries.sort_unstable_by(|a, b| b.cmp(a));
    entries.truncate(depth);
    entries.into_iter().map(|e| Hit { row: e.row, docid: e.docid.to_string(), score: e.score }).collect()
}

/// The `options.depth` best rows of `store` for each query (see the module docs): `queries` is
/// row-major `[qids.len(), store.dim()]`. Results are in `qids` order, each in ranking order.
pub fn search(
    store: &VectorStore,
    qids: &[String],
    queries: &[f32],
    options: &SearchOptions,
) -> Result<Vec<Vec<Hit>>, SearchError> {
    let dim = store.dim();
    let nq = qids.len();
    if options.block_rows == 0 {
        return Err(SearchError::Shape("block rows must be positive".into()));
    }
    check_queries(store, qids, queries, options.depth)?;
    if nq == 0 {
        return Ok(Vec::new());
    }
    let blocks = store.blocks(options.block_rows);
    let top = blocks
        .par_iter()
        .try_fold(
            || (TopK::new(nq, options.depth), Vec::new(), Vec::new()),
            |(mut top, mut rows, mut scores): (TopK, Vec<f32>, Vec<f32>), &(start, len)| {
                rows.resize(len * dim, 0.0);
                store.read_rows(start, &mut rows);
                if let Some(i) = rows.iter().position(|x| !x.is_finite()) {
                    let docid = store.docid(start + i / dim).to_string();
                    return Err(SearchError::NonFiniteStored { docid, dim: i % dim, value: rows[i] });
                }
                scores.resize(nq * len, 0.0);
                mlr_eval::score::dot_scores(queries, &rows, dim, &mut scores);
                for (q, s) in scores.chunks_exact(len).enumerate() {
                    let mut floor = top.floor(q);
                    for (j, &score) in s.iter().enumerate() {
                        // -0 becomes +0, so the two tie as they do for trec_eval.
                        let score = score + 0.0;
                        if !score.is_finite() {
                            let (qid, docid) = (qids[q].clone(), store.docid(start + j).to_string());
                            return Err(SearchError::NonFiniteScore { qid, docid, score });
                        }
                        if floor.is_some_and(|f| score < f) {
                            continue;
                        }
                        top.push(q, Entry { score, docid: store.docid(start + j), row: start + j });
                        floor = top.floor(q);
                    }
                }
                Ok((top, rows, scores))
            },
        )
        .map(|r| r.map(|(top, _, _)| top))
        .try_reduce(|| TopK::new(nq, options.depth), |a, b| Ok(a.merge(b)))?;
    Ok(top
        .heaps
        .into_iter()
        .map(|heap| {
            heap.into_sorted_vec()
                .into_iter()
                .map(|Reverse(e)| Hit { row: e.row, docid: e.docid.to_string(), score: e.score })
                .collect()
        })
        .collect())
}

/// Writes results as a TREC run: `qid Q0 docid rank score tag` per line, queries in `qids` order,
/// ranks from 1, scores in the shortest form that reads back as the same f32 (so the ranking a
/// reader sorts out of the file is the one written). `tag` must be a non-empty word.
pub fn write_run(out: &mut impl Write, qids: &[String], results: &[Vec<Hit>], tag: &str) -> std::io::Result<()> {
    if tag.is_empty() || tag.contains(char::is_whitespace) || qids.len() != results.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("run tag {tag:?} must be one word, and there must be one result list per query"),
        ));
    }
    for (qid, hits) in qids.iter().zip(results) {
        for (rank, hit) in hits.iter().enumerate() {
            writeln!(out, "{qid} Q0 {} {} {} {tag}", hit.docid, rank + 1, hit.score)?;
        }
    }
    Ok(())
}

/// The results as the evaluator's [`Run`], for `mlr_eval::trec::evaluate`.
pub fn to_run(qids: &[String], results: &[Vec<Hit>]) -> Run {
    let mut run = Run::default();
    for (qid, hits) in qids.iter().zip(results) {
        run.queries.insert(qid.clone(), hits.iter().map(|h| (h.docid.clone(), h.score as f64)).collect());
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_order_by_score_then_docid_descending() {
        let e = |score, docid| Entry { score, docid, row: 0 };
        assert!(e(1.0, "a") > e(0.5, "z"));
        // Equal scores: the greater docid ranks first, as in mlr_eval::trec::ranked.
        assert!(e(1.0, "b") > e(1.0, "a"));
        let mut top = TopK::new(1, 2);
        for entry in [e(1.0, "a"), e(1.0, "c"), e(1.0, "b"), e(0.0, "z")] {
            top.push(0, entry);
        }
        let kept: Vec<&str> = top.heaps.remove(0).into_sorted_vec().iter().map(|r| r.0.docid).collect();
        assert_eq!(kept, vec!["c", "b"]);
    }
}
