//! The page: one query box over a corpus in eleven languages, the language-bias view of each
//! search, the LAReQA evaluator and a check of the browser encoder against the native vectors.
//!
//! Everything the page shows lives in one [`State`], changed only by [`Action`]s: the worker's
//! [`WorkerEvent`]s and the user's input. Requests to the worker carry ids from a counter in the state;
//! an answer whose id is not the newest of its kind is dropped. The worker answers one request at
//! a time, in order, so a search sent during a long job waits (the page says it is queued).
//!
//! The page runs under a Content-Security-Policy without `'unsafe-inline'` styles: nothing here
//! writes a `style` attribute. Bar charts are sized with SVG attributes and coloured by CSS
//! classes.

use std::collections::BTreeSet;
use std::rc::Rc;

use mlr_eval::lareqa::{LangReport, SettingScore};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{HtmlInputElement, HtmlSelectElement, Url};
use yew::prelude::*;
use yew_agent::reactor::{use_reactor_bridge, ReactorEvent, ReactorProvider};

use crate::protocol::{
    AnswerGroup, BiasView, Hit, JsCodec, LangRank, Manifest, ModelEntry, Report, Request, Split, WorkerEvent,
};
use crate::worker::EncoderReactor;

/// Longest query the page sends, in characters (also the query box's `maxlength`).
pub const MAX_QUERY_CHARS: usize = 10_000;

/// Choices of the top-k select.
const TOP_K: [usize; 4] = [5, 10, 20, 50];

/// Results shown when the address does not say.
const DEFAULT_K: usize = 10;

/// The article splits the evaluator offers, the default first.
const SPLITS: [Split; 4] = [Split::Test, Split::Dev, Split::All, Split::Train];

/// Candidates of XQuAD-R, used until the manifest says.
const FALLBACK_CANDIDATES: usize = 13_014;

/// What the ◆ mark of a hit means.
const PARALLEL_TITLE: &str = "answers the same question as the bias view's group (a parallel answer)";

/// The line under the title.
const LEAD: &str = "One multilingual encoder, eleven languages, in your browser — and how fair it is across them.";

/// An example query of the search tab.
struct Example {
    /// The query.
    text: &'static str,
    /// Its language, when it has a single one.
    lang: Option<&'static str>,
    /// What it shows (the button's tooltip).
    note: &'static str,
}

/// Example queries: several languages, code-switched ones, and one in a language outside the
/// corpus.
const EXAMPLES: &[Example] = &[
    Example {
        text: "¿cuándo fue fundada la Universidad de Chicago 大学?",
        lang: None,
        note: "Spanish mixed with Chinese",
    },
    Example { text: "Who was the Super Bowl 50 MVP?", lang: Some("en"), note: "English" },
    Example { text: "Wann wurde die Universität von Warschau gegründet?", lang: Some("de"), note: "German" },
    Example { text: "什么是南加州的主要城市？", lang: Some("zh"), note: "Chinese" },
    Example {
        text: "Какая самая высокая гора в Северной Америке", lang: Some("ru"), note: "Russian"
    },
    Example { text: "How many people live in Warsaw 人口?", lang: None, note: "English mixed with Chinese" },
    Example {
        text: "Quel est le rôle du pharmacien?",
        lang: Some("fr"),
        note: "French is not in the corpus: cross-lingual retrieval only",
    },
    Example {
        text: "संसद में कितने सदस्य हैं?", lang: Some("hi"), note: "Hindi"
    },
    Example { text: "متى ولد نيكولا تسلا؟", lang: Some("ar"), note: "Arabic (right to left)" },
    Example { text: "Cengiz Han ne zaman öldü?", lang: Some("tr"), note: "Turkish" },
];

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
}

impl Tab {
    /// The tabs in their order on the page.
    const ALL: [Tab; 4] = [Tab::Search, Tab::Bias, Tab::Evaluate, Tab::Check];

    /// Id of the tab button.
    fn tab_id(self) -> &'static str {
        match self {
            Tab::Search => "search-tab",
            Tab::Bias => "bias-tab",
            Tab::Evaluate => "eval-tab",
            Tab::Check => "check-tab",
        }
    }

    /// Id of the panel the tab shows.
    fn panel_id(self) -> &'static str {
        match self {
            Tab::Search => "search-panel",
            Tab::Bias => "bias-panel",
            Tab::Evaluate => "eval-panel",
            Tab::Check => "check-panel",
        }
    }

    /// Text of the tab button.
    fn label(self) -> &'static str {
        match self {
            Tab::Search => "Search",
            Tab::Bias => "Language bias",
            Tab::Evaluate => "Evaluate",
            Tab::Check => "Check the encoder",
        }
    }

    /// The tab `by` places further, wrapping around.
    fn step(self, by: isize) -> Tab {
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
    fn request(&self, id: u32) -> Request {
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
            if let Some(k) = params.get("k").and_then(|k| k.trim().parse::<usize>().ok()).filter(|k| TOP_K.contains(k))
            {
                state.k = k;
            }
        }
        state
    }

    /// Candidates in the corpus (for the log scale of the bias bars).
    fn candidates(&self) -> usize {
        self.loaded
            .as_ref()
            .map(|l| l.candidates)
            .or_else(|| self.manifest.as_ref().map(|m| m.dataset.n_candidates))
            .unwrap_or(FALLBACK_CANDIDATES)
    }

    /// The corpus languages (empty until the manifest is read).
    fn langs(&self) -> &[String] {
        match &self.manifest {
            Some(manifest) => &manifest.dataset.langs,
            None => &[],
        }
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
            WorkerEvent::Ready { id, model, backend, gpu, load_ms, downloaded, candidates } => {
                if id != self.load_id {
                    return;
                }
                self.status = "ready".into();
                self.download = None;
                self.loading = false;
                self.error = None;
                self.model = Some(model.clone());
                self.loaded = Some(Loaded { model, backend, gpu, load_ms, downloaded, candidates });
            }
            WorkerEvent::Results { id, query, tokens, truncated, hits, group, bias, encode_ms, rank_ms } => {
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
        }
        Rc::new(s)
    }
}

