//! The page's state: everything the page shows lives in one [`State`], changed only by [`Action`]s
//! (the worker's [`WorkerEvent`]s and the user's input) through [`State`]'s reducer. Requests to the
//! worker carry ids from one counter; an answer whose id is not the newest of its kind is dropped.
//! The worker answers one request at a time, in order, so a search sent during a long job waits
//! (`State::search_status` says it is queued).
//!
//! The address is part of the state: [`State::from_location`] reads
//! `?q=…&lang=…&k=…&cpu=1&gpu=software`, and `replace_url` writes a search back so that it can be
//! shared.

use std::collections::BTreeSet;
use std::rc::Rc;

use wasm_bindgen::{JsCast, JsValue};
use web_sys::Url;
use yew::prelude::*;

use crate::docs::state::{DocsAction, DocsState};
use crate::protocol::{AnswerGroup, BiasView, Hit, Manifest, Report, Request, Split, Threads, WorkerEvent};

/// Longest query the page sends, in characters (also the query box's `maxlength`).
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Choices of the top-k select.
pub(crate) const TOP_K: [usize; 4] = [5, 10, 20, 50];

/// Results shown when the address does not say.
pub(crate) const DEFAULT_K: usize = 10;

/// The article splits the evaluator offers, the default first.
pub(crate) const SPLITS: [Split; 4] = [Split::Test, Split::Dev, Split::All, Split::Train];

/// Candidates of XQuAD-R, used until the manifest says.
pub(crate) const FALLBACK_CANDIDATES: usize = 13_014;

/// The page's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// The query box and the ranked results.
    Search,
    /// Where the parallel answers of the last search land, per language.
    Bias,
    /// The LAReQA evaluator.
    Evaluate,
    /// Re-embedding in the browser against the precomputed vectors.
    Check,
    /// The user's own documents.
    Docs,
}

impl Tab {
    /// The tabs in their order on the page.
    pub(crate) const ALL: [Tab; 5] = [Tab::Search, Tab::Bias, Tab::Docs, Tab::Evaluate, Tab::Check];

    /// Id of the tab button.
    pub(crate) fn tab_id(self) -> &'static str {
        match self {
            Tab::Search => "search-tab",
            Tab::Bias => "bias-tab",
            Tab::Evaluate => "eval-tab",
            Tab::Check => "check-tab",
            Tab::Docs => "docs-tab",
        }
    }

    /// Id of the panel the tab shows.
    pub(crate) fn panel_id(self) -> &'static str {
        match self {
            Tab::Search => "search-panel",
            Tab::Bias => "bias-panel",
            Tab::Evaluate => "eval-panel",
            Tab::Check => "check-panel",
            Tab::Docs => "docs-panel",
        }
    }

    /// Text of the tab button.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Tab::Search => "Search",
            Tab::Bias => "Language bias",
            Tab::Evaluate => "Evaluate",
            Tab::Check => "Check the encoder",
            Tab::Docs => "Your documents",
        }
    }

    /// The tab `by` places further, wrapping around.
    pub(crate) fn step(self, by: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        let at = Tab::ALL.iter().position(|&t| t == self).unwrap_or(0) as isize;
        Tab::ALL[(at + by).rem_euclid(n) as usize]
    }
}

/// What a `Load` request asks for (kept so that "Retry" can send it again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSettings {
    /// Model name; `None` = the manifest's first.
    pub model: Option<String>,
    /// Use a software WebGPU adapter if that is all there is.
    pub allow_software_gpu: bool,
    /// Use the wasm CPU backend even when WebGPU is available.
    pub force_cpu: bool,
}

impl LoadSettings {
    /// The request; the manifest is in the page's own directory.
    pub(crate) fn request(&self, id: u32) -> Request {
        Request::Load {
            id,
            base_url: absolute_url("."),
            model: self.model.clone(),
            allow_software_gpu: self.allow_software_gpu,
            force_cpu: self.force_cpu,
        }
    }
}

/// A search as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The text, as typed.
    pub text: String,
    /// Only candidates of this corpus language; `None` = the pooled corpus.
    pub lang: Option<String>,
    /// Results to show.
    pub k: usize,
}

/// The model as the worker reported it when it became ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Model name.
    pub model: String,
    /// Backend label.
    pub backend: String,
    /// Whether the backend is WebGPU.
    pub gpu: bool,
    /// Milliseconds spent loading.
    pub load_ms: f64,
    /// Bytes downloaded (0 = everything came from the cache).
    pub downloaded: u64,
    /// Candidates in the corpus.
    pub candidates: usize,
    /// The CPU backend's threads.
    pub threads: Threads,
}

