//! The worker's half of "Your documents": collections made from the user's files with the loaded
//! model, embedded a batch at a time between other requests, stored in OPFS ([`super::store`]),
//! searched, exported and imported.
//!
//! An embedding is a job, not a request: [`Docs::step`] embeds one batch (passages of like length,
//! [`Collection::order_for_embedding`]) and returns, and the worker's loop yields to the browser
//! and answers any request that came in before the next batch ([`crate::worker`]). So a search is
//! answered from the passages embedded so far, a cancel stops the job after its batch, and a
//! 10,000-passage collection never holds the worker. The job saves the collection every
//! [`SAVE_EVERY_MS`] and when it stops; a save that fails (a full quota) stops the job with a
//! message, and the collection stays as last saved, resumable by embedding again.

use mlr_docs::read::Format;
use mlr_docs::search::{group_ranks, rank, shares, top};
use mlr_docs::split::content_tokens;
use mlr_docs::{Collection, ModelRef};
use mlr_embed::Role;

use super::protocol::{
    CollectionInfo, DocFile, DocHit, DocsEvent, DocsOp, DocsResults, EmbedProgress, FileReport, GroupView,
};
use super::store::{self, StoreError};
use crate::engine::{fetch_word_pieces, Loaded};
use crate::protocol::{WorkerError, WorkerEvent};

/// How often a running embedding saves the collection.
pub const SAVE_EVERY_MS: f64 = 5_000.0;
/// How often it reports progress.
const REPORT_EVERY_MS: f64 = 500.0;
/// The most results a search returns.
const MAX_K: usize = 1000;

/// The collection in memory (the one last used).
struct Open {
    /// Its storage name.
    file: String,
    collection: Collection,
    /// Bytes of its last save.
    bytes: u64,
    /// Passages embedded at its last save.
    saved: usize,
}

/// The running embedding.
struct Job {
    /// The `Embed` request's id (every progress event and the end carry it).
    id: u32,
    start_ms: f64,
    /// Passages embedded when it started.
    first: usize,
    /// Tokens embedded by it.
    tokens: usize,
    saved_ms: f64,
    reported_ms: f64,
}

