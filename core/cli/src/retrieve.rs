//! `mlr retrieve`: a MIRACL-format corpus, topics and qrels in; a vector store, a TREC run and the
//! trec measures out (nDCG@10, Recall@100, MRR@10, MAP), on top of `mlr_retrieve`.
//!
//! The flags are resolved once into a [`RetrievePlan`] (`plan.rs`). Then, in order:
//!
//! 1. `--merge`: the slice stores are merged into the store (`mlr_retrieve::merge`).
//! 2. Encoding (`mlr_retrieve::encode`): whatever the store lacks is encoded, E5's `passage: ` +
//!    title + " " + text, in journaled batches; Ctrl-C stops between batches and re-running resumes.
//!    With `--shard i/n` only that slice is encoded, and the command stops there.
//! 3. `--export-npy`: `vectors.npy` + `docids.txt`.
//! 4. `--topics`: queries encoded with `query: `, exact top-`depth` search over the store
//!    (`mlr_retrieve::search`), `--run` written, and with `--qrels` the measures of
//!    `mlr_eval::trec::evaluate`, printed and written to `--out` (JSON + markdown).

mod plan;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_embed::{Embedder, Role};
use mlr_eval::trec::{evaluate, TrecReport};
use mlr_model::Kernels;
use mlr_retrieve::ann::{self, AnnIndex};
use mlr_retrieve::encode::{encode, EncodeOptions, EncodeSummary, Progress, Slice};
use mlr_retrieve::export::{export_npy, NpyDtype};
use mlr_retrieve::search::{search, to_run, write_run, SearchOptions};
use mlr_retrieve::store::{Dtype, StoreError, VectorStore};
use serde_json::json;

pub use plan::{RetrieveArgs, RetrievePlan};
use plan::{SearchMode, SearchPlan};

use crate::backend::{BackendArg, CliBackend, OnBackend};
use crate::eval::{command_line, machine, portable};
use crate::output;

impl OnBackend for RetrievePlan {
    /// Runs `mlr retrieve`'s plan, encoding on backend `B`.
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        run::<B>(self, device, kernels)
    }
}

/// The encoder's error when Ctrl-C stopped it.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C)")
    }
}

impl std::error::Error for Interrupted {}

/// Passages the journal writes at once: `batch_size` × this, encoded shortest first in batches of
/// `batch_size` (less padding); Ctrl-C loses at most one such group.
const GROUP: usize = 8;

fn run<B: Kernels>(mut plan: RetrievePlan, device: &B::Device, kernels: bool) -> Result<()> {
    let merged_already = VectorStore::open_for(&plan.store, &plan.spec, &plan.corpus.fingerprint).is_ok();
    if !plan.merge.is_empty() && merged_already {
        // The same command run again (after Ctrl-C while searching, or for other topics): the
        // merged store is complete and holds this model's vectors of this corpus.
        eprintln!("{} is already a complete store of this model and corpus: nothing to merge", plan.store.display());
    } else if !plan.merge.is_empty() {
        // Every slice must hold this model's vectors of this corpus before anything is copied.
        for slice in &plan.merge {
            let manifest = mlr_retrieve::store::Manifest::read(slice)
                .with_context(|| format!("--merge: reading {}", slice.display()))?
                .with_context(|| format!("--merge: {} holds no manifest.json: not a vector store", slice.display()))?;
            manifest
                .check(slice, &plan.spec, &plan.corpus.fingerprint)
                .with_context(|| format!("--merge: {} is a store of another model or corpus", slice.display()))?;
        }
        let summary = mlr_retrieve::merge::merge(&plan.merge, &plan.store)
            .with_context(|| format!("--merge into {}", plan.store.display()))?;
        eprintln!(
            "merged {} slice stores into {}: {} shards ({} copied), {} passages",
            plan.merge.len(),
            plan.store.display(),
            summary.shards,
            summary.copied,
            summary.total_passages
        );
    }
    eprintln!("loading {} …", plan.files.dir.display());
    let files = std::mem::take(&mut plan.files.safetensors);
    let embedder = Embedder::<B>::from_bytes(&plan.files.config_json, &plan.files.tokenizer_json, &files, device)
        .with_context(|| format!("loading {}", plan.files.dir.display()))?
        .with_kernels(kernels);
    drop(files);
    let options = mlr_embed::EmbedOptions { max_tokens: plan.max_tokens, ..embedder.options() };
    let embedder = embedder.with_options(options);
    if embedder.dim() != plan.spec.dim {
        bail!("the model's vectors have {} dimensions, config.json says {}", embedder.dim(), plan.spec.dim);
    }
    let (summary, encode_seconds) = encode_corpus(&plan, &embedder)?;
    if let Some(slice) = plan.slice {
        print_slice_done(&plan, slice, &summary);
        return Ok(());
    }
    let store = VectorStore::open_for(&plan.store, &plan.spec, &plan.corpus.fingerprint)
        .with_context(|| format!("opening the store {}", plan.store.display()))?;
    if let Some(dir) = &plan.export {
        let dtype = if store.manifest().dtype == Dtype::F16 { NpyDtype::F16 } else { NpyDtype::F32 };
        export_npy(&store, dir, dtype).with_context(|| format!("--export-npy {}", dir.display()))?;
        eprintln!(
            "wrote {} ({} × {} {}) and {}",
            dir.join("vectors.npy").display(),
            store.len(),
            store.dim(),
            dtype.descr(),
            dir.join("docids.txt").display()
        );
    }
    let Some(search_plan) = &plan.search else {
        eprintln!("{} passages stored in {}; give --topics to search them", store.len(), plan.store.display());
        return Ok(());
    };
    let encoding = EncodingRecord { summary, seconds: encode_seconds, kernels };
    search_and_report(&plan, search_plan, &embedder, &store, &encoding)
}

