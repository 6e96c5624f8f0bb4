//! `mlr docs`: collections of your own documents (`mlr_docs`), natively.
//!
//! - `mlr docs build FILES… --out C.mlrc` reads the files, splits them into passages under a
//!   token budget, detects each passage's language and embeds the passages with a model of the
//!   demo (the page's exact weights), saving the collection as it goes: run it again to resume.
//! - `mlr search --collection C.mlrc QUERY` ranks a collection, built here or exported from the
//!   page, with the model that embedded it (checked by its key), as the page ranks it.
//! - `mlr docs langid --data data/xquad-r` measures the language detection on XQuAD-R's sentences
//!   and questions, per language.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_data::lareqa::LareqaSet;
use mlr_docs::collection::ModelRef;
use mlr_docs::read::Format;
use mlr_docs::search::{group_ranks, rank, shares, top};
use mlr_docs::split::DEFAULT_BUDGET;
use mlr_docs::Collection;
use mlr_embed::{Embedder, Role};
use mlr_model::Kernels;
use serde_json::json;

use crate::backend::{BackendArg, CliBackend, OnBackend};
use crate::demo::{DemoDir, SearchArgs};

/// How often a build saves the collection while it embeds.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Arguments of `mlr docs build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Files to read: .txt, .md, .jsonl, .csv, .tsv.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The collection file to write (run again with the same files to resume an interrupted build).
    #[arg(long)]
    pub out: PathBuf,
    /// A directory written by `mlr demo build`, whose model embeds the passages.
    #[arg(long)]
    pub demo: Option<PathBuf>,
    /// Model name in the demo's manifest (default: its first model).
    #[arg(long)]
    pub model: Option<String>,
    /// Most tokens per passage: a longer paragraph is cut at sentences, then words.
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    pub budget: usize,
    /// CSV and TSV files: the text column (a header name or 0-based number; default `text`, else
    /// the first).
    #[arg(long)]
    pub column: Option<String>,
    /// The collection's name (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Passages per encoder batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
}

/// Arguments of `mlr docs langid`.
#[derive(clap::Args)]
pub struct LangidArgs {
    /// A LAReQA-format directory (one `<lang>.json` per language).
    #[arg(long, default_value = "data/xquad-r")]
    pub data: PathBuf,
    /// Write `<out>.json` and `<out>.md` (e.g. results/docs/langid).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl OnBackend for BuildArgs {
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        build::<B>(&self, device, kernels)
    }
}

/// The tokenizer's count of a passage's own tokens (the `passage: ` prefix and special tokens
/// left out), as `mlr_docs::split` wants it.
fn token_counter<B: Kernels>(embedder: &Embedder<B>) -> impl FnMut(&str) -> usize + '_ {
    let tokenizer = embedder.tokenizer();
    mlr_docs::split::content_tokens(move |text| tokenizer.ids(text, Role::Passage).ok().map(|ids| ids.len()))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns is valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

