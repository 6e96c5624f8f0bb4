//! The encoder worker: owns the tokenizer, the encoder ([`crate::engine`]), the corpus and its
//! vectors, and the user's collections ([`crate::docs::worker`]), and answers the page's requests
//! one at a time, in order (so inference never runs twice at once). A collection's embedding runs
//! a batch at a time between requests.
//!
//! Backend: burn's wgpu backend on WebGPU when `navigator.gpu` gives a hardware adapter (or a
//! software one the user asked for), else burn's ndarray backend on the wasm CPU.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

#[cfg(feature = "webgpu")]
use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use futures::{FutureExt, SinkExt, StreamExt};
use mlr_data::lareqa::{ArticleSplit, Split};
use mlr_demo::corpus::{rank_distance, Ranking};
use mlr_demo::{Corpus, Manifest, ModelEntry, Rows, VectorFile};
use mlr_embed::{cosine, Embedder, Role};
use mlr_eval::lareqa::{evaluate, LareqaInput, LareqaOptions};
use mlr_weights::{WeightFiles, WordTable};
use wasm_bindgen::{JsCast, JsValue};
use yew_agent::reactor::{reactor, ReactorScope};

use crate::docs::worker::Docs;
use crate::engine::{fetch_word_pieces, Engine, Loaded, WordPieces};
use crate::fetch::{cache_url, fetch_plain, fetch_verified, prune_cache};
use crate::gpu::probe_webgpu;
#[cfg(feature = "webgpu")]
use crate::gpu::GpuProbe;
use crate::protocol::{AnswerGroup, BiasView, Hit, LangRank, Request, WorkerError, WorkerEvent};
use crate::threads::{self, Threads};

/// Where the encoder runs.
pub enum Device {
    /// The wasm CPU.
    Cpu,
    /// WebGPU.
    #[cfg(feature = "webgpu")]
    Gpu(WgpuDevice),
}

/// Which backend to use given the probe, and the label to show. The threaded worker (built
/// without WebGPU) always answers the CPU, with the probe's reason.
pub async fn choose_backend(allow_software_gpu: bool, force_cpu: bool) -> (Device, String) {
    if force_cpu {
        return (Device::Cpu, "CPU (chosen after a WebGPU error)".into());
    }
    let probe = probe_webgpu().await;
    #[cfg(feature = "webgpu")]
    match &probe {
        GpuProbe::Hardware(name) => {
            mlr_kernels::tune_for_adapter(name);
            return (Device::Gpu(WgpuDevice::default()), format!("WebGPU: {name}"));
        }
        GpuProbe::Software(name) if allow_software_gpu => {
            mlr_kernels::tune_for_adapter(name);
            return (Device::Gpu(WgpuDevice::default()), format!("WebGPU (software adapter): {name}"));
        }
        _ => {}
    }
    let _ = allow_software_gpu;
    (Device::Cpu, probe.cpu_reason())
}

/// Why loading failed: the encoder failing on WebGPU is told apart (the CPU backend may help).
enum LoadError {
    /// The encoder failed on the backend it was built for (its warm-up); `gpu`: that was WebGPU.
    Encoder {
        /// Whether the backend is WebGPU.
        gpu: bool,
        /// What went wrong.
        message: String,
    },
    /// Anything else (a download, a file that does not decode, a mismatch with the manifest).
    Other(String),
}

impl From<String> for LoadError {
    fn from(message: String) -> Self {
        LoadError::Other(message)
    }
}

impl From<LoadError> for WorkerError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::Encoder { gpu: true, message } => WorkerError::EncoderOnGpu { message },
            LoadError::Encoder { gpu: false, message } | LoadError::Other(message) => WorkerError::Load { message },
        }
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Data that survives switching models: the corpus, and the vectors of every model fetched so far.
#[derive(Default)]
struct Shared {
    /// Corpus and its row index, keyed by the sha256 of the first data file.
    corpus: Option<(String, Rc<Corpus>, Rc<Rows>)>,
    /// Vectors by sha256.
    vectors: HashMap<String, Rc<VectorFile>>,
    /// The article split.
    split: Option<ArticleSplit>,
    /// Whether burn's WebGPU runtime was set up (once per worker).
    #[cfg(feature = "webgpu")]
    gpu_ready: bool,
    /// The CPU threads, once started (at the first load).
    threads: Option<Threads>,
    /// Word tables kept in pieces, by their pieces' sha256 (the pieces fetched so far stay).
    words: HashMap<String, Arc<WordTable>>,
}