/// Resolves `path` against the page's address: the worker runs from a blob URL, where relative
/// URLs cannot be fetched.
fn absolute_url(path: &str) -> String {
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
fn page_url() -> Option<Url> {
    let href = web_sys::window()?.location().href().ok()?;
    Url::new(&href).ok()
}

/// Keeps `query` in the address (`?q=…&lang=…&k=…`) so the search can be shared, without a new
/// history entry.
fn replace_url(query: &Query) {
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

/// Moves the keyboard focus to the element `id` (`HTMLElement.focus`, called by name).
fn focus(id: &str) {
    let Some(element) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) else {
        return;
    };
    let target: &JsValue = element.as_ref();
    if let Ok(method) = js_sys::Reflect::get(target, &"focus".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
        let _ = method.call0(target);
    }
}

/// At most [`MAX_QUERY_CHARS`] characters of `text`.
fn clip(text: &str) -> String {
    text.chars().take(MAX_QUERY_CHARS).collect()
}

/// Bytes in MB (10^6 bytes, as the README and `mlr demo build` count), one decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A share in 0–1 as a score ×100, one decimal.
fn hundred(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// The mark of a missing value.
fn dash() -> String {
    "–".to_string()
}

/// mAP ×100 of a setting, or a dash.
fn map_cell(score: Option<&SettingScore>) -> String {
    score.map_or_else(dash, |s| hundred(s.map))
}

/// Recall@k ×100 of a setting, or a dash.
fn recall_cell(score: Option<&SettingScore>, k: usize) -> String {
    score.and_then(|s| s.recall.get(&k)).map_or_else(dash, |&r| hundred(r))
}

/// A rank distance, one decimal, or a dash.
fn distance_cell(distance: Option<f64>) -> String {
    distance.map_or_else(dash, |d| format!("{d:.1}"))
}

/// Length of a bias bar in 0–1: 1 − ln(rank) / ln(n), so the top-ranked answer has a full bar
/// and the last of `n` candidates none.
fn bar_fraction(rank: usize, n: usize) -> f64 {
    if n < 2 {
        return 1.0;
    }
    (1.0 - (rank.max(1) as f64).ln() / (n as f64).ln()).clamp(0.0, 1.0)
}

/// Parses the evaluator's number of questions: empty = all (`Ok(None)`), else a whole number ≥ 1.
fn parse_questions(text: &str) -> Result<Option<usize>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(()),
    }
}

/// The callbacks the page's parts use, built on each render of [`Demo`].
struct Handlers {
    /// Changes the state.
    dispatch: UseReducerDispatcher<State>,
    /// Sends a `Load`.
    load: Callback<LoadSettings>,
    /// Sends a `Search` (an empty query only shows the hint).
    search: Callback<Query>,
    /// Sends a `Reembed` of this many sentences.
    reembed: Callback<usize>,
    /// Sends an `Evaluate`.
    evaluate: Callback<EvalSettings>,
}

/// The whole page, talking to the worker.
#[component]
fn Demo() -> Html {
    let state = use_reducer(State::from_location);
    let bridge = {
        let dispatcher = state.dispatcher();
        use_reactor_bridge::<EncoderReactor, _>(move |event: ReactorEvent<EncoderReactor>| {
            if let ReactorEvent::Output(e) = event {
                dispatcher.dispatch(Action::Worker(e));
            }
        })
    };
    // One counter for every request id, outside the render state, so two clicks in one frame
    // never share an id.
    let next_id = use_mut_ref(|| 0u32);
    let take_id = {
        let next_id = next_id.clone();
        move || {
            let mut n = next_id.borrow_mut();
            *n += 1;
            *n
        }
    };
    // The worker's last words, if it panics.
    {
        let dispatcher = state.dispatcher();
        use_effect_with((), move |_| crate::crash::listen(move |m| dispatcher.dispatch(Action::WorkerCrashed(m))));
    }
    let load = {
        let (bridge, dispatcher, take_id) = (bridge.clone(), state.dispatcher(), take_id.clone());
        Callback::from(move |settings: LoadSettings| {
            let id = take_id();
            dispatcher.dispatch(Action::Loading(settings.clone(), id));
            bridge.send(settings.request(id));
        })
    };
    let search = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |query: Query| {
            if query.text.trim().is_empty() {
                state.dispatch(Action::EmptyQuery);
                return;
            }
            let query = Query { text: clip(&query.text), ..query };
            let id = take_id();
            replace_url(&query);
            bridge.send(Request::Search { id, query: query.text.clone(), k: query.k, lang: query.lang.clone() });
            state.dispatch(Action::Searching { id, query });
        })
    };
    let reembed = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |count: usize| {
            let id = take_id();
            bridge.send(Request::Reembed { id, count });
            state.dispatch(Action::Started(Job { id, kind: JobKind::Reembed { count }, progress: None }));
        })
    };
    let evaluate = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |settings: EvalSettings| {
            let id = take_id();
            bridge.send(Request::Evaluate {
                id,
                langs: settings.langs.clone(),
                split: settings.split,
                max_questions: settings.max_questions,
            });
            state.dispatch(Action::Started(Job { id, kind: JobKind::Evaluate(settings), progress: None }));
        })
    };
    // Load the default model once, on start.
    {
        let load = load.clone();
        let force_cpu = state.force_cpu;
        use_effect_with((), move |_| load.emit(LoadSettings { force_cpu, ..LoadSettings::default() }));
    }
    // Run the query of the address (or of an example clicked while loading) once the model is ready.
    {
        let (search, state) = (search.clone(), state.clone());
        let ready = state.loaded.is_some();
        use_effect_with(ready, move |&ready| {
            if ready && state.run_when_ready {
                search.emit(Query { text: state.query.clone(), lang: state.lang.clone(), k: state.k });
            }
        });
    }
    let handlers = Handlers { dispatch: state.dispatcher(), load, search, reembed, evaluate };
    let s: &State = &state;
    html! {
        <>
            { header(s, &handlers) }
            <main id="main">
                { tab_list(s, &handlers) }
                { search_panel(s, &handlers) }
                { bias_panel(s) }
                { eval_panel(s, &handlers) }
                { check_panel(s, &handlers) }
            </main>
            { footer(s) }
        </>
    }
}

