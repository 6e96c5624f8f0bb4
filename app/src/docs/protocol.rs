//! The worker messages of "Your documents": what the page asks ([`DocsOp`], inside
//! [`Request::Docs`](crate::protocol::Request::Docs)) and what the worker answers ([`DocsEvent`],
//! inside [`WorkerEvent::Docs`](crate::protocol::WorkerEvent::Docs)), both under the request's id.
//! A failed operation is answered with [`WorkerError::Docs`](crate::protocol::WorkerError::Docs).
//!
//! Files and collection files cross the boundary as `Uint8Array`s (`serde_bytes`), not as arrays
//! of numbers: a 50 MB file is one copy.

use serde::{Deserialize, Serialize};

pub use mlr_docs::search::{BiasTable, GroupRank, LangShare};

/// A file the page read (opened, dropped or pasted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocFile {
    /// Its name (the extension says how to read it: `.txt`, `.md`, `.jsonl`, `.csv`, `.tsv`).
    pub name: String,
    /// Its bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// What the page asks of the collections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocsOp {
    /// The stored collections and the storage used.
    List,
    /// A new collection from files, for the loaded model: read, split and language-tagged, stored
    /// without vectors (answered with the passage counts, before anything is embedded).
    Create {
        /// A name for people (the first file's name when empty).
        name: String,
        /// Token budget of a passage.
        budget: usize,
        /// The CSV/TSV column holding the text (`None`: `text`, else the first).
        column: Option<String>,
        /// The files.
        files: Vec<DocFile>,
    },
    /// Embeds the passages of stored collection `file` not embedded yet, a batch at a time; the
    /// worker answers other requests between batches and saves every few seconds.
    Embed {
        /// The collection's storage name.
        file: String,
    },
    /// Stops the running embedding after its batch (what is done is saved and kept).
    Cancel,
    /// Ranks the embedded passages of collection `file` for a query.
    Search {
        /// The collection's storage name.
        file: String,
        /// The query, in any language.
        query: String,
        /// Results to return.
        k: usize,
        /// Only passages in this language (`None`: pooled).
        lang: Option<String>,
    },
    /// Marks passages of collection `file` as translations of each other: they join the group
    /// one of them is in, else a new one (answered with the group's key).
    MarkTranslations {
        /// The collection's storage name.
        file: String,
        /// The passages (indices), two or more.
        passages: Vec<usize>,
    },
    /// Deletes a stored collection (answered with the new list).
    Delete {
        /// The collection's storage name.
        file: String,
    },
    /// The stored collection file, to save elsewhere.
    Export {
        /// The collection's storage name.
        file: String,
    },
    /// Stores a collection file exported before (answered with the new list).
    Import {
        /// The file's name.
        name: String,
        /// Its bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

impl DocsOp {
    /// The operation in words, for an error ("… failed").
    pub fn describe(&self) -> &'static str {
        match self {
            DocsOp::List => "listing the collections",
            DocsOp::Create { .. } => "reading the files",
            DocsOp::Embed { .. } => "embedding",
            DocsOp::Cancel => "cancelling",
            DocsOp::Search { .. } => "searching the collection",
            DocsOp::MarkTranslations { .. } => "marking translations",
            DocsOp::Delete { .. } => "deleting the collection",
            DocsOp::Export { .. } => "exporting the collection",
            DocsOp::Import { .. } => "importing the collection",
        }
    }
}

/// A stored collection, as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// Its storage name (`<name>-<time>.mlrc`), which every operation names it by.
    pub file: String,
    /// Its name.
    pub name: String,
    /// The model that embeds it (its name in the manifest).
    pub model: String,
    /// Whether that model, with the same weights, is the one loaded (else it cannot be searched
    /// or embedded now).
    pub usable: bool,
    /// When it was made (ISO 8601).
    pub created: String,
    /// Passages.
    pub passages: usize,
    /// Passages embedded.
    pub embedded: usize,
    /// Tokens of all passages.
    pub tokens: usize,
    /// Bytes stored.
    pub bytes: u64,
    /// Token budget.
    pub budget: usize,
    /// Passages per language, by count.
    pub langs: Vec<(String, usize)>,
    /// Its files.
    pub sources: Vec<String>,
    /// Translation groups (two passages or more).
    pub groups: usize,
    /// Why the stored file does not read as a collection, if it does not (then only its name
    /// and size are known; it can be deleted).
    pub damaged: Option<String>,
}