type Scope = ReactorScope<Request, WorkerEvent>;

async fn say(scope: &mut Scope, event: WorkerEvent) {
    let _ = scope.send(event).await;
}

/// Fetches one file with progress events (one per 4 MB and one at the end).
async fn fetch_file(
    scope: &mut Scope,
    base: &str,
    entry: &mlr_demo::FileEntry,
    downloaded: &mut u64,
) -> Result<Vec<u8>, String> {
    let mut last = 0u64;
    let name = entry.path.clone();
    let fetched = fetch_verified(base, entry, async |loaded, total, cached| {
        // A cached copy that failed its check is fetched again from 0.
        if loaded < last || loaded - last >= 4 << 20 || loaded == total {
            last = loaded;
            say(scope, WorkerEvent::Progress { file: name.clone(), loaded, total, cached }).await;
        }
    })
    .await?;
    if !fetched.cached {
        *downloaded += fetched.bytes.len() as u64;
    }
    // Checked as stored; a gzipped file is inflated here (the Cache API keeps it compressed).
    entry.inflate(fetched.bytes).map_err(|e| e.to_string())
}

async fn load_vectors(
    scope: &mut Scope,
    shared: &mut Shared,
    base: &str,
    dataset: &mlr_demo::DatasetEntry,
    model: &ModelEntry,
    downloaded: &mut u64,
) -> Result<Rc<VectorFile>, String> {
    if let Some(v) = shared.vectors.get(&model.vectors.sha256) {
        return Ok(v.clone());
    }
    let bytes = fetch_file(scope, base, &model.vectors, downloaded).await?;
    let file = Rc::new(VectorFile::decode(&bytes).map_err(|e| format!("{}: {e}", model.vectors.path))?);
    file.check_fits(model.dim, dataset.n_candidates, dataset.n_questions)
        .map_err(|e| format!("{}: {e}", model.vectors.path))?;
    shared.vectors.insert(model.vectors.sha256.clone(), file.clone());
    Ok(file)
}