/// Title, model choice, backend, loading status and errors.
fn header(s: &State, h: &Handlers) -> Html {
    let on_model = {
        let (load, allow_software_gpu, force_cpu) = (h.load.clone(), s.allow_software_gpu, s.force_cpu);
        Callback::from(move |e: Event| {
            let name = e.target_unchecked_into::<HtmlSelectElement>().value();
            load.emit(LoadSettings { model: Some(name), allow_software_gpu, force_cpu });
        })
    };
    let on_software = {
        let (load, model) = (h.load.clone(), s.model.clone());
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            load.emit(LoadSettings { model: model.clone(), allow_software_gpu: on, force_cpu: false });
        })
    };
    let models: &[ModelEntry] = match &s.manifest {
        Some(manifest) => &manifest.models,
        None => &[],
    };
    html! {
        <header class="site">
            <div class="brand">
                <h1>{ "mlr" }</h1>
                <p class="lead">{ LEAD }</p>
            </div>
            <div class="controls">
                <div class="field">
                    <label for="model">{ "Model" }</label>
                    <select id="model" onchange={on_model} disabled={models.is_empty() || s.loading}>
                        if models.is_empty() {
                            <option value="">{ "reading the manifest…" }</option>
                        }
                        for model in models.iter() {
                            <option
                                key={model.name.clone()}
                                value={model.name.clone()}
                                selected={s.model.as_deref() == Some(model.name.as_str())}
                            >
                                { model.label.clone() }
                            </option>
                        }
                    </select>
                </div>
                <p class="backend">
                    { "backend: " }
                    <span id="backend">{ s.loaded.as_ref().map_or_else(dash, |l| l.backend.clone()) }</span>
                </p>
                <p class="status" role="status" aria-live="polite">
                    { "status: " }
                    <span id="status">{ s.status.clone() }</span>
                    if let Some(loaded) = &s.loaded {
                        { " · " }
                        { load_info(loaded) }
                    }
                </p>
                if let Some(download) = &s.download {
                    { download_view(download) }
                }
                <label class="check">
                    <input id="software-gpu" type="checkbox" checked={s.allow_software_gpu} onchange={on_software} disabled={s.loading} />
                    { " use a software WebGPU adapter if there is no GPU (slow)" }
                </label>
            </div>
            if let Some(failure) = &s.error {
                { error_box(failure, s, h) }
            }
        </header>
    }
}

/// "12.3 MB downloaded, ready in 4.5 s" (`#downloaded` carries the exact bytes in `data-bytes`).
fn load_info(loaded: &Loaded) -> Html {
    let downloaded = if loaded.downloaded == 0 {
        "everything from the cache".to_string()
    } else {
        format!("{} MB downloaded", mb(loaded.downloaded))
    };
    html! {
        <span id="load-info">
            <span id="downloaded" data-bytes={loaded.downloaded.to_string()}>{ downloaded }</span>
            { format!(", ready in {:.1} s", loaded.load_ms / 1000.0) }
        </span>
    }
}

/// The progress bar of the file being fetched.
fn download_view(d: &Download) -> Html {
    let known = d.total > 0;
    let mut text = if known {
        format!("{}: {} of {} MB", d.file, mb(d.loaded), mb(d.total))
    } else {
        format!("{}: {} MB", d.file, mb(d.loaded))
    };
    if d.cached {
        text.push_str(" (from cache)");
    }
    html! {
        <p class="download">
            <progress
                id="progress"
                max={known.then(|| d.total.to_string())}
                value={known.then(|| d.loaded.to_string())}
                aria-label={format!("fetching {}", d.file)}
            />
            <span class="download-text">{ text }</span>
        </p>
    }
}

/// The error message with "Retry" (the last load again) and, after a GPU error, "Use the CPU".
fn error_box(failure: &Failure, s: &State, h: &Handlers) -> Html {
    let retry = {
        let (load, last) = (h.load.clone(), s.last_load.clone().unwrap_or_default());
        Callback::from(move |_: MouseEvent| load.emit(last.clone()))
    };
    let use_cpu = {
        let load = h.load.clone();
        let settings =
            LoadSettings { model: s.model.clone(), allow_software_gpu: s.allow_software_gpu, force_cpu: true };
        Callback::from(move |_: MouseEvent| load.emit(settings.clone()))
    };
    let reload = |cpu: bool| {
        Callback::from(move |_: MouseEvent| {
            let Some(window) = web_sys::window() else { return };
            if cpu {
                if let Some(url) = page_url() {
                    url.search_params().set("cpu", "1");
                    let _ = window.location().set_href(&url.href());
                    return;
                }
            }
            let _ = window.location().reload();
        })
    };
    html! {
        <div id="error" class="error" role="alert">
            <p class="error-message">{ failure.message.clone() }</p>
            <div class="actions">
                if failure.kind == FailureKind::Load {
                    <button id="retry" type="button" onclick={retry}>{ "Retry" }</button>
                }
                if failure.kind == FailureKind::Crashed {
                    <button id="reload" type="button" onclick={reload(false)}>{ "Reload the page" }</button>
                    if failure.gpu {
                        <button id="use-cpu" type="button" onclick={reload(true)}>{ "Reload on the CPU" }</button>
                    }
                } else if failure.gpu {
                    <button id="use-cpu" type="button" onclick={use_cpu}>{ "Use the CPU" }</button>
                }
            </div>
        </div>
    }
}

/// The tab buttons (arrow keys, Home and End move between them).
fn tab_list(s: &State, h: &Handlers) -> Html {
    html! {
        <div class="tabs" role="tablist" aria-label="Views">
            { for Tab::ALL.into_iter().map(|tab| tab_button(tab, s.tab, &h.dispatch)) }
        </div>
    }
}

/// One tab button; only the selected one is in the Tab order.
fn tab_button(tab: Tab, current: Tab, dispatch: &UseReducerDispatcher<State>) -> Html {
    let selected = tab == current;
    let onclick = {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::SetTab(tab)))
    };
    let onkeydown = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: KeyboardEvent| {
            let next = match e.key().as_str() {
                "ArrowRight" => tab.step(1),
                "ArrowLeft" => tab.step(-1),
                "Home" => Tab::ALL[0],
                "End" => Tab::ALL[Tab::ALL.len() - 1],
                _ => return,
            };
            e.prevent_default();
            dispatch.dispatch(Action::SetTab(next));
            focus(next.tab_id());
        })
    };
    html! {
        <button
            type="button"
            role="tab"
            id={tab.tab_id()}
            class={classes!("tab", selected.then_some("active"))}
            aria-selected={selected.to_string()}
            aria-controls={tab.panel_id()}
            tabindex={if selected { "0" } else { "-1" }}
            onclick={onclick}
            onkeydown={onkeydown}
        >
            { tab.label() }
        </button>
    }
}

