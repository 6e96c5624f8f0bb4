//! Retrieval evaluation of mlr: exact, fast enough for the full XQuAD-R pool, and free of native-only
//! dependencies so the browser runs the same code.
//!
//! - [`lareqa`]: LAReQA-style answer retrieval over a multilingual pool — mAP in the monolingual
//!   (X→X), cross-lingual (X→Y) and multilingual (X→all) settings, Recall@k, and three measures of
//!   language bias: rank distance (the paper's), language preference rate and mean rank correlation.
//! - [`trec`]: TREC qrels, runs and topics, and trec_eval's measures (map, ndcg_cut, recall,
//!   recip_rank, P) with its exact conventions.
//! - [`bitext`]: bitext retrieval accuracy (Tatoeba).
//! - [`score`]: dot-product scoring and the tie-breaking order shared by all of them.
//!
//! Every measure is defined in its module's docs; the unit tests work small cases by hand.
#![deny(missing_docs)]

pub mod bitext;
pub mod lareqa;
pub mod score;
pub mod trec;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Inputs of inconsistent sizes or invalid values.
    #[error("{0}")]
    Shape(String),
    /// A malformed TREC file (qrels, run or topics).
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file (as given).
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The run cannot be evaluated (e.g. a document listed twice for one query).
    #[error("{0}")]
    Run(String),
    /// A vector holds NaN or an infinity: no score or rank computed from it could be right.
    #[error("{what} {row} has a non-finite value ({value}) at dimension {dim}: nothing was scored")]
    NonFinite {
        /// Which vectors (`"query vector"`, `"candidate vector"`, …).
        what: &'static str,
        /// 0-based row.
        row: usize,
        /// 0-based dimension of the first non-finite value.
        dim: usize,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// A computed measure lies outside its range (a mAP above 1, a NaN): a bug, never printed.
    #[error("internal error: {measure} = {value} lies outside {range}; the evaluation is refused")]
    OutOfRange {
        /// Which measure, and where.
        measure: String,
        /// Its value.
        value: f64,
        /// The range it must lie in.
        range: &'static str,
    },
}