/// Encodes what the store lacks (the plan's slice, or all), with a progress bar and Ctrl-C.
fn encode_corpus<B: Kernels>(plan: &RetrievePlan, embedder: &Embedder<B>) -> Result<(EncodeSummary, f64)> {
    // The first Ctrl-C while encoding stops after the batch in flight; a second one, or one after
    // encoding (searching, writing), quits at once: the store is consistent at every point.
    let (stop, encoding) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
    {
        let (stop, encoding) = (stop.clone(), encoding.clone());
        // One handler per process, installed here once.
        let _ = ctrlc::set_handler(move || {
            if !encoding.load(Ordering::SeqCst) || stop.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted: quitting at once (re-running resumes from the last stored batch)");
                std::process::exit(130);
            }
            eprintln!("\nstopping after this batch of passages (Ctrl-C again to quit at once)");
        });
    }
    let slice = plan.slice.unwrap_or(Slice::ALL);
    let options = EncodeOptions { batch_size: plan.batch_size * GROUP, slice };
    eprintln!(
        "encoding {} ({} files, {:.1} MB) into {}{}",
        plan.corpus.files.first().and_then(|f| f.parent()).map_or("the corpus".into(), |d| d.display().to_string()),
        plan.corpus.files.len(),
        plan.corpus.bytes() as f64 / 1e6,
        plan.store.display(),
        if slice == Slice::ALL { String::new() } else { format!(" (slice {slice})") }
    );
    let bar = ProgressBar::new(10_000)
        .with_style(ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}").expect("valid template"));
    let start = Instant::now();
    // When this run encoded its first batch, and how far the corpus had been read then: the rate
    // and ETA are of this run's encoding (shards stored earlier are skipped in seconds).
    let mut first: Option<(Instant, f64)> = None;
    let mut progress = |p: &Progress| {
        let f = p.fraction();
        bar.set_position((f * 10_000.0) as u64);
        let total = p.total.map_or(String::new(), |t| format!(" of {t}"));
        let mut msg = format!("{} passages stored{total}", p.done);
        if p.encoded > 0 {
            let (t0, f0) = *first.get_or_insert((Instant::now(), f));
            let secs = t0.elapsed().as_secs_f64().max(1e-3);
            let rate = p.encoded as f64 / start.elapsed().as_secs_f64().max(1e-3);
            msg += &format!(", {rate:.1} passages/s");
            if f > f0 {
                let eta = secs * (1.0 - f) / (f - f0);
                msg += &format!(", eta {}", indicatif::HumanDuration(std::time::Duration::from_secs_f64(eta)));
            }
        }
        bar.set_message(msg);
    };
    let encoder = |texts: &[String]| -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
        if stop.load(Ordering::SeqCst) {
            return Err(Box::new(Interrupted));
        }
        Ok(embedder.embed_many(texts, Role::Passage, plan.batch_size, |_| {})?)
    };
    let result = encode(&plan.store, &plan.corpus, &plan.spec, &options, encoder, &mut progress);
    encoding.store(false, Ordering::SeqCst);
    bar.finish_and_clear();
    if result.is_ok() && stop.load(Ordering::SeqCst) {
        eprintln!("stopped after the last batch: the store {} is complete; nothing was searched", plan.store.display());
        std::process::exit(130);
    }
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(summary) => {
            if summary.encoded > 0 {
                eprintln!(
                    "encoded {} passages in {seconds:.1} s ({:.1} passages/s); {} were stored already",
                    summary.encoded,
                    summary.encoded as f64 / seconds.max(1e-9),
                    summary.reused
                );
            } else {
                eprintln!("all {} passages of this store were encoded already", summary.reused);
            }
            if summary.empty_text > 0 {
                eprintln!("note: {} passages have empty text (their title alone is encoded)", summary.empty_text);
            }
            Ok((summary, seconds))
        }
        Err(StoreError::Encoder { source, .. }) if source.is::<Interrupted>() => {
            eprintln!(
                "stopped: every finished batch is stored in {}. Run the same command again to resume (nothing stored is encoded again).",
                plan.store.display()
            );
            std::process::exit(130);
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("encoding into {}", plan.store.display()))),
    }
}

