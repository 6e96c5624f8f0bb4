//! Messages between the page and the encoder worker, and the codec that carries them.
//!
//! Messages cross the worker boundary as plain JavaScript objects (serde-wasm-bindgen), so they can
//! be read in the browser's devtools. The worker answers requests one at a time, in the order they
//! were sent; every answer to a request carries the request's `id`. The one exception is the
//! embedding of a collection of the user's documents ([`DocsOp::Embed`]): it runs as a job between
//! requests, so requests sent during it are answered while it runs, and its progress and its end
//! carry the `Embed` request's id. A request that fails is answered
//! with [`WorkerEvent::Error`]: its [`WorkerError`] says which request failed and whether the CPU
//! backend may help, and its `Display` is the text the page shows.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

pub use mlr_data::lareqa::Split;
pub use mlr_demo::{Manifest, ModelEntry};

pub use crate::docs::protocol::{DocsEvent, DocsOp};

/// What the page asks the worker. Every request carries an id (one counter for all kinds),
/// echoed by its answer, so the page can drop answers to requests it has superseded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Fetch `manifest.json` under `base_url`, then the data, the model `model` (an entry of the
    /// manifest; the first one if `None`) and its corpus vectors, all sha256-checked and kept in
    /// the Cache API. A software WebGPU adapter is used only if `allow_software_gpu`; `force_cpu`
    /// skips WebGPU altogether.
    Load {
        /// Request id, echoed by `Ready` (or by the `Error` saying why loading failed).
        id: u32,
        /// URL of the directory holding `manifest.json` (absolute: the worker runs from a blob URL).
        base_url: String,
        /// Name of the model in the manifest.
        model: Option<String>,
        /// Use a fallback (software) WebGPU adapter if that is all there is.
        allow_software_gpu: bool,
        /// Use the wasm CPU backend even when WebGPU is available (after a GPU failure).
        force_cpu: bool,
    },
    /// Rank the corpus for a query.
    Search {
        /// Request id, echoed in the answer.
        id: u32,
        /// The query, in any language or mix of languages (embedded with the `query: ` prefix).
        query: String,
        /// Results to return.
        k: usize,
        /// Only candidates of this corpus language (cross-lingual view); `None` = the pooled corpus.
        lang: Option<String>,
    },
    /// Embed `count` corpus sentences (spread evenly over the corpus, so over every language) in
    /// the browser and compare them with the precomputed vectors.
    Reembed {
        /// Request id.
        id: u32,
        /// Sentences to embed (spread over all languages).
        count: usize,
    },
    /// Run the LAReQA evaluation (mlr-eval) on a subset, with the precomputed vectors.
    Evaluate {
        /// Request id.
        id: u32,
        /// Languages (codes); empty = all.
        langs: Vec<String>,
        /// Which articles of the committed article split.
        split: Split,
        /// The first N distinct questions of the subset (`None` = all).
        max_questions: Option<usize>,
    },
    /// An operation on the user's own collections ("Your documents").
    Docs {
        /// Request id, echoed by the answers (an embedding's progress and end carry it too).
        id: u32,
        /// What to do.
        op: DocsOp,
    },
    /// A message the worker could not decode (made by [`JsCodec`], never sent by the page): the
    /// worker answers [`WorkerEvent::Malformed`] instead of panicking.
    Malformed {
        /// Why decoding failed.
        message: String,
    },
}

/// One ranked candidate sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// 1-based rank in the ranking that was asked for (pooled or one language).
    pub rank: usize,
    /// 1-based rank in the pooled ranking of all languages.
    pub pooled_rank: usize,
    /// Cosine similarity.
    pub score: f32,
    /// Candidate index in the full corpus.
    pub candidate: usize,
    /// Stable candidate id (`<lang>-<number>`).
    pub id: String,
    /// Language code.
    pub lang: String,
    /// The sentence.
    pub sentence: String,
    /// Its paragraph (shown on demand).
    pub paragraph: String,
    /// Title of its article.
    pub article: String,
    /// Ids of the questions this sentence answers (shared by all languages).
    pub answers: Vec<String>,
    /// Whether it answers the question of the parallel group shown in the bias view.
    pub parallel: bool,
}

/// Where one language's answer sentence lands in the pooled ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LangRank {
    /// Language code.
    pub lang: String,
    /// 1-based pooled rank of the best-ranked answer sentence of this language.
    pub rank: usize,
    /// Its score.
    pub score: f32,
    /// The sentence.
    pub sentence: String,
}

