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
}