async fn load(
    scope: &mut Scope,
    shared: &mut Shared,
    base: &str,
    model_name: Option<&str>,
    allow_software_gpu: bool,
    force_cpu: bool,
) -> Result<(Loaded, String, u64), LoadError> {
    let base = base.trim_end_matches('/');
    if shared.threads.is_none() {
        say(scope, WorkerEvent::Status("starting the CPU threads".into())).await;
        shared.threads = Some(threads::start(crate::workers::THREADED_WORKER).await);
    }
    say(scope, WorkerEvent::Status("reading manifest.json".into())).await;
    let manifest =
        Manifest::from_json(&fetch_plain(&format!("{base}/manifest.json")).await?).map_err(|e| e.to_string())?;
    say(scope, WorkerEvent::Manifest(manifest.clone())).await;
    let entry = manifest.model(model_name).map_err(|e| e.to_string())?.clone();
    let mut downloaded = 0u64;

    // The corpus (shared by every model).
    let data_key: String =
        manifest.dataset.files.iter().chain([&manifest.dataset.split]).map(|f| f.sha256.as_str()).collect();
    if shared.corpus.as_ref().is_none_or(|(k, _, _)| *k != data_key) {
        let mut files = Vec::new();
        for f in &manifest.dataset.files {
            files.push(fetch_file(scope, base, f, &mut downloaded).await?);
        }
        let split = fetch_file(scope, base, &manifest.dataset.split, &mut downloaded).await?;
        say(scope, WorkerEvent::Status("reading the corpus".into())).await;
        let corpus = Corpus::from_dataset(&manifest.dataset, &files).map_err(|e| e.to_string())?;
        shared.split = Some(ArticleSplit::from_json(&split, &manifest.dataset.split.path).map_err(|e| e.to_string())?);
        let vectors = load_vectors(scope, shared, base, &manifest.dataset, &entry, &mut downloaded).await?;
        let rows = Rows::new(&corpus.set, &vectors).map_err(|e| format!("{}: {e}", entry.vectors.path))?;
        shared.corpus = Some((data_key, Rc::new(corpus), Rc::new(rows)));
    }
    // Vectors of every model: the current one for search, the others for the side-by-side bias view.
    for m in &manifest.models {
        load_vectors(scope, shared, base, &manifest.dataset, m, &mut downloaded).await?;
    }

    let mut bytes = Vec::new();
    for f in &entry.files {
        // A file another model shares (the base's tokenizer) is fetched, and cached, once.
        bytes.push(fetch_file(scope, base, manifest.canonical(f), &mut downloaded).await?);
    }
    // A fine-tuned model's weights leave its frozen word table to the base model's file.
    let base_entry = manifest.base_of(&entry);
    let base_weights = match base_entry {
        Some(b) => Some(fetch_file(scope, base, &b.files[2], &mut downloaded).await?),
        None => None,
    };
    // A word table kept in pieces: only the pieces that texts need are fetched, when they do.
    let mut weights = WeightFiles { safetensors: &bytes[2], base: base_weights.as_deref(), words: None };
    let words = match weights.words_layout().map_err(|e| e.to_string())? {
        None => None,
        Some(layout) => {
            let files =
                if entry.words.is_empty() { base_entry.map_or(&entry.words, |b| &b.words) } else { &entry.words };
            if files.len() != layout.files.len() {
                return Err(LoadError::Other(format!(
                    "model {}: the manifest lists {} word table pieces, the weights {}",
                    entry.name,
                    files.len(),
                    layout.files.len()
                )));
            }
            let key = layout.sha256.join(",");
            let table = match shared.words.get(&key) {
                Some(t) => t.clone(),
                None => Arc::new(WordTable::new(layout).map_err(|e| e.to_string())?),
            };
            shared.words.insert(key, table.clone());
            Some(WordPieces { table, files: files.clone() })
        }
    };
    weights.words = words.as_ref().map(|w| &w.table);
    say(scope, WorkerEvent::Status("probing WebGPU".into())).await;
    let (device, label) = choose_backend(allow_software_gpu, force_cpu).await;
    say(scope, WorkerEvent::Status(format!("building the encoder ({label})"))).await;
    let engine = match device {
        #[cfg(feature = "webgpu")]
        Device::Gpu(device) => {
            if !shared.gpu_ready {
                init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
                shared.gpu_ready = true;
            }
            let embedder =
                Embedder::from_weight_files(&bytes[0], &bytes[1], weights, &device).map_err(|e| e.to_string())?;
            Engine::Gpu(Box::new(embedder))
        }
        Device::Cpu => Engine::Cpu(Box::new(
            Embedder::from_weight_files(&bytes[0], &bytes[1], weights, &Default::default())
                .map_err(|e| e.to_string())?,
        )),
    };
    drop((bytes, base_weights));
    if engine.dim() != entry.dim {
        return Err(LoadError::Other(format!(
            "model {}: the encoder gives vectors of width {}, the manifest says {}",
            entry.name,
            engine.dim(),
            entry.dim
        )));
    }
    let loaded = Loaded { manifest, model: entry.name.clone(), engine, base: base.to_string(), words };
    // Warm up (first-use shader compilation on WebGPU) with a one-word query.
    say(scope, WorkerEvent::Status(format!("warming up the encoder ({label})"))).await;
    downloaded += fetch_word_pieces(&loaded, &["warm-up"], Role::Query).await?;
    loaded.engine.embed(&["warm-up"], Role::Query).await.map_err(|e| LoadError::Encoder {
        gpu: loaded.engine.is_gpu(),
        message: format!("the encoder failed on {label}: {e}"),
    })?;
    // Drop cached files of earlier builds of the demo (everything the manifest no longer lists).
    let manifest = &loaded.manifest;
    let keep: Vec<String> = manifest
        .dataset
        .files
        .iter()
        .chain([&manifest.dataset.split])
        .chain(manifest.models.iter().flat_map(|m| m.files.iter().chain([&m.vectors]).chain(&m.words)))
        .map(|f| cache_url(base, f))
        .collect();
    prune_cache(&keep).await;
    Ok((loaded, label, downloaded))
}