/// The language-bias view of one query under one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasView {
    /// Model name.
    pub model: String,
    /// How the vector of the query was obtained (`"encoded in the browser"` or
    /// `"precomputed: dataset question"`).
    pub source: String,
    /// Pooled ranks of the parallel answers, one per language.
    pub ranks: Vec<LangRank>,
    /// max − min of `ranks` (the paper's rank distance for this query).
    pub rank_distance: usize,
}

/// The parallel answer group a search is measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerGroup {
    /// Question id (shared by the languages).
    pub question: String,
    /// The question in the language of the best-ranked result, else English, else the group's own.
    pub text: String,
    /// Why this group: `"the query is this dataset question"` or `"the top result answers it"`.
    pub reason: String,
}

/// Mean of a measure over a dataset, per language (the manifest's precomputed table, or the
/// browser evaluator's).
pub type Report = mlr_eval::lareqa::LareqaReport;

/// The threads the encoder's CPU backend runs on (see `threads.rs`), as the page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threads {
    /// Threads the CPU kernels run on (1 = the encoder worker alone).
    pub count: usize,
    /// Cores the browser reports (`navigator.hardwareConcurrency`).
    pub cores: usize,
    /// Why there is one thread on a machine with more cores (`None` when every core is used).
    pub note: Option<String>,
}

impl Default for Threads {
    fn default() -> Self {
        Threads { count: 1, cores: 1, note: None }
    }
}

/// What the worker tells the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkerEvent {
    /// Bytes of `file` received so far (`total` is 0 when the server gives no length).
    Progress {
        /// File name.
        file: String,
        /// Bytes received.
        loaded: u64,
        /// Bytes expected.
        total: u64,
        /// Whether the file came from the Cache API (no download).
        cached: bool,
    },
    /// A step of loading, in words.
    Status(String),
    /// The manifest was read: the models the page can offer.
    Manifest(Manifest),
    /// The model is ready on `backend` (adapter name, or why it is the CPU).
    Ready {
        /// The `Load` request's id.
        id: u32,
        /// Model name.
        model: String,
        /// Human-readable backend label.
        backend: String,
        /// Whether the backend is WebGPU.
        gpu: bool,
        /// Milliseconds spent loading.
        load_ms: f64,
        /// Bytes downloaded (0 when everything came from the cache).
        downloaded: u64,
        /// Candidates in the corpus.
        candidates: usize,
        /// The threads the CPU backend runs on, and why only one when the machine has more.
        threads: Threads,
    },
    /// The answer to a search.
    Results {
        /// The request id.
        id: u32,
        /// The query as embedded (trimmed; the encoder reads its first 512 tokens).
        query: String,
        /// Tokens of the query fed to the encoder (at most 512).
        tokens: usize,
        /// Whether the query was longer than the encoder input and was truncated.
        truncated: bool,
        /// Ranked candidates.
        hits: Vec<Hit>,
        /// The parallel answer group of the bias view, if any candidate answers a question.
        group: Option<AnswerGroup>,
        /// The bias view for the current model and, when the query is a dataset question, for
        /// every other model of the manifest (from their precomputed vectors).
        bias: Vec<BiasView>,
        /// Milliseconds: encoding the query.
        encode_ms: f64,
        /// Milliseconds: scoring and ranking.
        rank_ms: f64,
        /// Bytes of the word table downloaded to encode this query (pieces not fetched before).
        fetched: u64,
    },
    /// Progress of a long job (re-embedding, evaluation).
    JobProgress {
        /// The request id.
        id: u32,
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
        /// What is being done.
        what: String,
    },
    /// The browser's vectors against the precomputed ones.
    Reembedded {
        /// The request id.
        id: u32,
        /// Sentences compared.
        count: usize,
        /// Smallest cosine between a browser vector and its precomputed (native, f16-stored) one.
        min_cosine: f32,
        /// Mean of those cosines.
        mean_cosine: f32,
        /// Milliseconds spent encoding (fetching word-table pieces not counted).
        ms: f64,
    },
    /// A finished evaluation.
    Evaluated {
        /// The request id.
        id: u32,
        /// The mlr-eval report.
        report: Box<Report>,
        /// The paper-style markdown table of the report.
        table: String,
        /// Milliseconds spent scoring.
        ms: f64,
    },
    /// An answer about the user's own collections.
    Docs {
        /// The request id.
        id: u32,
        /// The answer (boxed: a list entry is large beside the other events).
        event: Box<DocsEvent>,
    },
    /// A request failed; the error says which request and why.
    Error {
        /// The failed request's id.
        id: u32,
        /// What went wrong.
        error: WorkerError,
    },
    /// A message the page could not decode, or the worker's answer to one it could not decode
    /// (made by [`JsCodec`] on a bad message; a version mismatch between page and worker, say).
    Malformed {
        /// Why decoding failed.
        message: String,
    },
}