/// The query form, the examples and the results.
fn search_panel(s: &State, h: &Handlers) -> Html {
    let ready = s.loaded.is_some();
    let hidden = s.tab != Tab::Search;
    // Changing a filter re-runs the search when there are results to refresh.
    let rerun = ready && s.results.is_some() && !s.query.trim().is_empty();
    let onsubmit = {
        let (search, query) = (h.search.clone(), Query { text: s.query.clone(), lang: s.lang.clone(), k: s.k });
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            search.emit(query.clone());
        })
    };
    let oninput = {
        let dispatch = h.dispatch.clone();
        Callback::from(move |e: InputEvent| {
            dispatch.dispatch(Action::SetQuery(e.target_unchecked_into::<HtmlInputElement>().value()))
        })
    };
    let on_lang = {
        let (dispatch, search, text, k) = (h.dispatch.clone(), h.search.clone(), s.query.clone(), s.k);
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            let lang = (!value.is_empty()).then_some(value);
            if rerun {
                search.emit(Query { text: text.clone(), lang, k });
            } else {
                dispatch.dispatch(Action::SetLang(lang));
            }
        })
    };
    let on_k = {
        let (dispatch, search, text, lang) = (h.dispatch.clone(), h.search.clone(), s.query.clone(), s.lang.clone());
        Callback::from(move |e: Event| {
            let Ok(k) = e.target_unchecked_into::<HtmlSelectElement>().value().parse::<usize>() else {
                return;
            };
            if rerun {
                search.emit(Query { text: text.clone(), lang: lang.clone(), k });
            } else {
                dispatch.dispatch(Action::SetK(k));
            }
        })
    };
    html! {
        <section id="search-panel" class="panel" role="tabpanel" aria-labelledby="search-tab" hidden={hidden}>
            <form class="search" role="search" onsubmit={onsubmit}>
                <div class="field query-field">
                    <label for="query">{ "Question" }</label>
                    <div class="query-row">
                        <input
                            id="query"
                            type="search"
                            maxlength={MAX_QUERY_CHARS.to_string()}
                            placeholder="Ask in any language, or a mix…"
                            enterkeyhint="search"
                            value={s.query.clone()}
                            oninput={oninput}
                            aria-describedby={s.hint.then_some("query-hint")}
                        />
                        <button id="search" type="submit" class="primary" disabled={!ready}>{ "Search" }</button>
                    </div>
                    if s.hint {
                        <p id="query-hint" class="hint" role="alert">{ "Type a question first." }</p>
                    }
                </div>
                <div class="field">
                    <label for="lang-filter">{ "Corpus" }</label>
                    <select id="lang-filter" onchange={on_lang}>
                        <option value="" selected={s.lang.is_none()}>{ "all languages (pooled)" }</option>
                        for lang in s.langs().iter() {
                            <option key={lang.clone()} value={lang.clone()} selected={s.lang.as_ref() == Some(lang)}>
                                { format!("only {lang}") }
                            </option>
                        }
                    </select>
                </div>
                <div class="field">
                    <label for="top-k">{ "Results" }</label>
                    <select id="top-k" onchange={on_k}>
                        for k in TOP_K {
                            <option key={k} value={k.to_string()} selected={k == s.k}>{ k }</option>
                        }
                    </select>
                </div>
            </form>
            <p class="muted filter-note">
                { "Pooled: every language competes in one ranking (the multilingual setting). One language: \
                   only its sentences are ranked (the cross-lingual view when it is not the query's language)." }
            </p>
            <div id="examples" class="examples" role="group" aria-label="Example queries">
                <span class="muted">{ "Try:" }</span>
                { for EXAMPLES.iter().map(|example| example_button(example, s, h)) }
            </div>
            { results_view(s) }
        </section>
    }
}

/// An example query: fills the box and searches (or searches once the model is ready).
fn example_button(example: &'static Example, s: &State, h: &Handlers) -> Html {
    let onclick = {
        let (search, dispatch) = (h.search.clone(), h.dispatch.clone());
        let (ready, lang, k) = (s.loaded.is_some(), s.lang.clone(), s.k);
        Callback::from(move |_: MouseEvent| {
            let text = example.text.to_string();
            if ready {
                search.emit(Query { text, lang: lang.clone(), k });
            } else {
                dispatch.dispatch(Action::Defer(text));
            }
        })
    };
    html! {
        <button type="button" class="example" lang={example.lang} title={example.note} onclick={onclick}>
            { example.text }
        </button>
    }
}

/// What the newest search is doing, if it is not answered yet.
fn search_status(s: &State) -> Option<String> {
    if s.run_when_ready && s.loaded.is_none() {
        return Some("The search runs as soon as the model is ready.".into());
    }
    let pending = s.search.as_ref()?;
    Some(match &s.job {
        Some(job) if job.id < pending.id => {
            format!("Search queued: the worker finishes {} first.", job.kind.describe())
        }
        _ => "Searching…".into(),
    })
}

/// The answer to the newest search.
fn results_view(s: &State) -> Html {
    let status = search_status(s);
    html! {
        <div class="results">
            if let Some(text) = status {
                <p id="search-status" class="muted" role="status">{ text }</p>
            }
            if let Some(r) = &s.results {
                <p id="results-summary" class="summary" role="status">
                    { format!(
                        "{} results in {:.1} ms (encode {:.1} ms, rank {:.1} ms)",
                        r.hits.len(),
                        r.encode_ms + r.rank_ms,
                        r.encode_ms,
                        r.rank_ms
                    ) }
                    if let Some(lang) = &r.lang {
                        { format!(" · only {lang}, pooled ranks beside") }
                    }
                </p>
                if r.truncated {
                    <p id="truncated" class="notice">
                        { format!("Your query was cut to the encoder's 512 tokens ({} tokens).", r.tokens) }
                    </p>
                }
                if let Some(group) = &r.group {
                    { group_line("group", group) }
                }
                if r.hits.is_empty() {
                    <p class="muted">{ "No candidate to show." }</p>
                }
                <ol id="results" class="hits" data-request={r.id.to_string()}>
                    for hit in r.hits.iter() {
                        <HitItem key={format!("{}:{}", r.id, hit.id)} hit={hit.clone()} show_pooled={r.lang.is_some()} />
                    }
                </ol>
            }
        </div>
    }
}