fn bias_view(corpus: &Corpus, ranking: &Ranking, group: &str, model: &str, source: &str) -> BiasView {
    let ranks = corpus.lang_ranks(ranking, group);
    BiasView {
        model: model.to_string(),
        source: source.to_string(),
        rank_distance: rank_distance(&ranks),
        ranks: ranks
            .iter()
            .map(|r| LangRank {
                lang: corpus.set.langs[r.lang].clone(),
                rank: r.rank,
                score: r.score,
                sentence: corpus.set.candidates[r.candidate].sentence.clone(),
            })
            .collect(),
    }
}

async fn search(
    loaded: &Loaded,
    shared: &Shared,
    id: u32,
    query: &str,
    k: usize,
    lang: Option<&str>,
) -> Result<WorkerEvent, String> {
    let (_, corpus, _) = shared.corpus.as_ref().ok_or("the corpus is not loaded")?;
    let text = query.trim();
    if text.is_empty() {
        return Err("the query is empty: type a question first".into());
    }
    let lang = match lang.filter(|l| !l.is_empty()) {
        Some(code) => Some(corpus.lang(code).ok_or_else(|| format!("the corpus has no language {code:?}"))?),
        None => None,
    };
    let entry = loaded.manifest.model(Some(&loaded.model)).map_err(|e| e.to_string())?;
    let vectors = shared.vectors.get(&entry.vectors.sha256).ok_or("the model's vectors are not loaded")?;
    let tokens = loaded.engine.query_tokens(text)?;
    let max = loaded.engine.max_tokens();
    let start = now_ms();
    let fetched = fetch_word_pieces(loaded, &[text], Role::Query).await?;
    let v = loaded.engine.embed(&[text], Role::Query).await?.remove(0);
    let encode_ms = now_ms() - start;
    let start = now_ms();
    let ranking = corpus.rank(&v, &vectors.candidates, vectors.dim);
    let top = corpus.top(&ranking, k.clamp(1, 1000), lang);
    let group = corpus.group(text, &ranking);
    let mut bias = Vec::new();
    if let Some(g) = &group {
        bias.push(bias_view(corpus, &ranking, &g.question_id, &entry.name, "query encoded in the browser"));
        if g.reason == mlr_demo::corpus::GroupReason::DatasetQuestion {
            for other in loaded.manifest.models.iter().filter(|m| m.name != entry.name) {
                if let Some(ov) = shared.vectors.get(&other.vectors.sha256) {
                    let r = corpus.rank(ov.question(g.question), &ov.candidates, ov.dim);
                    bias.push(bias_view(
                        corpus,
                        &r,
                        &g.question_id,
                        &other.name,
                        "precomputed vector of this dataset question",
                    ));
                }
            }
        }
    }
    let hits = top
        .iter()
        .map(|h| {
            let c = &corpus.set.candidates[h.candidate];
            let p = &corpus.set.paragraphs[c.paragraph];
            let mut answers: Vec<String> =
                corpus.answered_by(h.candidate).iter().map(|&q| corpus.set.questions[q].id.clone()).collect();
            answers.dedup();
            Hit {
                rank: h.rank,
                pooled_rank: h.pooled_rank,
                score: h.score,
                candidate: h.candidate,
                id: c.id.clone(),
                lang: corpus.set.langs[c.lang].clone(),
                sentence: c.sentence.clone(),
                paragraph: p.context.clone(),
                article: corpus.set.articles[p.article].clone(),
                answers,
                parallel: group.as_ref().is_some_and(|g| corpus.answers(h.candidate, &g.question_id)),
            }
        })
        .collect();
    let group = group.map(|g| {
        // The question in the language of the best hit, else English, else the group's own.
        let qs = &corpus.set.questions;
        let best_lang = top.first().map(|h| corpus.set.candidates[h.candidate].lang);
        let en = corpus.lang("en");
        let pick = [best_lang, en]
            .into_iter()
            .flatten()
            .find_map(|l| qs.iter().find(|q| q.id == g.question_id && q.lang == l))
            .unwrap_or(&qs[g.question]);
        AnswerGroup { question: g.question_id.clone(), text: pick.text.clone(), reason: g.reason.describe().into() }
    });
    Ok(WorkerEvent::Results {
        id,
        query: text.to_string(),
        tokens: tokens.min(max),
        truncated: tokens > max,
        hits,
        group,
        bias,
        encode_ms,
        rank_ms: now_ms() - start,
        fetched,
    })
}

