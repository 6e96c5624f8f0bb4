//! The page's half of "Your documents": the stored collections as the worker last listed them,
//! the one chosen, the running embedding, the last search and the forms, changed only by
//! [`DocsAction`]s and the worker's [`DocsEvent`]s (through the page's reducer,
//! [`crate::state::State`]). Requests carry ids from the page's one counter; an answer to a
//! request the page no longer waits for is dropped.

use std::rc::Rc;

use super::protocol::{BiasTable, CollectionInfo, DocsEvent, DocsOp, DocsResults, EmbedProgress, FileReport};

/// What a request sent to the worker was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Listing.
    List,
    /// Making a collection from files.
    Create,
    /// Embedding (the job's id).
    Embed,
    /// Cancelling the embedding.
    Cancel,
    /// A search.
    Search,
    /// Marking translations.
    Mark,
    /// Deleting.
    Delete,
    /// Exporting.
    Export,
    /// Importing.
    Import,
}

impl Sent {
    /// The kind of `op`.
    pub fn of(op: &DocsOp) -> Sent {
        match op {
            DocsOp::List => Sent::List,
            DocsOp::Create { .. } => Sent::Create,
            DocsOp::Embed { .. } => Sent::Embed,
            DocsOp::Cancel => Sent::Cancel,
            DocsOp::Search { .. } => Sent::Search,
            DocsOp::MarkTranslations { .. } => Sent::Mark,
            DocsOp::Delete { .. } => Sent::Delete,
            DocsOp::Export { .. } => Sent::Export,
            DocsOp::Import { .. } => Sent::Import,
        }
    }
}

/// How the last embedding ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedEnd {
    /// Its pace.
    pub progress: EmbedProgress,
    /// Why it stopped before the end, if it did.
    pub stopped: Option<String>,
}

/// The "Your documents" tab's state.
#[derive(Debug, Clone, PartialEq)]
pub struct DocsState {
    /// The stored collections (`None` until the worker has listed them).
    pub collections: Option<Vec<CollectionInfo>>,
    /// Bytes the page's storage uses, and its quota.
    pub storage: Option<(f64, f64)>,
    /// The collection chosen (its storage name).
    pub selected: Option<String>,
    /// Requests not answered yet.
    pub pending: Vec<(u32, Sent)>,
    /// How the files of the last collection made were read.
    pub reports: Vec<FileReport>,
    /// The running embedding: its request id and last progress.
    pub embedding: Option<(u32, EmbedProgress)>,
    /// How the last embedding ended.
    pub last_embed: Option<EmbedEnd>,
    /// The last search's answer.
    pub results: Option<Rc<DocsResults>>,
    /// Its request id.
    pub results_id: u32,
    /// Top-k shares averaged over this visit's searches of the chosen collection, by the
    /// query's language.
    pub bias: BiasTable,
    /// The last error, in words.
    pub error: Option<String>,
    /// The last export (its file name), to say where it went.
    pub exported: Option<String>,
    /// Passages of the last search ticked to be marked as translations.
    pub ticked: Vec<usize>,
    /// The last marking: the group's key and its size.
    pub marked: Option<(String, usize)>,
    /// Collection name, as typed.
    pub name: String,
    /// Token budget, as typed.
    pub budget: String,
    /// CSV/TSV text column, as typed (empty: `text`, else the first).
    pub column: String,
    /// Pasted text.
    pub paste: String,
    /// The query box.
    pub query: String,
    /// Only passages of this language.
    pub lang: Option<String>,
    /// Results to show.
    pub k: usize,
}

impl Default for DocsState {
    fn default() -> Self {
        DocsState {
            collections: None,
            storage: None,
            selected: None,
            pending: Vec::new(),
            reports: Vec::new(),
            embedding: None,
            last_embed: None,
            results: None,
            results_id: 0,
            bias: BiasTable::default(),
            error: None,
            exported: None,
            ticked: Vec::new(),
            marked: None,
            name: String::new(),
            budget: mlr_docs::split::DEFAULT_BUDGET.to_string(),
            column: String::new(),
            paste: String::new(),
            query: String::new(),
            lang: None,
            k: 10,
        }
    }
}

/// What the user does in the tab (requests to the worker go through [`DocsAction::Sent`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DocsAction {
    /// A request was sent.
    Sent(u32, Sent),
    /// A collection was chosen.
    Select(String),
    /// The files could not be read by the page.
    ReadFailed(String),
    /// The name box was edited.
    SetName(String),
    /// The budget box was edited.
    SetBudget(String),
    /// The column box was edited.
    SetColumn(String),
    /// The paste box was edited.
    SetPaste(String),
    /// The query box was edited.
    SetQuery(String),
    /// The language filter changed.
    SetLang(Option<String>),
    /// The top-k select changed.
    SetK(usize),
    /// A passage was ticked (`true`) or unticked to be marked as a translation.
    Tick(usize, bool),
}