fn print_slice_done(plan: &RetrievePlan, slice: Slice, summary: &EncodeSummary) {
    eprintln!(
        "slice {slice} done: {} of {} passages ({} shards in all) in {}.",
        summary.encoded + summary.reused,
        summary.total_passages,
        summary.shards,
        plan.store.display()
    );
    eprintln!(
        "When every slice 0/{n} … {last}/{n} is done, copy the slice directories to one machine and run\n  \
         mlr retrieve --model {} --corpus … --store MERGED --merge SLICE_DIR_0 … SLICE_DIR_{last} [--topics … --qrels …]\n\
         (the same --model, --corpus, --max-tokens, --dtype and --shard-size as here).",
        plan.files.dir.display(),
        n = slice.count,
        last = slice.count - 1,
    );
}

/// What the report says about the encoding.
struct EncodingRecord {
    summary: EncodeSummary,
    seconds: f64,
    kernels: bool,
}

/// Judged passages of the qrels found in the store: (judged found, judged, relevant found, relevant).
fn qrels_coverage(store: &VectorStore, qrels: &mlr_eval::trec::Qrels) -> (usize, usize, usize, usize) {
    let judged: HashSet<&str> = qrels.queries.values().flat_map(|d| d.keys().map(String::as_str)).collect();
    let relevant: HashSet<&str> =
        qrels.queries.values().flat_map(|d| d.iter().filter(|(_, &r)| r > 0).map(|(k, _)| k.as_str())).collect();
    let mut found = HashSet::new();
    for row in 0..store.len() {
        let docid = store.docid(row);
        if let Some(d) = judged.get(docid) {
            found.insert(*d);
        }
    }
    let rel_found = relevant.iter().filter(|d| found.contains(*d)).count();
    (found.len(), judged.len(), rel_found, relevant.len())
}