/// The file being fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// File name.
    pub file: String,
    /// Bytes received.
    pub loaded: u64,
    /// Bytes expected (0 = unknown).
    pub total: u64,
    /// Whether it comes from the Cache API.
    pub cached: bool,
}

/// A search that was sent and is not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSearch {
    /// Request id.
    pub id: u32,
    /// The language filter it was sent with.
    pub lang: Option<String>,
    /// Its k.
    pub k: usize,
}

/// The answer to the newest search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// Request id.
    pub id: u32,
    /// The query as embedded.
    pub query: String,
    /// Tokens fed to the encoder.
    pub tokens: usize,
    /// Whether the query was cut to the encoder's input length.
    pub truncated: bool,
    /// Ranked candidates.
    pub hits: Vec<Hit>,
    /// The parallel answer group of the bias view.
    pub group: Option<AnswerGroup>,
    /// The bias view, one per model.
    pub bias: Vec<BiasView>,
    /// Milliseconds encoding the query.
    pub encode_ms: f64,
    /// Milliseconds ranking.
    pub rank_ms: f64,
    /// The language filter of the search.
    pub lang: Option<String>,
    /// Its k.
    pub k: usize,
}

/// What the evaluator was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalSettings {
    /// The model whose vectors are scored.
    pub model: String,
    /// Query languages.
    pub langs: Vec<String>,
    /// Article split.
    pub split: Split,
    /// The first N questions (`None` = all).
    pub max_questions: Option<usize>,
}

/// A long job of the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Re-embedding corpus sentences in the browser.
    Reembed {
        /// Sentences asked for.
        count: usize,
    },
    /// The LAReQA evaluation.
    Evaluate(EvalSettings),
}

impl JobKind {
    /// The job in words, after "the worker finishes".
    fn describe(&self) -> String {
        match self {
            JobKind::Reembed { count } => format!("re-embedding {count} sentences"),
            JobKind::Evaluate(_) => "the evaluation".to_string(),
        }
    }
}

/// How far a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStep {
    /// Units done.
    pub done: usize,
    /// Units in all.
    pub total: usize,
    /// What is being done.
    pub what: String,
}

/// The running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Request id.
    pub id: u32,
    /// What it is.
    pub kind: JobKind,
    /// The last progress report, if any.
    pub progress: Option<JobStep>,
}

/// The outcome of re-embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Reembedding {
    /// Sentences compared.
    pub count: usize,
    /// Smallest cosine to the precomputed vectors.
    pub min_cosine: f32,
    /// Mean cosine.
    pub mean_cosine: f32,
    /// Milliseconds spent encoding.
    pub ms: f64,
}

/// A finished evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// What was asked.
    pub settings: EvalSettings,
    /// The mlr-eval report.
    pub report: Rc<Report>,
    /// The report as JSON (the `data-json` of the result).
    pub json: String,
    /// The worker's markdown table.
    pub table: String,
    /// Milliseconds spent scoring.
    pub ms: f64,
}

/// An error the worker reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// Whether the CPU backend may help.
    pub gpu: bool,
    /// What failed.
    pub kind: FailureKind,
}

/// What a [`Failure`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Loading the model failed: nothing is loaded ("Retry" loads again).
    Load,
    /// A search or a job failed; the model is still loaded.
    Request,
    /// The worker stopped (a panic); only a reload of the page helps.
    Crashed,
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct State {
    /// The manifest, once the worker has read it.
    pub manifest: Option<Rc<Manifest>>,
    /// The model asked for or loaded.
    pub model: Option<String>,
    /// Use a software WebGPU adapter if that is all there is.
    pub allow_software_gpu: bool,
    /// The last load skipped WebGPU.
    pub force_cpu: bool,
    /// The last load request.
    pub last_load: Option<LoadSettings>,
    /// Id of the newest `Load`; answers to older ones are ignored.
    pub load_id: u32,
    /// A load was sent and is not answered yet.
    pub loading: bool,
    /// Loading, ready or failed, in words.
    pub status: String,
    /// The download in progress.
    pub download: Option<Download>,
    /// The model, once ready.
    pub loaded: Option<Loaded>,
    /// The last error.
    pub error: Option<Failure>,
    /// The tab shown.
    pub tab: Tab,
    /// The query box.
    pub query: String,
    /// The language filter.
    pub lang: Option<String>,
    /// Results to show.
    pub k: usize,
    /// Show "Type a question first."
    pub hint: bool,
    /// Run the query of the box as soon as the model is ready (from the address or an example).
    pub run_when_ready: bool,
    /// The newest request id.
    pub last_id: u32,
    /// The newest search, while it is not answered.
    pub search: Option<PendingSearch>,
    /// The answer to the newest search.
    pub results: Option<Rc<SearchResults>>,
    /// The running job.
    pub job: Option<Job>,
    /// Languages the user unticked in the evaluator (all are ticked at first).
    pub eval_off: BTreeSet<String>,
    /// The evaluator's number of questions, as typed.
    pub eval_questions: String,
    /// The evaluator's split.
    pub eval_split: Split,
    /// Sentences to re-embed, as typed.
    pub reembed_count: String,
    /// The last re-embedding.
    pub reembedded: Option<Reembedding>,
    /// The last evaluation.
    pub evaluation: Option<Rc<Evaluation>>,
    /// The "Your documents" tab.
    pub docs: DocsState,
}