/// "Parallel answers of: «…» (why)", as the element `id`.
fn group_line(id: &'static str, group: &AnswerGroup) -> Html {
    html! {
        <p id={id} class="group" data-question={group.question.clone()}>
            <span class="parallel-mark" aria-hidden="true">{ "◆ " }</span>
            { "Parallel answers of: «" }
            <span dir="auto">{ group.text.clone() }</span>
            { format!("» ({})", group.reason) }
        </p>
    }
}

/// Properties of [`HitItem`].
#[derive(Properties, PartialEq)]
struct HitProps {
    /// The ranked candidate.
    hit: Hit,
    /// Show its pooled rank (a language filter is on).
    show_pooled: bool,
}

/// One ranked sentence, with its paragraph on demand.
#[component]
fn HitItem(props: &HitProps) -> Html {
    let open = use_state(|| false);
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let hit = &props.hit;
    let context_id = format!("context-{}", hit.id);
    html! {
        <li
            class={classes!("hit", hit.parallel.then_some("parallel"))}
            data-id={hit.id.clone()}
            data-score={hit.score.to_string()}
            data-lang={hit.lang.clone()}
            data-parallel={hit.parallel.to_string()}
        >
            <div class="hit-meta">
                <span class="rank">{ format!("#{}", hit.rank) }</span>
                <span class="score" title="cosine similarity">{ format!("{:.4}", hit.score) }</span>
                <span class="lang">{ hit.lang.to_uppercase() }</span>
                if hit.parallel {
                    <span class="parallel-mark" role="img" title={PARALLEL_TITLE} aria-label={PARALLEL_TITLE}>{ "◆" }</span>
                }
                if props.show_pooled {
                    <span class="pooled" title="rank in the pooled ranking of all languages">
                        { format!("pooled #{}", hit.pooled_rank) }
                    </span>
                }
            </div>
            <p class="sentence" lang={hit.lang.clone()} dir="auto">{ hit.sentence.clone() }</p>
            <button
                type="button"
                class="context-toggle"
                aria-expanded={(*open).to_string()}
                aria-controls={context_id.clone()}
                onclick={toggle}
            >
                { if *open { "hide context" } else { "context" } }
            </button>
            <div id={context_id} class="context" hidden={!*open}>
                <p class="article" dir="auto">{ hit.article.clone() }</p>
                <p class="paragraph" lang={hit.lang.clone()} dir="auto">{ highlight(&hit.paragraph, &hit.sentence) }</p>
            </div>
        </li>
    }
}

/// `paragraph` with `sentence` marked, if it occurs in it.
fn highlight(paragraph: &str, sentence: &str) -> Html {
    match paragraph.find(sentence).filter(|_| !sentence.is_empty()) {
        Some(at) => {
            let (before, rest) = paragraph.split_at(at);
            let (marked, after) = rest.split_at(sentence.len());
            html! { <>{ before.to_string() }<mark>{ marked.to_string() }</mark>{ after.to_string() }</> }
        }
        None => html! { <>{ paragraph.to_string() }</> },
    }
}

/// The bias of the last search, per model, and the dataset-level table.
fn bias_panel(s: &State) -> Html {
    let hidden = s.tab != Tab::Bias;
    let query_view = match &s.results {
        None => html! { <p id="bias-empty" class="muted">{ "Search first; the bias of that query appears here." }</p> },
        Some(r) if r.bias.is_empty() => html! {
            <p id="bias-empty" class="muted">
                { "No result of the last search answers a dataset question, so there is no group of parallel \
                   answers to place." }
            </p>
        },
        Some(r) => {
            let n = s.candidates();
            html! {
                <>
                    if let Some(group) = &r.group {
                        { group_line("bias-group", group) }
                    }
                    <div class="bias-views">
                        { for r.bias.iter().map(|view| bias_view(view, n)) }
                    </div>
                </>
            }
        }
    };
    html! {
        <section id="bias-panel" class="panel" role="tabpanel" aria-labelledby="bias-tab" hidden={hidden} tabindex="0">
            <h2>{ "Language bias of the last search" }</h2>
            <p class="muted">
                { "Each bar is one language: where its answer to the question lands in the pooled ranking of \
                   all languages. Longer is better (log scale: rank 1 is a full bar). The rank distance is the \
                   worst rank minus the best; 0 means every language's answer is ranked alike." }
            </p>
            { query_view }
            { dataset_table(s) }
        </section>
    }
}

/// Layout of a bias chart, in SVG user units.
const CHART_WIDTH: usize = 400;
/// Height of one bar row.
const ROW_HEIGHT: usize = 24;
/// Height of a bar.
const BAR_HEIGHT: usize = 16;
/// Where the bars start (the language codes are left of it).
const BAR_X: usize = 44;
/// The longest bar (the rank numbers are right of it).
const BAR_MAX: usize = 300;

/// The bar chart of one model's bias view.
fn bias_view(view: &BiasView, n_candidates: usize) -> Html {
    let best = view.ranks.iter().map(|r| r.rank).min();
    let height = ROW_HEIGHT * view.ranks.len() + 4;
    let ranks: Vec<String> = view.ranks.iter().map(|r| format!("{} {}", r.lang, r.rank)).collect();
    let label = format!(
        "Pooled rank of each language's answer under {}: {}; rank distance {}",
        view.model,
        ranks.join(", "),
        view.rank_distance
    );
    html! {
        <figure class="bias-view" data-model={view.model.clone()}>
            <figcaption>
                <h3>{ view.model.clone() }</h3>
                <p class="muted source">{ view.source.clone() }</p>
                <p>
                    { "rank distance " }
                    <strong class="rank-distance" data-value={view.rank_distance.to_string()}>{ view.rank_distance }</strong>
                </p>
            </figcaption>
            <svg
                class="bias-bars"
                role="img"
                aria-label={label}
                viewBox={format!("0 0 {CHART_WIDTH} {height}")}
                preserveAspectRatio="xMinYMin meet"
            >
                { for view.ranks.iter().enumerate().map(|(i, r)| bar_row(i, r, best, n_candidates)) }
            </svg>
        </figure>
    }
}