fn search_and_report<B: Kernels>(
    plan: &RetrievePlan,
    sp: &SearchPlan,
    embedder: &Embedder<B>,
    store: &VectorStore,
    encoding: &EncodingRecord,
) -> Result<()> {
    let qids: Vec<String> = sp.topics.iter().map(|(q, _)| q.clone()).collect();
    let texts: Vec<&str> = sp.topics.iter().map(|(_, t)| t.as_str()).collect();
    let start = Instant::now();
    let queries = embedder.embed_many(&texts, Role::Query, plan.batch_size, |_| {})?.concat();
    let query_seconds = start.elapsed().as_secs_f64();
    let index = open_index(sp, store)?;
    // The beam ann::search uses: never narrower than the depth.
    let ef = sp.ann.ef_search.max(sp.depth);
    let start = Instant::now();
    let hits = match &index {
        None => {
            let options = SearchOptions { depth: sp.depth, ..SearchOptions::default() };
            search(store, &qids, &queries, &options).context("searching the store")?
        }
        Some(index) => ann::search(index, store, &qids, &queries, sp.depth, sp.ann.ef_search)
            .context("searching the store's HNSW index")?,
    };
    let search_seconds = start.elapsed().as_secs_f64();
    let how = match &index {
        None => "exact".to_string(),
        Some(_) => format!("HNSW index, ef {ef}"),
    };
    eprintln!(
        "{} queries encoded in {query_seconds:.1} s; searched {} passages in {search_seconds:.2} s ({how}, depth {})",
        qids.len(),
        store.len(),
        sp.depth
    );
    if let Some(path) = &sp.run {
        output::write_with(path, |out| Ok(write_run(&mut &mut *out, &qids, &hits, "mlr")?))
            .with_context(|| format!("--run {}", path.display()))?;
        eprintln!("wrote {} ({} queries, depth {})", path.display(), qids.len(), sp.depth);
    }
    let Some((qrels_path, qrels)) = &sp.qrels else { return Ok(()) };
    let (found, judged, rel_found, relevant) = qrels_coverage(store, qrels);
    if rel_found < relevant {
        eprintln!(
            "warning: {} of the {relevant} relevant passages of --qrels are not in the corpus (judged: {found} of {judged} found): is it the corpus of these qrels?",
            relevant - rel_found
        );
    }
    let missing: Vec<&String> = qrels.queries.keys().filter(|q| !qids.contains(q)).collect();
    if !missing.is_empty() {
        eprintln!("note: {} queries of --qrels are not in --topics; they are not evaluated", missing.len());
    }
    let report = evaluate(qrels, &to_run(&qids, &hits), &sp.trec).context("evaluating the run")?;
    check_finite(&report)?;
    let table = markdown_table(&report);
    println!("{table}");
    if let Some(out) = &sp.out {
        let name = |p: &Path| p.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned());
        let model_dir = plan.files.dir.display().to_string();
        let s = &encoding.summary;
        let value = json!({
            "model": portable(&model_dir),
            "model_sha256": plan.model_sha,
            "store_model": plan.spec.model,
            "corpus": plan.corpus.files.iter().map(|f| portable(&f.display().to_string())).collect::<Vec<_>>(),
            "corpus_fingerprint": plan.corpus.fingerprint,
            "n_passages": store.len(),
            "topics": portable(&sp.topics_path.display().to_string()),
            "qrels": portable(&qrels_path.display().to_string()),
            "n_topics": qids.len(),
            "qrels_coverage": {"judged_found": found, "judged": judged, "relevant_found": rel_found, "relevant": relevant},
            "depth": sp.depth,
            "prefixes": {"query": Role::Query.prefix(), "passage": Role::Passage.prefix()},
            "passage_text": mlr_retrieve::store::PASSAGE_TEXT,
            "max_tokens": plan.max_tokens,
            "store": portable(&plan.store.display().to_string()),
            "dtype": store.manifest().dtype,
            "search": match &index {
                None => json!({"method": "exact inner product (mlr_retrieve::search)", "ties": "docid descending"}),
                Some(index) => json!({
                    "method": "HNSW (usearch, f32) candidates re-scored exactly (mlr_retrieve::ann)",
                    "ties": "docid descending",
                    "connectivity": index.meta().connectivity,
                    "ef_construction": index.meta().ef_construction,
                    "ef_search": ef,
                }),
            },
            "trec_options": sp.trec,
            "trec": report,
            "backend": match (plan.backend, encoding.kernels) {
                (BackendArg::Cpu, _) => "cpu (burn ndarray)",
                (BackendArg::Wgpu, true) => "wgpu (mlr kernels)",
                (BackendArg::Wgpu, false) => "wgpu (plain burn, --no-kernels)",
            },
            "machine": machine(),
            "encode": {"passages_encoded": s.encoded, "passages_stored_before": s.reused, "seconds": encoding.seconds,
                       "passages_per_s": if encoding.seconds > 0.0 && s.encoded > 0 { s.encoded as f64 / encoding.seconds } else { 0.0 }},
            "query_seconds": query_seconds,
            "search_seconds": search_seconds,
            "command": command_line(),
        });
        let md = format!(
            "# {} on {} ({} passages)\n\nCommand: `{}`\n\nModel: `{}` (sha256 {}). Passages: `passage: ` + title + \" \" + text; queries: `query: ` + query; {} search, depth {}, {} vectors.\nMeasures: trec_eval's conventions (mlr_eval::trec), over the {} queries of the qrels that are in the topics. Relevant passages found in the corpus: {rel_found} of {relevant}.\n\n{table}",
            name(&plan.files.dir),
            name(&sp.topics_path),
            store.len(),
            value["command"].as_str().unwrap_or(""),
            value["model"].as_str().unwrap_or(""),
            &plan.model_sha[..16],
            how,
            sp.depth,
            match store.manifest().dtype {
                Dtype::F16 => "f16",
                Dtype::Int8 => "int8",
            },
            report.num_q,
        );
        write_outputs(out, &value, &md)?;
    }
    Ok(())
}