impl Default for State {
    fn default() -> Self {
        Self {
            manifest: None,
            model: None,
            allow_software_gpu: false,
            force_cpu: false,
            last_load: None,
            load_id: 0,
            loading: false,
            status: "starting the worker".into(),
            download: None,
            loaded: None,
            error: None,
            tab: Tab::Search,
            query: String::new(),
            lang: None,
            k: DEFAULT_K,
            hint: false,
            run_when_ready: false,
            last_id: 0,
            search: None,
            results: None,
            job: None,
            eval_off: BTreeSet::new(),
            eval_questions: "50".into(),
            eval_split: SPLITS[0],
            reembed_count: "32".into(),
            reembedded: None,
            evaluation: None,
            docs: DocsState::default(),
        }
    }
}

impl State {
    /// The initial state, with the query, language and k of the page's address
    /// (`?q=…&lang=…&k=…`); a query there runs once the model is ready.
    pub fn from_location() -> Self {
        let mut state = State::default();
        if let Some(url) = page_url() {
            let params = url.search_params();
            if let Some(q) = params.get("q") {
                state.query = clip(&q);
                state.run_when_ready = !state.query.trim().is_empty();
            }
            state.lang = params.get("lang").filter(|lang| !lang.is_empty());
            // `cpu=1`: the worker stopped on WebGPU before; stay on the CPU backend.
            state.force_cpu = params.get("cpu").is_some_and(|v| v == "1");
            // `gpu=software`: the switch "use a software WebGPU adapter" (it reloads the page
            // when it needs the other worker, see `workers.rs`).
            state.allow_software_gpu = params.get("gpu").is_some_and(|v| v == "software");
            if let Some(k) = params.get("k").and_then(|k| k.trim().parse::<usize>().ok()).filter(|k| TOP_K.contains(k))
            {
                state.k = k;
            }
        }
        state
    }

    /// Candidates in the corpus (for the log scale of the bias bars).
    pub(crate) fn candidates(&self) -> usize {
        self.loaded
            .as_ref()
            .map(|l| l.candidates)
            .or_else(|| self.manifest.as_ref().map(|m| m.dataset.n_candidates))
            .unwrap_or(FALLBACK_CANDIDATES)
    }

    /// The corpus languages (empty until the manifest is read).
    pub(crate) fn langs(&self) -> &[String] {
        match &self.manifest {
            Some(manifest) => &manifest.dataset.langs,
            None => &[],
        }
    }

    /// What the newest search is doing, if it is not answered yet.
    pub(crate) fn search_status(&self) -> Option<String> {
        if self.run_when_ready && self.loaded.is_none() {
            return Some("The search runs as soon as the model is ready.".into());
        }
        let pending = self.search.as_ref()?;
        Some(match &self.job {
            Some(job) if job.id < pending.id => {
                format!("Search queued: the worker finishes {} first.", job.kind.describe())
            }
            _ => "Searching…".into(),
        })
    }