/// One language's bar: its code, a bar on the log scale of its pooled rank, the rank.
fn bar_row(row: usize, rank: &LangRank, best: Option<usize>, n_candidates: usize) -> Html {
    let top = 2 + row * ROW_HEIGHT;
    let middle = top + BAR_HEIGHT / 2;
    let width = (BAR_MAX as f64 * bar_fraction(rank.rank, n_candidates)).max(2.0);
    let own = best == Some(rank.rank);
    html! {
        <g class="bar-row" data-lang={rank.lang.clone()} data-rank={rank.rank.to_string()}>
            <title>{ format!("{}: pooled rank {} (score {:.4}) — {}", rank.lang, rank.rank, rank.score, rank.sentence) }</title>
            <text class="bar-lang" x={(BAR_X - 6).to_string()} y={middle.to_string()} text-anchor="end" dominant-baseline="central">
                { rank.lang.clone() }
            </text>
            <rect
                class={classes!("bar", own.then_some("own"))}
                x={BAR_X.to_string()}
                y={top.to_string()}
                width={format!("{width:.1}")}
                height={BAR_HEIGHT.to_string()}
                rx="2"
            />
            <text class="bar-rank" x={(CHART_WIDTH - 4).to_string()} y={middle.to_string()} text-anchor="end" dominant-baseline="central">
                { rank.rank }
            </text>
        </g>
    }
}

/// The per-language bias of every model of the manifest on the whole dataset (the loaded model
/// first), from the reports shipped in the manifest.
fn dataset_table(s: &State) -> Html {
    let Some(manifest) = &s.manifest else {
        return html! { <p class="muted">{ "The dataset table appears once the manifest is read." }</p> };
    };
    let mut models: Vec<&ModelEntry> = manifest.models.iter().collect();
    models.sort_by_key(|m| s.model.as_deref() != Some(m.name.as_str()));
    let k = models
        .iter()
        .copied()
        .flat_map(|m| m.report.per_lang.iter())
        .find_map(|l| l.preference.as_ref().map(|p| p.k))
        .unwrap_or(10);
    let n_langs = manifest.dataset.langs.len();
    html! {
        <section class="dataset-bias" aria-labelledby="dataset-bias-heading">
            <h3 id="dataset-bias-heading">{ format!(
                "The dataset: {}, {} articles",
                manifest.dataset.name,
                models.first().map_or("test", |m| m.report_split.as_str())
            ) }</h3>
            <p class="muted">
                { format!(
                    "Mul. mAP (×100): questions of each language against the pooled corpus. \
                     rank distance: mean over questions of max − min pooled rank of its {n_langs} parallel \
                     answers; lower is fairer. Own-language share of top {k}: how much of the pooled top {k} \
                     is in the question's language, against that language's share of the pool."
                ) }
            </p>
            <div class="table-scroll" role="region" aria-labelledby="dataset-bias-heading" tabindex="0">
                <table id="dataset-bias" class="numbers">
                    <thead>
                        <tr>
                            <th scope="col" rowspan="2">{ "language" }</th>
                            for model in models.iter() {
                                <th scope="colgroup" colspan="3" title={model.label.clone()}>
                                    { model.name.clone() }
                                    if s.model.as_deref() == Some(model.name.as_str()) {
                                        <span class="muted">{ " (chosen)" }</span>
                                    }
                                </th>
                            }
                        </tr>
                        <tr>
                            for _model in models.iter() {
                                <th scope="col" class="num">{ "Mul. mAP" }</th>
                                <th scope="col" class="num">{ "rank distance" }</th>
                                <th scope="col" class="num">{ format!("own-language share of top {k}") }</th>
                            }
                        </tr>
                    </thead>
                    <tbody>
                        for lang in manifest.dataset.langs.iter() {
                            <tr key={lang.clone()}>
                                <th scope="row">{ lang.clone() }</th>
                                { for models.iter().map(|m| bias_cells(m.report.per_lang.iter().find(|l| &l.lang == lang))) }
                            </tr>
                        }
                    </tbody>
                    <tfoot>
                        <tr class="all">
                            <th scope="row">{ "all" }</th>
                            for model in models.iter() {
                                <td class="num">{ map_cell(model.report.multi.as_ref()) }</td>
                                <td class="num">{ distance_cell(model.report.rank_distance) }</td>
                                <td class="num">{ dash() }</td>
                            }
                        </tr>
                    </tfoot>
                </table>
            </div>
        </section>
    }
}

/// Mul. mAP, rank distance and own-language share of one language under one model.
fn bias_cells(report: Option<&LangReport>) -> Html {
    let Some(l) = report else {
        return html! { <><td class="num">{ dash() }</td><td class="num">{ dash() }</td><td class="num">{ dash() }</td></> };
    };
    let share = l
        .preference
        .as_ref()
        .map_or_else(dash, |p| format!("{:.1} % (pool {:.1} %)", 100.0 * p.own_share, 100.0 * p.pool_share));
    html! {
        <>
            <td class="num">{ map_cell(l.multi.as_ref()) }</td>
            <td class="num">{ distance_cell(l.rank_distance) }</td>
            <td class="num">{ share }</td>
        </>
    }
}

/// The progress of a job.
fn job_progress(id: &'static str, job: &Job) -> Html {
    match &job.progress {
        Some(step) => html! {
            <p class="job">
                <progress id={id} max={step.total.max(1).to_string()} value={step.done.to_string()} aria-label={step.what.clone()} />
                <span>{ format!(" {}: {} of {}", step.what, step.done, step.total) }</span>
            </p>
        },
        None => html! {
            <p class="job">
                <progress id={id} aria-label="waiting for the worker" />
                <span>{ " waiting for the worker…" }</span>
            </p>
        },
    }
}

/// Why a job button is disabled, if it is.
fn job_blocker(s: &State) -> Option<&'static str> {
    if s.loaded.is_none() {
        Some("Waiting for the model.")
    } else if s.job.is_some() {
        Some("The worker is busy with another job.")
    } else {
        None
    }
}