fn build<B: Kernels>(args: &BuildArgs, device: &B::Device, kernels: bool) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let demo = DemoDir::open(args.demo.as_deref())?;
    let entry = demo.manifest.model(args.model.as_deref())?.clone();
    let embedder = demo.embedder::<B>(&entry, device, kernels)?;
    let model = ModelRef { name: entry.name.clone(), key: demo.manifest.model_key(&entry), dim: embedder.dim() };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.out.file_stem().map_or("collection".into(), |s| s.to_string_lossy().to_string()));

    // The files, read and split (quick); a file refused whole stops the build, naming it.
    let mut fresh = Collection::new(&name, model.clone(), &now_rfc3339(), args.budget);
    let mut count = token_counter(&embedder);
    for path in &args.files {
        let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        let format = Format::of_name(&file, args.column.as_deref())?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let added = fresh.add_file(&file, &bytes, &format, &mut count)?;
        eprintln!("{file}: {} passages ({})", added.passages, format.name());
        for skip in &added.skipped {
            eprintln!("  skipped {}: {}", skip.place, skip.why);
        }
        if added.skipped_count > added.skipped.len() {
            eprintln!("  … {} lines skipped in all", added.skipped_count);
        }
    }
    fresh.order_for_embedding();

    // Resume what an earlier run of the same build saved.
    let mut c = match std::fs::read(&args.out) {
        Ok(bytes) => {
            let old = Collection::decode(&bytes).with_context(|| format!("reading {}", args.out.display()))?;
            let same = old.model == model && old.budget == fresh.budget && old.sources == fresh.sources;
            if !same {
                bail!(
                    "{} exists and was made from other files, another budget or another model; remove it or choose another --out",
                    args.out.display()
                );
            }
            eprintln!(
                "resuming {}: {} of {} passages embedded",
                args.out.display(),
                old.embedded(),
                old.passages.len()
            );
            old
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.out.display())),
    };

    let total = c.passages.len();
    let bar = ProgressBar::new(total as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} passages {msg}").expect("valid template"));
    bar.set_position(c.embedded() as u64);
    let (start, first) = (Instant::now(), c.embedded());
    let mut tokens = 0usize;
    let mut saved = Instant::now();
    while !c.is_complete() {
        let from = c.embedded();
        let to = (from + args.batch_size).min(total);
        let texts: Vec<&str> = c.passages[from..to].iter().map(|p| p.text.as_str()).collect();
        let vectors = embedder.embed(&texts, Role::Passage)?;
        tokens += c.passages[from..to].iter().map(|p| p.tokens).sum::<usize>();
        c.push_vectors(&vectors.concat())?;
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let done = c.embedded() - first;
        let eta = Duration::from_secs_f64(secs * (total - c.embedded()) as f64 / done as f64);
        bar.set_position(c.embedded() as u64);
        bar.set_message(format!(
            "{:.1} passages/s, {:.0} tokens/s, eta {}",
            done as f64 / secs,
            tokens as f64 / secs,
            indicatif::HumanDuration(eta)
        ));
        if saved.elapsed() >= SAVE_EVERY {
            crate::output::write_bytes(&args.out, &c.encode())?;
            saved = Instant::now();
        }
    }
    bar.finish();
    let bytes = c.encode();
    crate::output::write_bytes(&args.out, &bytes)?;
    let langs = c.lang_counts();
    let langs: Vec<String> = langs.iter().map(|(l, n)| format!("{l} {n}")).collect();
    eprintln!(
        "{}: {} passages from {} files ({}), {} translation groups, model {}; {:.1} MB",
        args.out.display(),
        total,
        c.sources.len(),
        langs.join(", "),
        c.groups().len(),
        c.model.name,
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// `mlr search --collection`: [`SearchArgs`] with a collection, searched by [`search`].
pub struct CollectionSearch(pub SearchArgs);

impl OnBackend for CollectionSearch {
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        let path = self.0.collection.clone().context("mlr search --collection: no collection file given")?;
        let demo = DemoDir::open(self.0.demo.as_deref())?;
        search::<B>(&self.0, &path, &demo, device, kernels)
    }
}

/// `mlr search --collection`: the collection ranked for the query, with its model.
fn search<B: Kernels>(args: &SearchArgs, path: &Path, demo: &DemoDir, device: &B::Device, kernels: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let c = Collection::decode(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let entry = demo.manifest.model(Some(args.model.as_deref().unwrap_or(&c.model.name)))?;
    let key = demo.manifest.model_key(entry);
    if key != c.model.key {
        bail!(
            "{} was embedded by model {:?} with key {}, and the demo's {:?} has key {}: search it with the demo it was made with, or build it again",
            path.display(),
            c.model.name,
            c.model.key,
            entry.name,
            key
        );
    }
    let text = args.query.trim();
    if text.is_empty() {
        bail!("the query is empty");
    }
    if c.embedded() == 0 {
        bail!("{} has no embedded passages yet (resume its build first)", path.display());
    }
    let embedder = demo.embedder::<B>(entry, device, kernels)?;
    let v = embedder.embed(&[text], Role::Query)?.remove(0);
    let ranking = rank(&c, &v)?;
    let hits = top(&c, &ranking, args.k, args.lang.as_deref())?;
    let query_lang = mlr_docs::detect(text);
    let lang_shares = shares(&c, &ranking, args.k);
    let groups: Vec<(String, Vec<mlr_docs::search::GroupRank>, usize)> = c
        .groups()
        .into_iter()
        .filter_map(|(key, _)| group_ranks(&c, &ranking, &key).ok().map(|(r, d)| (key, r, d)))
        .filter(|(_, r, _)| r.len() >= 2)
        .collect();
    let where_from = |i: usize| {
        let p = &c.passages[i];
        let part = if p.part > 1 { format!(", part {}", p.part) } else { String::new() };
        format!("{} {}{part}", c.sources[p.source].name, p.place)
    };
    if args.json {
        let hits: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                let p = &c.passages[h.candidate];
                json!({"rank": h.rank, "pooled_rank": h.pooled_rank, "score": h.score, "passage": h.candidate,
                       "lang": p.lang, "text": p.text, "file": c.sources[p.source].name, "place": p.place.to_string(),
                       "part": p.part})
            })
            .collect();
        let groups: Vec<serde_json::Value> =
            groups.iter().map(|(k, r, d)| json!({"group": k, "ranks": r, "rank_distance": d})).collect();
        let value = json!({"query": text, "query_lang": query_lang.code, "collection": c.name, "model": c.model.name,
            "embedded": c.embedded(), "passages": c.passages.len(), "hits": hits, "shares": lang_shares, "groups": groups});
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{:>4}  {:>6}  {:<4} passage", "rank", "score", "lang");
    for h in &hits {
        let p = &c.passages[h.candidate];
        let text: String = p.text.chars().take(120).collect::<String>().replace('\n', " ");
        println!("{:>4}  {:.4}  {:<4} {text}  [{}]", h.rank, h.score, p.lang, where_from(h.candidate));
    }
    println!(
        "\nquery language {} ({}); share of the collection → of the top {}:",
        query_lang.code,
        if query_lang.reliable { "detected" } else { "unreliable guess" },
        args.k.min(c.embedded())
    );
    for s in &lang_shares {
        println!("  {:<4} {:>5.1} % → {:>5.1} %", s.lang, 100.0 * s.pool_share, 100.0 * s.top_share);
    }
    for (key, ranks, distance) in &groups {
        let per: Vec<String> = ranks.iter().map(|r| format!("{} {}", r.lang, r.rank)).collect();
        println!("translation group {key}: pooled ranks {}; rank distance {distance}", per.join(", "));
    }
    if !c.is_complete() {
        println!("({} of {} passages embedded: the rest are not searched)", c.embedded(), c.passages.len());
    }
    Ok(())
}

