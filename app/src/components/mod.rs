//! The page's parts, each a yew function component with narrow properties: only what it shows,
//! plus callbacks for what the user does. None of them sees the whole [`State`](crate::state::State);
//! [`Demo`](crate::app) builds their properties from it and turns their callbacks into actions and
//! worker requests.
//!
//! - [`header`]: title, model choice, backend, loading status, the last error and what may help.
//! - [`tabs`]: the tab buttons.
//! - [`search`]: the query form and the examples; [`results`]: the ranked sentences.
//! - [`bias`]: the language-bias charts of the last search; [`dataset`]: every model's bias on the
//!   whole dataset.
//! - [`docs`]: the user's own documents (files into collections, embedding, storage);
//!   [`docs_search`]: searching a collection, with its language-bias view.
//! - [`eval`]: the LAReQA evaluator; [`report`]: its finished table.
//! - [`check`]: re-embedding in the browser against the precomputed vectors.
//! - [`footer`]: the licences.
//! - Shared: [`group`] (the parallel answer group line), [`job`] (a job's progress bar),
//!   [`format`] (numbers and missing values).

pub(crate) mod bias;
pub(crate) mod check;
pub(crate) mod dataset;
pub(crate) mod docs;
pub(crate) mod docs_search;
pub(crate) mod eval;
pub(crate) mod footer;
pub(crate) mod format;
pub(crate) mod group;
pub(crate) mod header;
pub(crate) mod job;
pub(crate) mod report;
pub(crate) mod results;
pub(crate) mod search;
pub(crate) mod tabs;