    /// Why a job button is disabled, if it is.
    pub(crate) fn job_blocker(&self) -> Option<&'static str> {
        if self.loaded.is_none() {
            Some("Waiting for the model.")
        } else if self.job.is_some() {
            Some("The worker is busy with another job.")
        } else {
            None
        }
    }

    /// The running job, if it is of the kind `is`.
    pub(crate) fn job_of(&self, is: fn(&JobKind) -> bool) -> Option<Job> {
        self.job.as_ref().filter(|job| is(&job.kind)).cloned()
    }

    /// Applies a worker event.
    fn on_event(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Manifest(manifest) => {
                if self.model.is_none() {
                    self.model = manifest.models.first().map(|m| m.name.clone());
                }
                if self.lang.as_ref().is_some_and(|lang| !manifest.dataset.langs.contains(lang)) {
                    self.lang = None;
                }
                self.manifest = Some(Rc::new(manifest));
            }
            WorkerEvent::Progress { file, loaded, total, cached } => {
                self.status =
                    if cached { format!("reading {file} from the cache") } else { format!("downloading {file}") };
                self.download = Some(Download { file, loaded, total, cached });
            }
            WorkerEvent::Status(text) => {
                self.status = text;
                self.download = None;
            }
            WorkerEvent::Ready { id, model, backend, gpu, load_ms, downloaded, candidates, threads } => {
                if id != self.load_id {
                    return;
                }
                self.status = "ready".into();
                self.download = None;
                self.loading = false;
                self.error = None;
                self.model = Some(model.clone());
                self.loaded = Some(Loaded { model, backend, gpu, load_ms, downloaded, candidates, threads });
            }
            WorkerEvent::Results { id, query, tokens, truncated, hits, group, bias, encode_ms, rank_ms, fetched } => {
                // Word-table pieces this query needed count towards the visit's download.
                if let Some(loaded) = &mut self.loaded {
                    loaded.downloaded += fetched;
                }
                let Some(pending) = self.search.take_if(|p| p.id == id) else {
                    return;
                };
                self.error = None;
                self.results = Some(Rc::new(SearchResults {
                    id,
                    query,
                    tokens,
                    truncated,
                    hits,
                    group,
                    bias,
                    encode_ms,
                    rank_ms,
                    lang: pending.lang,
                    k: pending.k,
                }));
            }
            WorkerEvent::JobProgress { id, done, total, what } => {
                if let Some(job) = self.job.as_mut().filter(|job| job.id == id) {
                    job.progress = Some(JobStep { done, total, what });
                }
            }
            WorkerEvent::Reembedded { id, count, min_cosine, mean_cosine, ms } => {
                if self.job.take_if(|job| job.id == id).is_some() {
                    self.error = None;
                    self.reembedded = Some(Reembedding { count, min_cosine, mean_cosine, ms });
                }
            }
            WorkerEvent::Evaluated { id, report, table, ms } => {
                if let Some(Job { kind: JobKind::Evaluate(settings), .. }) = self.job.take_if(|job| job.id == id) {
                    self.error = None;
                    let json = serde_json::to_string(&*report).unwrap_or_default();
                    self.evaluation = Some(Rc::new(Evaluation { settings, report: Rc::from(report), json, table, ms }));
                }
            }
            WorkerEvent::Docs { id, event } => self.docs.on_event(id, *event),
            WorkerEvent::Error { id, error } if self.docs.owns(id) => self.docs.on_error(id, error.to_string()),
            WorkerEvent::Error { id, error } => {
                let kind = if error.is_load() {
                    if id != self.load_id {
                        return; // a superseded load
                    }
                    self.status = "error".into();
                    self.loading = false;
                    self.loaded = None;
                    self.download = None;
                    FailureKind::Load
                } else {
                    let search = self.search.as_ref().is_some_and(|p| p.id == id);
                    let job = self.job.as_ref().is_some_and(|job| job.id == id);
                    if !search && !job {
                        return; // the answer to a request the page no longer waits for
                    }
                    if search {
                        self.search = None;
                    }
                    if job {
                        self.job = None;
                    }
                    FailureKind::Request
                };
                self.error = Some(Failure { message: error.to_string(), gpu: error.gpu(), kind });
            }
            WorkerEvent::Malformed { message } => {
                self.error = Some(Failure { message, gpu: false, kind: FailureKind::Request });
            }
        }
    }
}