async fn reembed(
    scope: &mut Scope,
    loaded: &Loaded,
    shared: &Shared,
    id: u32,
    count: usize,
) -> Result<WorkerEvent, String> {
    let (_, corpus, _) = shared.corpus.as_ref().ok_or("the corpus is not loaded")?;
    let entry = loaded.manifest.model(Some(&loaded.model)).map_err(|e| e.to_string())?;
    let vectors = shared.vectors.get(&entry.vectors.sha256).ok_or("the model's vectors are not loaded")?;
    let n = corpus.set.candidates.len();
    if n == 0 {
        return Err("the corpus has no sentences to embed".into());
    }
    let count = count.clamp(1, n);
    // Evenly spread over the corpus, so every language is in the sample.
    let picks: Vec<usize> = (0..count).map(|i| i * n / count).collect();
    let (mut min, mut sum) = (f32::INFINITY, 0f64);
    // Encoding time alone (word-table pieces may be fetched between batches).
    let mut ms = 0.0;
    let batch = if loaded.engine.is_gpu() { 4 } else { 8 };
    for (done, chunk) in picks.chunks(batch).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|&c| corpus.set.candidates[c].sentence.as_str()).collect();
        fetch_word_pieces(loaded, &texts, Role::Passage).await?;
        let start = now_ms();
        let got = loaded.engine.embed(&texts, Role::Passage).await?;
        ms += now_ms() - start;
        for (&c, v) in chunk.iter().zip(&got) {
            let cos = cosine(v, vectors.candidate(c));
            min = min.min(cos);
            sum += cos as f64;
        }
        let what = format!("re-embedding {count} sentences in the browser");
        say(scope, WorkerEvent::JobProgress { id, done: ((done + 1) * batch).min(count), total: count, what }).await;
    }
    Ok(WorkerEvent::Reembedded { id, count, min_cosine: min, mean_cosine: (sum / count as f64) as f32, ms })
}

async fn run_eval(
    scope: &mut Scope,
    loaded: &Loaded,
    shared: &Shared,
    id: u32,
    langs: &[String],
    split: Split,
    max_questions: Option<usize>,
) -> Result<WorkerEvent, String> {
    let (_, corpus, rows) = shared.corpus.as_ref().ok_or("the corpus is not loaded")?;
    let entry = loaded.manifest.model(Some(&loaded.model)).map_err(|e| e.to_string())?;
    let vectors = shared.vectors.get(&entry.vectors.sha256).ok_or("the model's vectors are not loaded")?;
    let what = |s: &str| s.to_string();
    say(scope, WorkerEvent::JobProgress { id, done: 0, total: 3, what: what("selecting the questions") }).await;
    let codes: Vec<&str> = if langs.is_empty() {
        corpus.set.langs.iter().map(String::as_str).collect()
    } else {
        langs.iter().map(String::as_str).collect()
    };
    let set = corpus.set.restrict_langs(&codes).map_err(|e| e.to_string())?;
    let set = if split == Split::All {
        set
    } else {
        set.split(shared.split.as_ref().ok_or("the article split is not loaded")?, split)
    };
    if set.questions.is_empty() {
        return Err(format!("no questions in the {} split for {}", split.name(), codes.join(", ")));
    }
    if max_questions == Some(0) {
        return Err("the number of questions must be at least 1".into());
    }
    let index = set.eval_index(max_questions);
    let (cands, queries) = rows.gather(vectors, &set, &index).map_err(|e| e.to_string())?;
    let scoring = format!("scoring {} queries × {} candidates", index.questions.len(), set.candidates.len());
    say(scope, WorkerEvent::JobProgress { id, done: 1, total: 3, what: scoring }).await;
    let input = LareqaInput::from_index(&index, &cands, &queries, vectors.dim);
    let start = now_ms();
    // `mlr eval`'s defaults; one thread in the browser.
    let report =
        evaluate(&input, &LareqaOptions { threads: 1, ..LareqaOptions::default() }).map_err(|e| e.to_string())?;
    let ms = now_ms() - start;
    say(scope, WorkerEvent::JobProgress { id, done: 3, total: 3, what: what("done") }).await;
    let table = report.markdown();
    Ok(WorkerEvent::Evaluated { id, report: Box::new(report), table, ms })
}

