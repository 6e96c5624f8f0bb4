//! Your own documents: files in any mix of languages made into a searchable collection, shared by
//! `mlr docs` / `mlr search --collection` (native) and the web page's "Your documents" tab.
//!
//! - [`read`]: bytes of a file into records. Text and Markdown (a record per paragraph), JSON lines
//!   (a string or `{"text", "id"?, "lang"?}` per line) and CSV or TSV (one column's field per row);
//!   UTF-8 (a byte-order mark is dropped) or UTF-16 with its mark. An empty file, a binary file,
//!   another encoding or an oversized file is an error saying which; a malformed line is skipped
//!   and reported, never the whole file lost.
//! - [`split`]: records into passages under a token budget: a record that fits is one passage,
//!   else its sentences (Unicode's UAX #29 boundaries) are packed greedily, and a sentence over the
//!   budget is cut at word boundaries, then at characters.
//! - [`lang`]: each passage's language, an ISO 639-1 code: the record's own `lang` if it gives one,
//!   else detected (whatlang); a detection whatlang calls unreliable takes its file's most common
//!   reliable language.
//! - [`collection`]: the collection file (`.mlrc`): its passages, where each came from, the model
//!   that embedded them and their vectors (the demo's `.mlrv` format), embedded or partly so.
//! - [`search`]: ranking a collection for a query vector (pooled or one language, ties broken as
//!   `mlr eval` breaks them) and the language-bias view: each language's share of the collection
//!   against its share of the top k, and the rank distance of passages marked as translations.
//!
//! No burn, no tokenizer and no I/O: the token count is a function the caller passes, and
//! everything works on bytes and slices, so it runs unchanged in wasm.
#![deny(missing_docs)]

pub mod collection;
pub mod lang;
pub mod read;
pub mod search;
pub mod split;

pub use collection::{Collection, ModelRef, Passage, Source};
pub use lang::{detect, LangSource};
pub use read::{Format, Read, Record};
pub use split::split;

/// Why documents could not be read, or a collection used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocsError {
    /// The file holds no text.
    #[error("{file}: the file is empty")]
    Empty {
        /// File name.
        file: String,
    },
    /// The file is not text (a NUL byte near its start).
    #[error("{file}: not a text file (a NUL byte at byte {offset}); open text, Markdown, JSON lines or CSV")]
    Binary {
        /// File name.
        file: String,
        /// Offset of the first NUL byte.
        offset: usize,
    },
    /// The file is neither UTF-8 nor UTF-16 with a byte-order mark.
    #[error("{file}: not UTF-8 text (an invalid byte sequence at byte {offset}); save it as UTF-8 and open it again")]
    Encoding {
        /// File name.
        file: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The file is larger than [`read::MAX_FILE_BYTES`].
    #[error("{file}: {bytes} bytes, more than the {max} a file may have; split it into smaller files")]
    TooLarge {
        /// File name.
        file: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// A kind of file this crate does not read.
    #[error("{file}: {why}")]
    Unsupported {
        /// File name.
        file: String,
        /// What is not supported, and what to do instead.
        why: String,
    },
    /// A CSV file has no such column.
    #[error("{file}: no column {column:?} (the columns are {columns})")]
    Column {
        /// File name.
        file: String,
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        columns: String,
    },
    /// A collection file is malformed; the message names the field.
    #[error("collection file: {0}")]
    Collection(String),
    /// A request over a collection cannot be answered (an unknown language, a vector of the
    /// wrong width, a group with a passage out of range).
    #[error("{0}")]
    Search(String),
}