/// The collections' state in the worker.
#[derive(Default)]
pub struct Docs {
    /// The collection last used; while a job runs, the one it embeds.
    open: Option<Open>,
    /// Another collection used while a job runs (searched, exported).
    other: Option<Open>,
    job: Option<Job>,
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn docs_error(id: u32, message: String, gpu: bool) -> WorkerEvent {
    WorkerEvent::Error { id, error: WorkerError::Docs { message, gpu } }
}

fn answer(id: u32, event: DocsEvent) -> WorkerEvent {
    WorkerEvent::Docs { id, event: Box::new(event) }
}

/// The model a collection made now records.
fn model_ref(loaded: &Loaded) -> Result<ModelRef, String> {
    let entry = loaded.manifest.model(Some(&loaded.model)).map_err(|e| e.to_string())?;
    Ok(ModelRef { name: entry.name.clone(), key: loaded.manifest.model_key(entry), dim: loaded.engine.dim() })
}

/// Whether `c` was embedded by the loaded model's weights.
fn usable(c: &Collection, loaded: Option<&Loaded>) -> bool {
    loaded.and_then(|l| model_ref(l).ok()).is_some_and(|m| m.key == c.model.key && m.dim == c.model.dim)
}

/// Refuses a collection the loaded model did not embed, naming both.
fn check_model(c: &Collection, loaded: &Loaded) -> Result<(), String> {
    if usable(c, Some(loaded)) {
        return Ok(());
    }
    Err(format!(
        "{:?} was embedded by model {:?} (key {}), and the loaded model {:?} has other weights: load {:?} to use it",
        c.name,
        c.model.name,
        short(&c.model.key),
        loaded.model,
        c.model.name
    ))
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}

/// The list entry of a collection.
fn info(file: &str, c: &Collection, bytes: u64, loaded: Option<&Loaded>) -> CollectionInfo {
    let langs = c.lang_counts();
    CollectionInfo {
        file: file.to_string(),
        name: c.name.clone(),
        model: c.model.name.clone(),
        usable: usable(c, loaded),
        created: c.created.clone(),
        passages: c.passages.len(),
        embedded: c.embedded(),
        tokens: c.passages.iter().map(|p| p.tokens).sum(),
        bytes,
        budget: c.budget,
        langs,
        sources: c.sources.iter().map(|s| s.name.clone()).collect(),
        groups: c.groups().len(),
        damaged: None,
    }
}

/// A storage name for a collection called `name`: its letters and digits, and the time.
fn storage_name(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|ch| if ch.is_alphanumeric() { ch.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug: String = slug.chars().take(40).collect();
    let slug = if slug.is_empty() { "collection".to_string() } else { slug };
    format!("{slug}-{}.mlrc", now_ms() as u64)
}

/// `name` without its extension.
fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

impl Docs {
    /// Whether an embedding job runs (then the worker's loop calls [`Docs::step`]).
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Answers one operation of request `id` (an `Embed` starts the job and answers with its
    /// first progress).
    pub(crate) async fn answer(&mut self, loaded: Option<&Loaded>, id: u32, op: DocsOp) -> Vec<WorkerEvent> {
        let what = op.describe();
        let gpu = loaded.is_some_and(|l| l.engine.is_gpu());
        match self.run(loaded, id, op).await {
            Ok(events) => events,
            Err(message) => vec![docs_error(id, format!("{what}: {message}"), gpu)],
        }
    }

    async fn run(&mut self, loaded: Option<&Loaded>, id: u32, op: DocsOp) -> Result<Vec<WorkerEvent>, String> {
        let need_model = || loaded.ok_or_else(|| WorkerError::NotLoaded.to_string());
        Ok(match op {
            DocsOp::List => vec![self.list(loaded, id).await?],
            DocsOp::Create { name, budget, column, files } => {
                vec![self.create(need_model()?, id, &name, budget, column.as_deref(), files).await?]
            }
            DocsOp::Embed { file } => self.start(need_model()?, id, &file).await?,
            DocsOp::Cancel => self.stop(loaded, Some("cancelled".into())).await,
            DocsOp::Search { file, query, k, lang } => {
                vec![self.search(need_model()?, id, &file, &query, k, lang.as_deref()).await?]
            }
            DocsOp::MarkTranslations { file, passages } => vec![self.mark(loaded, id, &file, &passages).await?],
            DocsOp::Delete { file } => {
                let mut events = Vec::new();
                if self.open.as_ref().is_some_and(|o| o.file == file) {
                    events = self.stop(loaded, Some("the collection was deleted".into())).await;
                    self.open = None;
                }
                if self.other.as_ref().is_some_and(|o| o.file == file) {
                    self.other = None;
                }
                store::remove(&file).await.map_err(|e| e.to_string())?;
                events.push(self.list(loaded, id).await?);
                events
            }
            DocsOp::Export { file } => {
                let bytes = match self.in_memory(&file) {
                    // The newest state, saved or not.
                    Some(o) => o.collection.encode(),
                    None => store::read(&file).await.map_err(|e| e.to_string())?,
                };
                vec![answer(id, DocsEvent::Exported { file, bytes })]
            }
            DocsOp::Import { name, bytes } => {
                let c = Collection::decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
                let file = storage_name(&c.name);
                store::write(&file, &bytes).await.map_err(|e| e.to_string())?;
                vec![self.list(loaded, id).await?]
            }
        })
    }

    /// Marks translations in collection `file` and saves it (a running job on it saves it with
    /// its next save).
    async fn mark(
        &mut self,
        loaded: Option<&Loaded>,
        id: u32,
        file: &str,
        passages: &[usize],
    ) -> Result<WorkerEvent, String> {
        let embedding = self.job.is_some() && self.open.as_ref().is_some_and(|o| o.file == file);
        let open = self.open(file).await?;
        let group = open.collection.mark_translations(passages).map_err(|e| e.to_string())?;
        if !embedding {
            save(open).await.map_err(|e| e.to_string())?;
        }
        let members = open.collection.passages.iter().filter(|p| p.group.as_deref() == Some(group.as_str())).count();
        let entry = info(&open.file, &open.collection, open.bytes, loaded);
        Ok(answer(id, DocsEvent::Marked { info: entry, group, members }))
    }

    /// The stored collections, newest first.
    async fn list(&self, loaded: Option<&Loaded>, id: u32) -> Result<WorkerEvent, String> {
        let mut collections = Vec::new();
        for file in store::names().await.map_err(|e| e.to_string())? {
            let entry = match self.in_memory(&file) {
                Some(o) => info(&file, &o.collection, o.bytes, loaded),
                None => match store::read(&file).await {
                    Ok(bytes) => match Collection::decode(&bytes) {
                        Ok(c) => info(&file, &c, bytes.len() as u64, loaded),
                        Err(e) => damaged(&file, bytes.len() as u64, e.to_string()),
                    },
                    Err(e) => damaged(&file, 0, e.to_string()),
                },
            };
            collections.push(entry);
        }
        collections.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.file.cmp(&b.file)));
        Ok(answer(id, DocsEvent::Listed { collections, storage: store::estimate().await }))
    }

    /// Collection `file` if it is in memory.
    fn in_memory(&self, file: &str) -> Option<&Open> {
        [&self.open, &self.other].into_iter().flatten().find(|o| o.file == file)
    }

    /// The collection `file`, read from storage unless it is in memory. While a job runs, its
    /// collection stays the open one and any other is kept beside it.
    async fn open(&mut self, file: &str) -> Result<&mut Open, String> {
        if self.open.as_ref().is_none_or(|o| o.file != file) {
            let found = match self.other.take_if(|o| o.file == file) {
                Some(o) => o,
                None => {
                    let bytes = store::read(file).await.map_err(|e| e.to_string())?;
                    let collection = Collection::decode(&bytes).map_err(|e| format!("{file}: {e}"))?;
                    let saved = collection.embedded();
                    Open { file: file.to_string(), collection, bytes: bytes.len() as u64, saved }
                }
            };
            if self.job.is_some() {
                return Ok(self.other.insert(found));
            }
            self.open = Some(found);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    async fn create(
        &mut self,
        loaded: &Loaded,
        id: u32,
        name: &str,
        budget: usize,
        column: Option<&str>,
        files: Vec<DocFile>,
    ) -> Result<WorkerEvent, String> {
        if files.is_empty() {
            return Err("no files: open files or paste text first".into());
        }
        let name = match name.trim() {
            "" => stem(&files[0].name).to_string(),
            n => n.to_string(),
        };
        let created = js_sys::Date::new_0().to_iso_string().as_string().unwrap_or_default();
        let mut c = Collection::new(&name, model_ref(loaded)?, &created, budget);
        let mut count = content_tokens(|text| loaded.engine.input_len(text, Role::Passage));
        let mut reports = Vec::new();
        for f in &files {
            let added =
                Format::of_name(&f.name, column).and_then(|format| c.add_file(&f.name, &f.bytes, &format, &mut count));
            reports.push(match added {
                Ok(a) => FileReport {
                    name: f.name.clone(),
                    passages: a.passages,
                    skipped: a.skipped_count,
                    skips: a.skipped.iter().map(|s| format!("{}: {}", s.place, s.why)).collect(),
                    error: None,
                },
                Err(e) => FileReport {
                    name: f.name.clone(),
                    passages: 0,
                    skipped: 0,
                    skips: Vec::new(),
                    error: Some(e.to_string()),
                },
            });
        }
        if c.passages.is_empty() {
            let why: Vec<String> = reports.iter().filter_map(|r| r.error.clone()).collect();
            return Err(if why.is_empty() { "the files hold no text".into() } else { why.join("; ") });
        }
        c.order_for_embedding();
        let file = storage_name(&name);
        let bytes = c.encode();
        store::write(&file, &bytes).await.map_err(|e| e.to_string())?;
        let entry = info(&file, &c, bytes.len() as u64, Some(loaded));
        let made = Open { file, collection: c, bytes: bytes.len() as u64, saved: 0 };
        // A running job keeps its collection open.
        match self.job {
            Some(_) => self.other = Some(made),
            None => self.open = Some(made),
        }
        Ok(answer(id, DocsEvent::Created { info: entry, files: reports }))
    }

    /// Starts embedding collection `file` (stopping a job on another one first).
    async fn start(&mut self, loaded: &Loaded, id: u32, file: &str) -> Result<Vec<WorkerEvent>, String> {
        let mut events = Vec::new();
        if self.job.is_some() {
            events = self.stop(Some(loaded), Some("another collection is being embedded".into())).await;
        }
        let open = self.open(file).await?;
        check_model(&open.collection, loaded)?;
        let now = now_ms();
        let job =
            Job { id, start_ms: now, first: open.collection.embedded(), tokens: 0, saved_ms: now, reported_ms: now };
        let progress = progress(open, &job);
        if open.collection.is_complete() {
            let entry = info(&open.file, &open.collection, open.bytes, Some(loaded));
            events.push(answer(id, DocsEvent::Embedded { info: entry, stopped: None, progress }));
        } else {
            events.push(answer(id, DocsEvent::Progress(progress)));
            self.job = Some(job);
        }
        Ok(events)
    }

    /// Embeds the next batch of the running job; returns its events (progress now and then, the
    /// end, or the error that stopped it).
    pub(crate) async fn step(&mut self, loaded: Option<&Loaded>) -> Vec<WorkerEvent> {
        let Some(loaded) = loaded else {
            return self.stop(None, Some("no model is loaded".into())).await;
        };
        let (Some(job), Some(open)) = (self.job.as_mut(), self.open.as_mut()) else {
            self.job = None;
            return Vec::new();
        };
        let gpu = loaded.engine.is_gpu();
        let c = &mut open.collection;
        let from = c.embedded();
        let to = (from + if gpu { 4 } else { 8 }).min(c.passages.len());
        let texts: Vec<&str> = c.passages[from..to].iter().map(|p| p.text.as_str()).collect();
        let vectors = async {
            fetch_word_pieces(loaded, &texts, Role::Passage).await?;
            loaded.engine.embed(&texts, Role::Passage).await
        }
        .await;
        drop(texts);
        let embedded = vectors.and_then(|v| c.push_vectors(&v.concat()).map_err(|e| e.to_string()));
        let id = job.id;
        if let Err(message) = embedded {
            let kept = open.saved;
            let total = c.passages.len();
            self.job = None;
            return vec![docs_error(
                id,
                format!("embedding failed: {message} ({kept} of {total} passages are saved; embed again to resume)"),
                gpu,
            )];
        }
        job.tokens += c.passages[from..to].iter().map(|p| p.tokens).sum::<usize>();
        let now = now_ms();
        if c.is_complete() {
            return self.stop(Some(loaded), None).await;
        }
        if now - job.saved_ms >= SAVE_EVERY_MS {
            job.saved_ms = now;
            if let Err(e) = save(open).await {
                let (kept, total) = (open.saved, open.collection.passages.len());
                self.job = None;
                return vec![docs_error(id, stopped_by(&e, kept, total), gpu)];
            }
        }
        if now - job.reported_ms >= REPORT_EVERY_MS {
            job.reported_ms = now;
            return vec![answer(id, DocsEvent::Progress(progress(open, job)))];
        }
        Vec::new()
    }

    /// Ends the running job, if any: saves, and answers its request with where it stopped
    /// (`why`: why before the end).
    pub(crate) async fn stop(&mut self, loaded: Option<&Loaded>, why: Option<String>) -> Vec<WorkerEvent> {
        let Some(job) = self.job.take() else { return Vec::new() };
        let Some(open) = self.open.as_mut() else { return Vec::new() };
        let gpu = loaded.is_some_and(|l| l.engine.is_gpu());
        if let Err(e) = save(open).await {
            return vec![docs_error(job.id, stopped_by(&e, open.saved, open.collection.passages.len()), gpu)];
        }
        let entry = info(&open.file, &open.collection, open.bytes, loaded);
        vec![answer(job.id, DocsEvent::Embedded { info: entry, stopped: why, progress: progress(open, &job) })]
    }
}

/// A list entry for a stored file that does not read as a collection.
fn damaged(file: &str, bytes: u64, why: String) -> CollectionInfo {
    CollectionInfo {
        file: file.to_string(),
        name: file.to_string(),
        model: String::new(),
        usable: false,
        created: String::new(),
        passages: 0,
        embedded: 0,
        tokens: 0,
        bytes,
        budget: 0,
        langs: Vec::new(),
        sources: Vec::new(),
        groups: 0,
        damaged: Some(why),
    }
}

/// Saves the open collection.
async fn save(open: &mut Open) -> Result<(), StoreError> {
    let bytes = open.collection.encode();
    store::write(&open.file, &bytes).await?;
    open.bytes = bytes.len() as u64;
    open.saved = open.collection.embedded();
    Ok(())
}

/// The message of a save that stopped a job.
fn stopped_by(e: &StoreError, kept: usize, total: usize) -> String {
    format!(
        "embedding stopped: {e}. {kept} of {total} passages are embedded and saved; delete a collection (or free the \
         browser's storage) and embed again to resume"
    )
}

fn progress(open: &Open, job: &Job) -> EmbedProgress {
    let c = &open.collection;
    let ms = now_ms() - job.start_ms;
    let this_job = c.embedded() - job.first;
    let left = c.passages.len() - c.embedded();
    let eta_s = if this_job == 0 { f64::NAN } else { ms / 1000.0 * left as f64 / this_job as f64 };
    EmbedProgress {
        file: open.file.clone(),
        done: c.embedded(),
        total: c.passages.len(),
        this_job,
        tokens: job.tokens,
        ms,
        eta_s: if eta_s.is_finite() { eta_s } else { -1.0 },
    }
}

impl Docs {
    async fn search(
        &mut self,
        loaded: &Loaded,
        id: u32,
        file: &str,
        query: &str,
        k: usize,
        lang: Option<&str>,
    ) -> Result<WorkerEvent, String> {
        let text = query.trim();
        if text.is_empty() {
            return Err("the query is empty: type a question first".into());
        }
        let open = self.open(file).await?;
        let c = &open.collection;
        check_model(c, loaded)?;
        if c.embedded() == 0 {
            return Err(format!("{:?} has no embedded passages yet: embed it first", c.name));
        }
        let start = now_ms();
        fetch_word_pieces(loaded, &[text], Role::Query).await?;
        let v = loaded.engine.embed(&[text], Role::Query).await?.remove(0);
        let encode_ms = now_ms() - start;
        let ranking = rank(c, &v).map_err(|e| e.to_string())?;
        let lang = lang.filter(|l| !l.is_empty());
        let hits = top(c, &ranking, k.clamp(1, MAX_K), lang)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| {
                let p = &c.passages[h.candidate];
                let part = if p.part > 1 { format!(", part {}", p.part) } else { String::new() };
                DocHit {
                    rank: h.rank,
                    pooled_rank: h.pooled_rank,
                    score: h.score,
                    passage: h.candidate,
                    lang: p.lang.clone(),
                    lang_source: format!("{:?}", p.lang_source),
                    text: p.text.clone(),
                    file: c.sources[p.source].name.clone(),
                    place: format!("{}{part}", p.place),
                    group: p.group.clone(),
                }
            })
            .collect();
        let groups = c
            .groups()
            .into_iter()
            .filter_map(|(key, _)| group_ranks(c, &ranking, &key).ok().map(|(ranks, d)| (key, ranks, d)))
            .filter(|(_, ranks, _)| ranks.len() >= 2)
            .map(|(key, ranks, rank_distance)| GroupView { key, ranks, rank_distance })
            .collect();
        let detected = mlr_docs::detect(text);
        Ok(answer(
            id,
            DocsEvent::Results(Box::new(DocsResults {
                file: file.to_string(),
                query: text.to_string(),
                query_lang: detected.code,
                query_lang_reliable: detected.reliable,
                hits,
                shares: shares(c, &ranking, k.clamp(1, MAX_K)),
                groups,
                embedded: c.embedded(),
                passages: c.passages.len(),
                k,
                encode_ms,
            })),
        ))
    }
}