/// `mlr docs langid`: whatlang's accuracy on every sentence and question of a LAReQA set.
pub fn langid(args: &LangidArgs) -> Result<()> {
    let langs = LareqaSet::dir_langs(&args.data)?;
    let mut contents = Vec::new();
    for lang in &langs {
        let path = args.data.join(format!("{lang}.json"));
        contents.push((
            path.display().to_string(),
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        ));
    }
    let named: Vec<(&str, &str, &[u8])> =
        langs.iter().zip(&contents).map(|(l, (p, b))| (l.as_str(), p.as_str(), b.as_slice())).collect();
    let set = LareqaSet::from_files(&named)?;
    let mut rows = Vec::new();
    let (mut all_s, mut all_q, mut n_s, mut n_q) = (0usize, 0usize, 0usize, 0usize);
    for (li, lang) in langs.iter().enumerate() {
        let count = |texts: Vec<&str>| {
            let mut confusions: Vec<(String, usize)> = Vec::new();
            let right = texts
                .iter()
                .filter(|t| {
                    let d = mlr_docs::detect(t);
                    if d.code != *lang {
                        match confusions.iter_mut().find(|(c, _)| *c == d.code) {
                            Some((_, n)) => *n += 1,
                            None => confusions.push((d.code, 1)),
                        }
                        return false;
                    }
                    true
                })
                .count();
            confusions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (right, texts.len(), confusions)
        };
        let (rs, ns, cs) = count(set.candidates.iter().filter(|c| c.lang == li).map(|c| c.sentence.as_str()).collect());
        let (rq, nq, cq) = count(set.questions.iter().filter(|q| q.lang == li).map(|q| q.text.as_str()).collect());
        (all_s, all_q, n_s, n_q) = (all_s + rs, all_q + rq, n_s + ns, n_q + nq);
        let mut confused = cs;
        for (code, n) in cq {
            match confused.iter_mut().find(|(c, _)| *c == code) {
                Some((_, m)) => *m += n,
                None => confused.push((code, n)),
            }
        }
        confused.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top: Vec<String> = confused.iter().take(3).map(|(c, n)| format!("{c} {n}")).collect();
        rows.push(json!({"lang": lang, "sentences": ns, "sentence_accuracy": rs as f64 / ns.max(1) as f64,
            "questions": nq, "question_accuracy": rq as f64 / nq.max(1) as f64, "confused_with": top}));
    }
    let total = json!({"sentences": n_s, "sentence_accuracy": all_s as f64 / n_s.max(1) as f64,
        "questions": n_q, "question_accuracy": all_q as f64 / n_q.max(1) as f64});
    let command = format!("mlr docs langid --data {}", args.data.display());
    let mut md = format!(
        "# Language detection on {} (whatlang)\n\nMade by `{command}`: every candidate sentence and question of each language, \
         detected alone (no file to fall back on), as ISO 639-1 codes.\n\n| lang | sentences | accuracy | questions | accuracy | most often taken for (sentences and questions) |\n|---|---:|---:|---:|---:|---|\n",
        args.data.display()
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {:.1} % | {} | {:.1} % | {} |\n",
            r["lang"].as_str().unwrap_or(""),
            r["sentences"],
            100.0 * r["sentence_accuracy"].as_f64().unwrap_or(0.0),
            r["questions"],
            100.0 * r["question_accuracy"].as_f64().unwrap_or(0.0),
            r["confused_with"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    }
    md += &format!(
        "| all | {n_s} | {:.1} % | {n_q} | {:.1} % | |\n",
        100.0 * all_s as f64 / n_s.max(1) as f64,
        100.0 * all_q as f64 / n_q.max(1) as f64
    );
    print!("{md}");
    if let Some(out) = &args.out {
        let value = json!({"command": command, "detector": "whatlang 0.18", "languages": rows, "all": total});
        crate::output::write_bytes(&out.with_extension("json"), serde_json::to_string_pretty(&value)?.as_bytes())?;
        crate::output::write_bytes(&out.with_extension("md"), md.as_bytes())?;
    }
    Ok(())
}