/// The LAReQA evaluator.
fn eval_panel(s: &State, h: &Handlers) -> Html {
    let hidden = s.tab != Tab::Evaluate;
    let chosen: Vec<String> = s.langs().iter().filter(|l| !s.eval_off.contains(*l)).cloned().collect();
    let questions = parse_questions(&s.eval_questions);
    let blocker = job_blocker(s).or_else(|| {
        if s.manifest.is_some() && chosen.is_empty() {
            Some("Tick at least one language.")
        } else if questions.is_err() {
            Some("The number of questions is a whole number of at least 1 (empty = all).")
        } else {
            None
        }
    });
    let settings = match (blocker, &s.loaded, questions) {
        (None, Some(loaded), Ok(max_questions)) => {
            Some(EvalSettings { model: loaded.model.clone(), langs: chosen, split: s.eval_split, max_questions })
        }
        _ => None,
    };
    let onclick = {
        let (evaluate, settings) = (h.evaluate.clone(), settings.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(settings) = &settings {
                evaluate.emit(settings.clone());
            }
        })
    };
    let on_questions = {
        let dispatch = h.dispatch.clone();
        Callback::from(move |e: InputEvent| {
            dispatch.dispatch(Action::SetEvalQuestions(e.target_unchecked_into::<HtmlInputElement>().value()))
        })
    };
    let on_split = {
        let dispatch = h.dispatch.clone();
        Callback::from(move |e: Event| {
            if let Ok(split) = e.target_unchecked_into::<HtmlSelectElement>().value().parse::<Split>() {
                dispatch.dispatch(Action::SetEvalSplit(split));
            }
        })
    };
    let all_langs = h.dispatch.to_callback().reform(|_: MouseEvent| Action::SetAllEvalLangs(true));
    let no_langs = h.dispatch.to_callback().reform(|_: MouseEvent| Action::SetAllEvalLangs(false));
    let model_label = s
        .manifest
        .as_ref()
        .and_then(|m| m.models.iter().find(|m| s.model.as_deref() == Some(m.name.as_str())))
        .map_or_else(|| s.model.clone().unwrap_or_else(dash), |m| m.label.clone());
    let eval_job = s.job.as_ref().filter(|job| matches!(job.kind, JobKind::Evaluate(_)));
    html! {
        <section id="eval-panel" class="panel" role="tabpanel" aria-labelledby="eval-tab" hidden={hidden}>
            <h2>{ "Evaluate in the browser" }</h2>
            <p>
                { "The scores are computed in the worker by the core evaluation crate (mlr-eval) compiled to \
                   wasm, on the precomputed vectors of the chosen model; " }
                <code>{ "mlr eval --vectors … --split S --langs L --max-questions N" }</code>
                { " gives the same numbers natively." }
            </p>
            <p class="muted">{ format!("Model: {model_label} (choose another at the top of the page).") }</p>
            <div class="eval-form">
                <fieldset class="langs">
                    <legend>{ "Query languages" }</legend>
                    <div class="lang-boxes">
                        { for s.langs().iter().map(|lang| eval_lang_box(lang, !s.eval_off.contains(lang), &h.dispatch)) }
                    </div>
                    <div class="actions">
                        <button type="button" class="small" onclick={all_langs}>{ "all" }</button>
                        <button type="button" class="small" onclick={no_langs}>{ "none" }</button>
                    </div>
                </fieldset>
                <div class="field">
                    <label for="eval-questions">{ "Questions (the first N; empty = all)" }</label>
                    <input
                        id="eval-questions"
                        type="number"
                        min="1"
                        step="1"
                        inputmode="numeric"
                        value={s.eval_questions.clone()}
                        oninput={on_questions}
                    />
                </div>
                <div class="field">
                    <label for="eval-split">{ "Articles (split)" }</label>
                    <select id="eval-split" onchange={on_split}>
                        for split in SPLITS {
                            <option key={split.name()} value={split.name()} selected={s.eval_split == split}>{ split.name() }</option>
                        }
                    </select>
                </div>
                <div class="field run">
                    <button id="eval-run" type="button" class="primary" disabled={settings.is_none()} onclick={onclick}>
                        { "Evaluate" }
                    </button>
                </div>
            </div>
            if let Some(reason) = blocker {
                <p class="muted">{ reason }</p>
            }
            if let Some(job) = eval_job {
                { job_progress("eval-progress", job) }
            }
            if let Some(evaluation) = &s.evaluation {
                { eval_report(evaluation, s.manifest.as_deref()) }
            }
        </section>
    }
}

/// One language checkbox of the evaluator.
fn eval_lang_box(lang: &str, checked: bool, dispatch: &UseReducerDispatcher<State>) -> Html {
    let onchange = {
        let (dispatch, lang) = (dispatch.clone(), lang.to_string());
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            dispatch.dispatch(Action::SetEvalLang(lang.clone(), on));
        })
    };
    html! {
        <label class="check">
            <input class="eval-lang" type="checkbox" value={lang.to_string()} checked={checked} onchange={onchange} />
            { lang.to_string() }
        </label>
    }
}