impl DocsState {
    /// Whether request `id` is one of this tab's, not answered yet (or its running embedding).
    pub fn owns(&self, id: u32) -> bool {
        self.pending.iter().any(|(p, _)| *p == id) || self.embedding.as_ref().is_some_and(|(e, _)| *e == id)
    }

    /// Whether a request of kind `kind` waits for its answer.
    pub fn waits(&self, kind: Sent) -> bool {
        self.pending.iter().any(|(_, k)| *k == kind)
    }

    /// The chosen collection's list entry.
    pub fn chosen(&self) -> Option<&CollectionInfo> {
        let file = self.selected.as_ref()?;
        self.collections.as_ref()?.iter().find(|c| &c.file == file)
    }

    /// The token budget typed, if it is a whole number of at least the smallest budget.
    pub fn budget(&self) -> Option<usize> {
        self.budget.trim().parse::<usize>().ok().filter(|&b| (mlr_docs::split::MIN_BUDGET..=512).contains(&b))
    }

    /// Applies an action.
    pub fn apply(&mut self, action: DocsAction) {
        match action {
            DocsAction::Sent(id, kind) => {
                self.error = None;
                if kind == Sent::Embed {
                    self.last_embed = None;
                }
                if kind == Sent::Search {
                    // Only the newest search counts.
                    self.pending.retain(|(_, k)| *k != Sent::Search);
                }
                self.pending.push((id, kind));
            }
            DocsAction::Select(file) => {
                if self.selected.as_ref() != Some(&file) {
                    self.results = None;
                    self.ticked.clear();
                    self.marked = None;
                    self.bias = BiasTable::default();
                    self.lang = None;
                }
                self.selected = Some(file);
            }
            DocsAction::ReadFailed(message) => self.error = Some(message),
            DocsAction::SetName(v) => self.name = v,
            DocsAction::SetBudget(v) => self.budget = v,
            DocsAction::SetColumn(v) => self.column = v,
            DocsAction::SetPaste(v) => self.paste = v,
            DocsAction::SetQuery(v) => self.query = v,
            DocsAction::SetLang(v) => self.lang = v,
            DocsAction::SetK(v) => self.k = v,
            DocsAction::Tick(passage, on) => {
                self.ticked.retain(|&p| p != passage);
                if on {
                    self.ticked.push(passage);
                }
            }
        }
    }

    /// Applies the worker's answer to request `id`.
    pub fn on_event(&mut self, id: u32, event: DocsEvent) {
        let sent = self.pending.iter().position(|(p, _)| *p == id).map(|i| self.pending.remove(i).1);
        match event {
            DocsEvent::Listed { collections, storage } => {
                if self.selected.as_ref().is_some_and(|f| !collections.iter().any(|c| &c.file == f)) {
                    self.selected = None;
                    self.results = None;
                    self.bias = BiasTable::default();
                }
                if self.selected.is_none() {
                    self.selected = collections.iter().find(|c| c.usable).map(|c| c.file.clone());
                }
                self.collections = Some(collections);
                self.storage = storage;
            }
            DocsEvent::Created { info, files } => {
                self.reports = files;
                self.paste.clear();
                self.name.clear();
                self.apply(DocsAction::Select(info.file.clone()));
                self.upsert(info);
            }
            DocsEvent::Progress(progress) => {
                if let Some(c) = self.entry(&progress.file) {
                    c.embedded = progress.done;
                }
                self.embedding = Some((id, progress));
            }
            DocsEvent::Embedded { info, stopped, progress } => {
                if self.embedding.as_ref().is_none_or(|(e, _)| *e == id) {
                    self.embedding = None;
                }
                // A cancel is answered by the job's end.
                self.pending.retain(|(_, k)| *k != Sent::Cancel);
                self.last_embed = Some(EmbedEnd { progress, stopped });
                self.upsert(info);
            }
            DocsEvent::Results(results) => {
                if sent != Some(Sent::Search) {
                    return; // a superseded search
                }
                if self.selected.as_ref() == Some(&results.file) {
                    self.bias.add(&results.query_lang, &results.shares);
                }
                self.results = Some(Rc::from(results));
                self.results_id = id;
            }
            DocsEvent::Marked { info, group, members } => {
                self.ticked.clear();
                self.marked = Some((group, members));
                self.upsert(info);
            }
            DocsEvent::Exported { file, .. } => self.exported = Some(file),
        }
    }

    /// Applies the worker's error for request `id`.
    pub fn on_error(&mut self, id: u32, message: String) {
        self.pending.retain(|(p, _)| *p != id);
        if self.embedding.as_ref().is_some_and(|(e, _)| *e == id) {
            self.embedding = None;
        }
        self.error = Some(message);
    }

    fn entry(&mut self, file: &str) -> Option<&mut CollectionInfo> {
        self.collections.as_mut()?.iter_mut().find(|c| c.file == file)
    }

    /// Puts `info` in the list (new ones first).
    fn upsert(&mut self, info: CollectionInfo) {
        match self.entry(&info.file) {
            Some(c) => *c = info,
            None => self.collections.get_or_insert_with(Vec::new).insert(0, info),
        }
    }
}