/// State changes.
#[derive(Debug)]
pub enum Action {
    /// A worker event arrived.
    Worker(WorkerEvent),
    /// A tab was chosen.
    SetTab(Tab),
    /// The query box was edited.
    SetQuery(String),
    /// The language filter changed (no search to re-run).
    SetLang(Option<String>),
    /// The top-k select changed (no search to re-run).
    SetK(usize),
    /// A search with an empty query was asked for.
    EmptyQuery,
    /// A query to run once the model is ready (an example clicked while loading).
    Defer(String),
    /// A load request was sent.
    Loading(LoadSettings, u32),
    /// The worker stopped (its panic message).
    WorkerCrashed(String),
    /// A search request was sent.
    Searching {
        /// Its id.
        id: u32,
        /// What was asked.
        query: Query,
    },
    /// A long job was sent.
    Started(Job),
    /// An evaluator language was ticked or unticked.
    SetEvalLang(String, bool),
    /// All evaluator languages ticked (`true`) or unticked.
    SetAllEvalLangs(bool),
    /// The evaluator's number of questions was edited.
    SetEvalQuestions(String),
    /// The evaluator's split changed.
    SetEvalSplit(Split),
    /// The number of sentences to re-embed was edited.
    SetReembedCount(String),
    /// Something happened in the "Your documents" tab.
    Docs(DocsAction),
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Worker(event) => s.on_event(event),
            Action::SetTab(tab) => s.tab = tab,
            Action::SetQuery(text) => {
                s.query = text;
                s.hint = false;
            }
            Action::SetLang(lang) => s.lang = lang,
            Action::SetK(k) => s.k = k,
            Action::EmptyQuery => s.hint = true,
            Action::Defer(text) => {
                s.query = text;
                s.hint = false;
                s.run_when_ready = true;
            }
            Action::WorkerCrashed(message) => {
                s.loading = false;
                s.loaded = None;
                s.download = None;
                s.search = None;
                s.job = None;
                s.docs.pending.clear();
                s.docs.embedding = None;
                s.status = "the worker stopped".into();
                let gpu = s.last_load.as_ref().is_some_and(|l| !l.force_cpu);
                s.error = Some(Failure {
                    message: format!("The encoder worker stopped: {message}. Reload the page to start it again."),
                    gpu,
                    kind: FailureKind::Crashed,
                });
            }
            Action::Loading(settings, id) => {
                s.load_id = id;
                s.allow_software_gpu = settings.allow_software_gpu;
                s.force_cpu = settings.force_cpu;
                if settings.model.is_some() {
                    s.model = settings.model.clone();
                }
                s.last_load = Some(settings);
                s.loading = true;
                s.loaded = None;
                s.error = None;
                s.download = None;
                s.status = "loading".into();
            }
            Action::Searching { id, query } => {
                s.last_id = s.last_id.max(id);
                s.hint = false;
                s.run_when_ready = false;
                s.search = Some(PendingSearch { id, lang: query.lang.clone(), k: query.k });
                s.query = query.text;
                s.lang = query.lang;
                s.k = query.k;
            }
            Action::Started(job) => {
                s.last_id = s.last_id.max(job.id);
                s.job = Some(job);
            }
            Action::SetEvalLang(lang, on) => {
                if on {
                    s.eval_off.remove(&lang);
                } else {
                    s.eval_off.insert(lang);
                }
            }
            Action::SetAllEvalLangs(on) => {
                s.eval_off = if on { BTreeSet::new() } else { s.langs().iter().cloned().collect() };
            }
            Action::SetEvalQuestions(text) => s.eval_questions = text,
            Action::SetEvalSplit(split) => s.eval_split = split,
            Action::SetReembedCount(text) => s.reembed_count = text,
            Action::Docs(action) => {
                if let DocsAction::Sent(id, _) = action {
                    s.last_id = s.last_id.max(id);
                }
                s.docs.apply(action)
            }
        }
        Rc::new(s)
    }
}

/// Resolves `path` against the page's address: the worker runs from a blob URL, where relative
/// URLs cannot be fetched.
pub(crate) fn absolute_url(path: &str) -> String {
    let base = web_sys::window().and_then(|w| w.location().href().ok()).unwrap_or_default();
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"URL".into())
        .ok()
        .and_then(|ctor| ctor.dyn_into::<js_sys::Function>().ok())
        .and_then(|ctor| js_sys::Reflect::construct(&ctor, &js_sys::Array::of2(&path.into(), &base.into())).ok())
        .and_then(|url| js_sys::Reflect::get(&url, &"href".into()).ok())
        .and_then(|href| href.as_string())
        .unwrap_or_else(|| path.to_string())
}

/// The page's address, parsed.
pub(crate) fn page_url() -> Option<Url> {
    let href = web_sys::window()?.location().href().ok()?;
    Url::new(&href).ok()
}

/// Keeps `query` in the address (`?q=…&lang=…&k=…`) so the search can be shared, without a new
/// history entry.
pub(crate) fn replace_url(query: &Query) {
    let (Some(window), Some(url)) = (web_sys::window(), page_url()) else {
        return;
    };
    let params = url.search_params();
    params.set("q", &query.text);
    match &query.lang {
        Some(lang) => params.set("lang", lang),
        None => params.delete("lang"),
    }
    params.set("k", &query.k.to_string());
    let href = url.href();
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(href.as_str()));
    }
}

/// At most [`MAX_QUERY_CHARS`] characters of `text`.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(MAX_QUERY_CHARS).collect()
}