/// The paper-style table of an evaluation.
fn eval_report(evaluation: &Evaluation, manifest: Option<&Manifest>) -> Html {
    let r = &evaluation.report;
    let settings = &evaluation.settings;
    let all_langs = manifest.is_some_and(|m| m.dataset.langs.len() == settings.langs.len());
    let langs = if all_langs { "all languages".to_string() } else { settings.langs.join(", ") };
    let vectors = manifest
        .and_then(|m| m.models.iter().find(|m| m.name == settings.model))
        .map_or_else(|| "…".to_string(), |m| m.vectors.path.clone());
    let mut command = format!(
        "mlr eval --vectors $MLR_DEMO_DIR/{vectors} --data $MLR_DEMO_DIR/data --split {} --langs {}",
        settings.split.name(),
        settings.langs.join(",")
    );
    if let Some(n) = settings.max_questions {
        command.push_str(&format!(" --max-questions {n}"));
    }
    html! {
        <div id="eval-report" class="eval-report" data-json={evaluation.json.clone()}>
            <div class="table-scroll" role="region" aria-label="evaluation table" tabindex="0">
                <table class="numbers paper">
                    <caption>
                        { format!(
                            "{} · split {} · {} · {} questions · {} candidates (mAP and R@k ×100)",
                            settings.model, settings.split.name(), langs, r.n_queries, r.n_candidates
                        ) }
                    </caption>
                    <thead>
                        <tr>
                            <th scope="col">{ "query language" }</th>
                            <th scope="col" class="num">{ "questions" }</th>
                            <th scope="col" class="num">{ "Mo. mAP" }</th>
                            <th scope="col" class="num">{ "Cr. mAP" }</th>
                            <th scope="col" class="num">{ "Mul. mAP" }</th>
                            <th scope="col" class="num">{ "R@1 Mo." }</th>
                            <th scope="col" class="num">{ "R@1 Cr." }</th>
                            <th scope="col" class="num">{ "R@10 Mul." }</th>
                            <th scope="col" class="num">{ "rank distance" }</th>
                        </tr>
                    </thead>
                    <tbody>
                        for l in r.per_lang.iter() {
                            <tr key={l.lang.clone()}>
                                <th scope="row">{ l.lang.clone() }</th>
                                <td class="num">{ l.n_queries }</td>
                                <td class="num">{ map_cell(l.mono.as_ref()) }</td>
                                <td class="num">{ map_cell(l.cross.as_ref()) }</td>
                                <td class="num">{ map_cell(l.multi.as_ref()) }</td>
                                <td class="num">{ recall_cell(l.mono.as_ref(), 1) }</td>
                                <td class="num">{ recall_cell(l.cross.as_ref(), 1) }</td>
                                <td class="num">{ recall_cell(l.multi.as_ref(), 10) }</td>
                                <td class="num">{ distance_cell(l.rank_distance) }</td>
                            </tr>
                        }
                    </tbody>
                    <tfoot>
                        <tr class="all">
                            <th scope="row">{ "all" }</th>
                            <td class="num">{ r.n_queries }</td>
                            <td class="num">{ map_cell(r.mono.as_ref()) }</td>
                            <td class="num">{ map_cell(r.cross.as_ref()) }</td>
                            <td class="num">{ map_cell(r.multi.as_ref()) }</td>
                            <td class="num">{ recall_cell(r.mono.as_ref(), 1) }</td>
                            <td class="num">{ recall_cell(r.cross.as_ref(), 1) }</td>
                            <td class="num">{ recall_cell(r.multi.as_ref(), 10) }</td>
                            <td class="num">{ distance_cell(r.rank_distance) }</td>
                        </tr>
                    </tfoot>
                </table>
            </div>
            <p class="muted" id="eval-time">{ format!("scored in {:.0} ms in the browser", evaluation.ms) }</p>
            <p>{ "The same natively: " }<code class="command">{ command }</code></p>
            <details>
                <summary>{ "Markdown table" }</summary>
                <pre class="markdown">{ evaluation.table.clone() }</pre>
            </details>
        </div>
    }
}

/// Re-embedding corpus sentences in the browser against the precomputed vectors.
fn check_panel(s: &State, h: &Handlers) -> Html {
    let hidden = s.tab != Tab::Check;
    let max = s.manifest.as_ref().map_or(FALLBACK_CANDIDATES, |m| m.dataset.n_candidates);
    let count = s.reembed_count.trim().parse::<usize>().ok().filter(|n| (1..=max).contains(n));
    let blocker = job_blocker(s)
        .map(str::to_string)
        .or_else(|| count.is_none().then(|| format!("The number of sentences is a whole number from 1 to {max}.")));
    let onclick = {
        let reembed = h.reembed.clone();
        let count = if blocker.is_none() { count } else { None };
        Callback::from(move |_: MouseEvent| {
            if let Some(count) = count {
                reembed.emit(count);
            }
        })
    };
    let on_count = {
        let dispatch = h.dispatch.clone();
        Callback::from(move |e: InputEvent| {
            dispatch.dispatch(Action::SetReembedCount(e.target_unchecked_into::<HtmlInputElement>().value()))
        })
    };
    let reembed_job = s.job.as_ref().filter(|job| matches!(job.kind, JobKind::Reembed { .. }));
    html! {
        <section id="check-panel" class="panel" role="tabpanel" aria-labelledby="check-tab" hidden={hidden}>
            <h2>{ "Check the encoder" }</h2>
            <p>
                { "The corpus vectors are precomputed natively with " }
                <code>{ "mlr demo build" }</code>
                { " and shipped as f16. Here the browser re-embeds the first N sentences (spread over all \
                   languages) with the loaded model on this page's backend and compares each with its \
                   precomputed vector: cosines close to 1 mean the browser runs the same encoder." }
            </p>
            <div class="row">
                <div class="field">
                    <label for="reembed-count">{ "Sentences" }</label>
                    <input
                        id="reembed-count"
                        type="number"
                        min="1"
                        max={max.to_string()}
                        step="1"
                        inputmode="numeric"
                        value={s.reembed_count.clone()}
                        oninput={on_count}
                    />
                </div>
                <div class="field run">
                    <button id="reembed-run" type="button" class="primary" disabled={blocker.is_some()} onclick={onclick}>
                        { "Re-embed" }
                    </button>
                </div>
            </div>
            if let Some(reason) = &blocker {
                <p class="muted">{ reason.clone() }</p>
            }
            if let Some(job) = reembed_job {
                { job_progress("reembed-progress", job) }
            }
            if let Some(r) = &s.reembedded {
                <p
                    id="reembed-result"
                    class="summary"
                    data-count={r.count.to_string()}
                    data-min-cosine={r.min_cosine.to_string()}
                    data-mean-cosine={r.mean_cosine.to_string()}
                >
                    { format!(
                        "{} sentences re-embedded in {:.1} s: min cosine {:.5}, mean cosine {:.5} to the precomputed vectors",
                        r.count,
                        r.ms / 1000.0,
                        r.min_cosine,
                        r.mean_cosine
                    ) }
                </p>
            }
        </section>
    }
}

/// Licences and what runs where.
fn footer(s: &State) -> Html {
    let data = s
        .manifest
        .as_ref()
        .map_or_else(|| "Data: XQuAD-R.".to_string(), |m| format!("Data: {} — {}.", m.dataset.name, m.dataset.licence));
    html! {
        <footer class="site">
            <p>
                { data }
                { " Model: multilingual-e5 (MIT). " }
                { "Rust: burn + yew; no data leaves your browser." }
            </p>
        </footer>
    }
}

/// The root component: provides the worker to the page.
#[component]
pub fn App() -> Html {
    html! {
        <ReactorProvider<EncoderReactor, JsCodec> path="/worker.js">
            <Demo />
        </ReactorProvider<EncoderReactor, JsCodec>>
    }
}