/// How reading one file went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// The file.
    pub name: String,
    /// Passages it gave.
    pub passages: usize,
    /// Lines or rows skipped as malformed.
    pub skipped: usize,
    /// The first of them: where and why.
    pub skips: Vec<String>,
    /// Why the whole file was refused (then it added nothing).
    pub error: Option<String>,
}

/// How fast embedding goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedProgress {
    /// The collection's storage name.
    pub file: String,
    /// Passages embedded (all sessions).
    pub done: usize,
    /// Passages in all.
    pub total: usize,
    /// Passages embedded by this job.
    pub this_job: usize,
    /// Tokens embedded by this job.
    pub tokens: usize,
    /// Milliseconds this job has run.
    pub ms: f64,
    /// Seconds left at this job's pace.
    pub eta_s: f64,
}

/// One ranked passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocHit {
    /// 1-based rank in the ranking asked for (pooled or one language).
    pub rank: usize,
    /// 1-based rank in the pooled ranking.
    pub pooled_rank: usize,
    /// Cosine similarity.
    pub score: f32,
    /// Passage index (its id is this, zero-padded).
    pub passage: usize,
    /// Language code, and how it was decided (`Given`, `Detected`, …).
    pub lang: String,
    /// How the language was decided.
    pub lang_source: String,
    /// The passage.
    pub text: String,
    /// Its file.
    pub file: String,
    /// Where in the file (`¶3`, `line 7`, with `, part 2` for a cut record).
    pub place: String,
    /// Its translation group, if any.
    pub group: Option<String>,
}

/// One translation group's ranks for a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// The group's key.
    pub key: String,
    /// Each language's best-ranked passage of the group, by rank.
    pub ranks: Vec<GroupRank>,
    /// max − min rank.
    pub rank_distance: usize,
}

/// The answer to a search of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocsResults {
    /// The collection's storage name.
    pub file: String,
    /// The query as embedded (trimmed).
    pub query: String,
    /// The query's language (whatlang), and whether that is reliable.
    pub query_lang: String,
    /// Whether whatlang calls the query's language reliable.
    pub query_lang_reliable: bool,
    /// The ranked passages.
    pub hits: Vec<DocHit>,
    /// Each language's share of the embedded passages and of the top k.
    pub shares: Vec<LangShare>,
    /// Translation groups with two or more languages embedded.
    pub groups: Vec<GroupView>,
    /// Passages embedded (the rest are not searched).
    pub embedded: usize,
    /// Passages in all.
    pub passages: usize,
    /// k as asked.
    pub k: usize,
    /// Milliseconds encoding the query.
    pub encode_ms: f64,
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocsEvent {
    /// The stored collections, newest first, and the origin's storage use.
    Listed {
        /// The collections.
        collections: Vec<CollectionInfo>,
        /// Bytes used and the quota (`navigator.storage.estimate()`), if the browser says.
        storage: Option<(f64, f64)>,
    },
    /// A collection was made from files and stored (nothing embedded yet).
    Created {
        /// The collection.
        info: CollectionInfo,
        /// Each file's outcome.
        files: Vec<FileReport>,
    },
    /// How far the embedding is (every second or so).
    Progress(EmbedProgress),
    /// The embedding stopped: every passage is embedded, or it was cancelled (`stopped` says why).
    Embedded {
        /// The collection as stored now.
        info: CollectionInfo,
        /// Why it stopped before the end, if it did.
        stopped: Option<String>,
        /// The job's pace.
        progress: EmbedProgress,
    },
    /// The answer to a search.
    Results(Box<DocsResults>),
    /// Passages were marked as translations (and the collection saved).
    Marked {
        /// The collection now.
        info: CollectionInfo,
        /// The group they are in.
        group: String,
        /// How many passages it has.
        members: usize,
    },
    /// A collection file, to save.
    Exported {
        /// The collection's storage name (and the name to save it under).
        file: String,
        /// The file.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}