/// Starts the worker (its bins' `main`): a panic hook that tells the page, then the request loop.
pub fn register() {
    use yew_agent::Registrable;
    // A panic aborts the worker (wasm32 has no unwinding): say so on the page before it dies.
    std::panic::set_hook(Box::new(|info| crate::crash::report(&info.to_string())));
    EncoderReactor::registrar().encoding::<crate::protocol::JsCodec>().register();
}

/// Waits for the browser's event loop to run once (a zero `setTimeout`), so messages posted to
/// the worker are delivered.
async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Ok(global) = js_sys::global().dyn_into::<web_sys::WorkerGlobalScope>() {
            let _ = global.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        } else {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// The worker's event loop: one request at a time, in the order they arrive. While a collection
/// is being embedded ([`Docs`]), the loop embeds a batch, yields to the browser, and answers a
/// request that came in before the next batch.
#[reactor(EncoderReactor)]
pub async fn encoder_reactor(mut scope: ReactorScope<Request, WorkerEvent>) {
    let mut loaded: Option<Loaded> = None;
    let mut shared = Shared::default();
    let mut docs = Docs::default();
    loop {
        let request = if docs.busy() {
            yield_to_browser().await;
            match scope.next().now_or_never() {
                Some(Some(request)) => Some(request),
                Some(None) => break,
                None => None,
            }
        } else {
            match scope.next().await {
                Some(request) => Some(request),
                None => break,
            }
        };
        let Some(request) = request else {
            for event in docs.step(loaded.as_ref()).await {
                if scope.send(event).await.is_err() {
                    return;
                }
            }
            continue;
        };
        let reply = match request {
            Request::Load { id, base_url, model, allow_software_gpu, force_cpu } => {
                // An embedding stops (saved) before its model goes.
                for event in docs.stop(loaded.as_ref(), Some("another model is loading".into())).await {
                    say(&mut scope, event).await;
                }
                loaded = None; // free the previous model before loading another
                let start = now_ms();
                match load(&mut scope, &mut shared, &base_url, model.as_deref(), allow_software_gpu, force_cpu).await {
                    Ok((l, backend, downloaded)) => {
                        let gpu = l.engine.is_gpu();
                        let event = WorkerEvent::Ready {
                            id,
                            model: l.model.clone(),
                            backend,
                            gpu,
                            load_ms: now_ms() - start,
                            downloaded,
                            candidates: shared.corpus.as_ref().map_or(0, |(_, c, _)| c.set.candidates.len()),
                            threads: shared.threads.clone().unwrap_or_default(),
                        };
                        loaded = Some(l);
                        event
                    }
                    Err(error) => WorkerEvent::Error { id, error: error.into() },
                }
            }
            Request::Search { id, query, k, lang } => match &loaded {
                None => WorkerEvent::Error { id, error: WorkerError::NotLoaded },
                Some(l) => search(l, &shared, id, &query, k, lang.as_deref()).await.unwrap_or_else(|message| {
                    WorkerEvent::Error { id, error: WorkerError::Search { message, gpu: l.engine.is_gpu() } }
                }),
            },
            Request::Reembed { id, count } => match &loaded {
                None => WorkerEvent::Error { id, error: WorkerError::NotLoaded },
                Some(l) => reembed(&mut scope, l, &shared, id, count).await.unwrap_or_else(|message| {
                    WorkerEvent::Error { id, error: WorkerError::Reembed { message, gpu: l.engine.is_gpu() } }
                }),
            },
            Request::Evaluate { id, langs, split, max_questions } => match &loaded {
                None => WorkerEvent::Error { id, error: WorkerError::NotLoaded },
                Some(l) => run_eval(&mut scope, l, &shared, id, &langs, split, max_questions)
                    .await
                    .unwrap_or_else(|message| WorkerEvent::Error { id, error: WorkerError::Evaluate { message } }),
            },
            Request::Docs { id, op } => {
                let mut events = docs.answer(loaded.as_ref(), id, op).await;
                let Some(last) = events.pop() else { continue };
                for event in events {
                    say(&mut scope, event).await;
                }
                last
            }
            Request::Malformed { message } => WorkerEvent::Malformed { message },
        };
        if scope.send(reply).await.is_err() {
            break;
        }
    }
}