/// The index `--search` asks for: none (exact), the one beside the store, or a new one built now.
fn open_index(sp: &SearchPlan, store: &VectorStore) -> Result<Option<AnnIndex>> {
    if sp.mode == SearchMode::Exact || (sp.mode == SearchMode::Auto && !ann::exists(store)) {
        return Ok(None);
    }
    if ann::exists(store) {
        match AnnIndex::open(store) {
            Ok(index) => {
                eprintln!("using the HNSW index beside the store ({} rows)", index.meta().rows);
                return Ok(Some(index));
            }
            Err(e) if sp.mode == SearchMode::Auto => {
                eprintln!("note: the HNSW index beside the store cannot be used ({e}); searching exactly");
                return Ok(None);
            }
            Err(e) => eprintln!("the HNSW index beside the store cannot be used ({e}): building it again"),
        }
    }
    let bar = ProgressBar::new(store.len() as u64).with_style(
        ProgressStyle::with_template("building the HNSW index {bar:30} {pos}/{len} rows, {per_sec}, ETA {eta}")
            .expect("template"),
    );
    let start = Instant::now();
    let index = ann::build(store, &sp.ann, |n| bar.set_position(n as u64)).context("building the HNSW index")?;
    bar.finish_and_clear();
    eprintln!(
        "built the HNSW index of {} rows in {:.1} s ({} MB file, kept in {})",
        store.len(),
        start.elapsed().as_secs_f64(),
        index.meta().file_bytes >> 20,
        store.dir().display()
    );
    Ok(Some(index))
}

/// Every measure is a finite number (the evaluator guarantees it; a report never prints NaN).
fn check_finite(report: &TrecReport) -> Result<()> {
    for m in std::iter::once(&report.mean).chain(&report.per_query) {
        if let Some((name, v)) = m.values.iter().find(|(_, v)| !v.is_finite()) {
            bail!("query {}: {name} is {v}, not a finite number: nothing is reported", m.qid);
        }
    }
    Ok(())
}

/// The MIRACL measures as a markdown table.
fn markdown_table(report: &TrecReport) -> String {
    let rows = [
        ("nDCG@10", "ndcg_cut_10"),
        ("Recall@100", "recall_100"),
        ("MRR@10", "recip_rank_10"),
        ("MAP", "map"),
        ("P@10", "P_10"),
    ];
    let mut table = String::from("| measure | value |\n|---|---:|\n");
    for (label, key) in rows {
        if let Some(v) = report.mean.values.get(key) {
            table += &format!("| {label} | {v:.4} |\n");
        }
    }
    table += &format!("| queries | {} |\n", report.num_q);
    table
}

fn write_outputs(out: &Path, report: &serde_json::Value, markdown: &str) -> Result<()> {
    let md = out.with_extension("md");
    output::write_bytes(out, (serde_json::to_string_pretty(report)? + "\n").as_bytes())
        .with_context(|| format!("--out {}", out.display()))?;
    output::write_bytes(&md, markdown.as_bytes()).with_context(|| format!("--out {}", md.display()))?;
    eprintln!("wrote {} and {}", out.display(), md.display());
    Ok(())
}
