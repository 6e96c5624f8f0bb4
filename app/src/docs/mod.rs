//! "Your documents": the user's own files (text, Markdown, JSON lines, CSV/TSV) as a collection
//! (`mlr_docs`: passages under a token budget, each passage's language), embedded in the encoder
//! worker without leaving the machine, kept across visits, searched with the same result view
//! and the language-bias view, and moved between machines as one `.mlrc` file that
//! `mlr search --collection` reads.
//!
//! - [`protocol`]: the worker messages.
//! - [`worker`]: the worker's half (the embedding job between requests, search, import, export).
//! - [`store`]: where the worker keeps collections (the origin private file system).
//! - [`state`]: the page's half of the state and its actions.

pub mod protocol;
pub mod state;
pub mod store;
pub mod worker;