/// Why a request failed, as the worker reports it. Its [`Display`](std::fmt::Display) is the text
/// the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerError {
    /// A search or a job arrived before a model was loaded.
    NotLoaded,
    /// Loading the model failed (then no model is loaded).
    Load {
        /// What went wrong.
        message: String,
    },
    /// Loading the model failed because the encoder failed on WebGPU (its warm-up): the CPU
    /// backend may help.
    EncoderOnGpu {
        /// What went wrong.
        message: String,
    },
    /// A search failed.
    Search {
        /// What went wrong.
        message: String,
        /// Whether it ran on WebGPU (the CPU backend may help).
        gpu: bool,
    },
    /// Re-embedding failed.
    Reembed {
        /// What went wrong.
        message: String,
        /// Whether it ran on WebGPU (the CPU backend may help).
        gpu: bool,
    },
    /// The evaluation failed (it does not run the encoder).
    Evaluate {
        /// What went wrong.
        message: String,
    },
    /// An operation on the user's collections failed (a file that does not read, a full
    /// storage, the encoder); nothing stored is lost.
    Docs {
        /// What went wrong.
        message: String,
        /// Whether the encoder ran on WebGPU (the CPU backend may help).
        gpu: bool,
    },
}

impl WorkerError {
    /// Whether a `Load` failed (then no model is loaded).
    pub fn is_load(&self) -> bool {
        match self {
            WorkerError::Load { .. } | WorkerError::EncoderOnGpu { .. } => true,
            WorkerError::NotLoaded
            | WorkerError::Search { .. }
            | WorkerError::Reembed { .. }
            | WorkerError::Evaluate { .. }
            | WorkerError::Docs { .. } => false,
        }
    }

    /// Whether switching to the CPU backend may help (the request failed on WebGPU).
    pub fn gpu(&self) -> bool {
        match self {
            WorkerError::EncoderOnGpu { .. } => true,
            WorkerError::Search { gpu, .. } | WorkerError::Reembed { gpu, .. } | WorkerError::Docs { gpu, .. } => *gpu,
            WorkerError::NotLoaded | WorkerError::Load { .. } | WorkerError::Evaluate { .. } => false,
        }
    }
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::NotLoaded => f.write_str("the model is not loaded yet"),
            WorkerError::Load { message } | WorkerError::EncoderOnGpu { message } => {
                write!(f, "loading the model failed: {message}")
            }
            WorkerError::Search { message, .. } => write!(f, "search failed: {message}"),
            WorkerError::Reembed { message, .. } => write!(f, "re-embedding failed: {message}"),
            WorkerError::Evaluate { message } => write!(f, "evaluation failed: {message}"),
            WorkerError::Docs { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for WorkerError {}

/// A worker codec that posts messages as structured JavaScript values (serde-wasm-bindgen).
#[derive(Debug)]
pub struct JsCodec;

impl JsCodec {
    /// [`yew_agent::Codec::encode`].
    pub fn encode_value<I: Serialize>(input: I) -> JsValue {
        serde_wasm_bindgen::to_value(&input).expect("worker messages serialise")
    }

    /// [`yew_agent::Codec::decode`]: a message that does not decode becomes the
    /// `Malformed { message }` variant that both [`Request`] and [`WorkerEvent`] have, so a bad message
    /// is answered, never a panic.
    pub fn decode_value<O: for<'de> Deserialize<'de>>(input: JsValue) -> O {
        serde_wasm_bindgen::from_value(input).unwrap_or_else(|e| {
            let malformed =
                serde_json::json!({"Malformed": {"message": format!("an undecodable worker message: {e}")}});
            serde_json::from_value(malformed).expect("worker message types have a Malformed { message } variant")
        })
    }
}

impl yew_agent::Codec for JsCodec {
    fn encode<I: Serialize>(input: I) -> JsValue {
        Self::encode_value(input)
    }

    fn decode<O: for<'de> Deserialize<'de>>(input: JsValue) -> O {
        Self::decode_value(input)
    }
}
