//! `mlr eval`: encode a LAReQA-format set (or Tatoeba) with a model and score it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use mlr_data::lareqa::{ArticleSplit, CandidateText, EvalIndex, LareqaSet, Split};
use mlr_embed::{Embedder, ModelFiles, Role};
use mlr_eval::lareqa::{evaluate_per_query, LareqaInput, LareqaOptions, LareqaReport, QueryScores};
use mlr_eval::score::{dot_scores, tie_order, top};
use mlr_eval::trec::Qrels;
use mlr_model::Kernels;
use serde_json::json;

use crate::cache::{key, EmbeddingCache};
use crate::center;
use crate::output;
use crate::{cache_root, default_model_dir, kernels, BackendArg};

#[derive(Clone, Copy, ValueEnum)]
pub enum CandidatesArg {
    /// The answer sentence alone (the paper's setting).
    Sentence,
    /// The sentence followed by its paragraph (LAReQA's sentence + context, as one text).
    SentenceContext,
}

/// Arguments of `mlr eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Hugging Face model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(long, env = "MLR_MODEL_DIR", default_value_os_t = default_model_dir())]
    pub model: PathBuf,
    /// A LAReQA-format directory (`<lang>.json` per language, optional `split.json`) or a Tatoeba
    /// directory (`tatoeba.<xxx>-eng.<xxx>` pairs).
    #[arg(long, default_value = "data/xquad-r")]
    pub data: PathBuf,
    /// Languages (comma-separated); default: every language of the directory.
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Articles to evaluate on (the split is read from `<data>/split.json`).
    #[arg(long, default_value = "all", value_parser = ["all", "train", "dev", "test"])]
    pub split: String,
    /// How candidates are encoded.
    #[arg(long, value_enum, default_value = "sentence")]
    pub candidates: CandidatesArg,
    /// Compute backend for encoding.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Longest encoder input in tokens; longer texts are truncated.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Write the full report as JSON here (a markdown table is written beside it, `.md`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the multilingual (pooled) ranking as a TREC run here, and its qrels beside it
    /// (`<file>.qrels`).
    #[arg(long)]
    pub trec_run: Option<PathBuf>,
    /// Documents per query in the TREC run (0 = the whole pool).
    #[arg(long, default_value_t = 100)]
    pub trec_depth: usize,
    /// k of the language preference rate.
    #[arg(long, default_value_t = 10)]
    pub preference_k: usize,
    /// Skip the mean rank correlation (it sorts every pooled ranking).
    #[arg(long)]
    pub no_rank_correlation: bool,
    /// Language centering: subtract each language's mean query and mean candidate vector,
    /// estimated on the articles of this split (e.g. `train`), and re-normalise, before scoring.
    #[arg(long, value_parser = ["all", "train", "dev", "test"])]
    pub center_langs: Option<String>,
    /// Keep only the questions of the first N distinct question ids (in every language); the
    /// candidate pool stays whole. The browser evaluator's "number of questions" is the same.
    #[arg(long)]
    pub max_questions: Option<usize>,
    /// Score precomputed vectors instead of encoding: a vector file written by `mlr demo build`
    /// (f16 rows of every candidate, then every question, of `--data` with all its languages).
    /// `--model` is not loaded.
    #[arg(long, conflicts_with_all = ["center_langs", "trec_run"])]
    pub vectors: Option<PathBuf>,
    /// Also write every question's scores here, one JSON object per line (`id`, `lang`, `ap` per
    /// corpus language, `multi`, `rank_distance`): the input of paired tests and bootstrap
    /// intervals over questions (scripts/train_report.py).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Where the embedding cache lives.
    #[arg(long, env = "MLR_EMBED_CACHE")]
    pub cache_dir: Option<PathBuf>,
}

/// Encoding statistics.
#[derive(Default)]
pub(crate) struct EncodeStats {
    texts: usize,
    cached: usize,
    tokens: usize,
    seconds: f64,
}

impl EncodeStats {
    pub(crate) fn json(&self) -> serde_json::Value {
        let tps = if self.seconds > 0.0 { self.tokens as f64 / self.seconds } else { 0.0 };
        json!({"texts": self.texts, "from_cache": self.cached, "encoded": self.texts - self.cached,
               "tokens_encoded": self.tokens, "seconds": self.seconds, "tokens_per_s": tps})
    }
}

/// A model with its embedding cache.
pub(crate) struct Encoder<B: Kernels> {
    pub(crate) embedder: Embedder<B>,
    cache: EmbeddingCache,
    batch_size: usize,
    pub(crate) stats: EncodeStats,
}

impl<B: Kernels> Encoder<B> {
    /// Vectors of `texts` under `role`, from the cache where possible; the rest are encoded
    /// shortest first and appended to the cache as they finish.
    pub(crate) fn encode(&mut self, texts: &[String], role: Role, what: &str) -> Result<Vec<Vec<f32>>> {
        let role_name = role.prefix();
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| key(role_name, t)).collect();
        let mut missing: Vec<usize> = (0..texts.len()).filter(|&i| self.cache.get(&keys[i]).is_none()).collect();
        // By length (small padding), then by key so that repeated texts sit together and are
        // encoded once.
        missing.sort_by_key(|&i| (texts[i].len(), keys[i]));
        missing.dedup_by_key(|&mut i| keys[i]);
        self.stats.texts += texts.len();
        self.stats.cached += texts.len() - missing.len();
        if !missing.is_empty() {
            let bar = ProgressBar::new(missing.len() as u64).with_style(
                ProgressStyle::with_template(&format!(
                    "encoding {what}: {{bar:30}} {{pos}}/{{len}} texts  {{per_sec}}  elapsed {{elapsed}}  eta {{eta}}"
                ))
                .expect("valid template"),
            );
            let start = Instant::now();
            // Chunks of similar length; each is cached as soon as it is done.
            for chunk in missing.chunks(self.batch_size.max(1) * 8) {
                let group: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
                self.stats.tokens +=
                    self.embedder.tokenize(&group, role)?.rows.iter().map(|r| r.ids.len()).sum::<usize>();
                let vectors = self.embedder.embed_many(&group, role, self.batch_size, |n| bar.inc(n as u64))?;
                self.cache.insert_many(chunk.iter().map(|&i| keys[i]).zip(vectors).collect())?;
            }
            bar.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            self.stats.seconds += secs;
            eprintln!("encoded {} {what} in {secs:.1} s", missing.len());
        }
        Ok(keys.iter().map(|k| self.cache.get(k).expect("encoded above").clone()).collect())
    }
}

/// The sha256 of the three files, one after the other (the embedding cache's key).
fn sha256_files(files: &ModelFiles) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for bytes in files.bytes() {
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One path (or `--flag=path` argument) made portable, for reports that are committed and compared
/// across machines: under the cache directory it starts with `$MLR_CACHE`, under the working
/// directory it becomes relative, under the home directory it starts with `~`.
pub(crate) fn portable(text: &str) -> String {
    let dirs = [
        (Some(cache_root()), "$MLR_CACHE"),
        (std::env::current_dir().ok(), "."),
        (std::env::var_os("HOME").map(PathBuf::from), "~"),
    ];
    let dirs: Vec<(String, &str)> =
        dirs.into_iter().filter_map(|(d, with)| Some((d?.display().to_string(), with))).collect();
    portable_under(text, &dirs)
}

fn portable_under(text: &str, dirs: &[(String, &str)]) -> String {
    if let Some((flag, value)) = text.split_once('=').filter(|(flag, _)| flag.starts_with("--")) {
        return format!("{flag}={}", portable_under(value, dirs));
    }
    for (dir, with) in dirs.iter().filter(|(d, _)| d.len() > 1) {
        if text == dir {
            return with.to_string();
        }
        if let Some(rest) = text.strip_prefix(dir.as_str()).and_then(|r| r.strip_prefix('/')) {
            return if *with == "." { rest.to_string() } else { format!("{with}/{rest}") };
        }
    }
    text.to_string()
}

pub(crate) fn command_line() -> String {
    // Lossy: a non-UTF-8 argument (a file name, say) is recorded with U+FFFD, never a panic.
    let mut args: Vec<String> = std::env::args_os().map(|a| portable(&a.to_string_lossy())).collect();
    args[0] = "mlr".into();
    args.iter()
        .map(|a| if a.contains(char::is_whitespace) || a.is_empty() { format!("'{a}'") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU model, core count and OS, for the record (`null` cores where they cannot be read).
pub fn machine() -> serde_json::Value {
    let m = mlr_embed::machine::Machine::this();
    json!({"cpu": m.cpu.unwrap_or_else(|| "unknown".into()), "cores": m.cores, "os": m.os})
}

fn write_outputs(out: &Path, report: &serde_json::Value, markdown: &str) -> Result<()> {
    let md = out.with_extension("md");
    output::write_bytes(out, (serde_json::to_string_pretty(report)? + "\n").as_bytes())?;
    output::write_bytes(&md, markdown.as_bytes())?;
    eprintln!("wrote {} and {}", out.display(), md.display());
    Ok(())
}

/// Loads the model directory `model` and opens its embedding cache (keyed by the sha256 of its
/// files and `max_tokens`). Returns the encoder and that sha256.
pub(crate) fn open_encoder<B: Kernels>(
    model: &Path,
    max_tokens: usize,
    no_cache: bool,
    cache_dir: Option<PathBuf>,
    batch_size: usize,
    device: &B::Device,
) -> Result<(Encoder<B>, String)> {
    eprintln!("loading {} …", model.display());
    let files = ModelFiles::read(model)?;
    let embedder = Embedder::<B>::from_files(&files, device)
        .with_context(|| format!("loading {}", model.display()))?
        .with_kernels(kernels());
    let options = mlr_embed::EmbedOptions { max_tokens, ..embedder.options() };
    let embedder = embedder.with_options(options);
    let model_sha = sha256_files(&files);
    drop(files);
    let dim = embedder.dim();
    let cache = if no_cache {
        EmbeddingCache::disabled(dim)
    } else {
        let dir = cache_dir.unwrap_or_else(|| cache_root().join("embeddings"));
        let cache = EmbeddingCache::open(&dir, &format!("{}-t{}", &model_sha[..16], max_tokens), dim)?;
        eprintln!("embedding cache {} ({} vectors)", cache.path().display(), cache.len());
        cache
    };
    Ok((Encoder { embedder, cache, batch_size, stats: EncodeStats::default() }, model_sha))
}

/// Runs `mlr eval` on backend `B`.
pub fn run<B: Kernels>(args: &EvalArgs, device: &B::Device) -> Result<()> {
    if !args.data.is_dir() {
        bail!("{}: not a directory (give --data a LAReQA-format or Tatoeba directory)", args.data.display());
    }
    let tatoeba = std::fs::read_dir(&args.data)?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("tatoeba."));
    if tatoeba && args.per_query.is_some() {
        bail!("--per-query writes the questions of a LAReQA-format set; Tatoeba's report has no per-question scores");
    }
    if let Some(vectors) = &args.vectors {
        if tatoeba {
            bail!("--vectors holds the vectors of a LAReQA-format set (from `mlr demo build`), not Tatoeba's");
        }
        if matches!(args.candidates, CandidatesArg::SentenceContext) {
            bail!("--vectors holds sentence vectors (`mlr demo build`): --candidates sentence-context needs encoding");
        }
        return run_precomputed(args, vectors);
    }
    let (mut encoder, model_sha) = open_encoder::<B>(
        &args.model,
        args.max_tokens,
        args.no_cache,
        args.cache_dir.clone(),
        args.batch_size,
        device,
    )?;
    let common = json!({
        "model": portable(&args.model.display().to_string()),
        "model_sha256": model_sha,
        "backend": match (args.backend, kernels()) {
            (BackendArg::Cpu, _) => "cpu (burn ndarray)",
            (BackendArg::Wgpu, true) => "wgpu (mlr kernels)",
            (BackendArg::Wgpu, false) => "wgpu (plain burn, --no-kernels)",
        },
        "machine": machine(),
        "command": command_line(),
    });
    if tatoeba {
        if args.center_langs.is_some() {
            bail!("--center-langs applies to LAReQA-format sets, not to Tatoeba");
        }
        return run_tatoeba(args, &mut encoder, common);
    }
    run_lareqa(args, &mut encoder, common)
}

/// The LAReQA-format set of `--data`, `--langs` and `--split`.
fn load_lareqa(args: &EvalArgs) -> Result<(LareqaSet, Vec<String>)> {
    let langs = if args.langs.is_empty() { LareqaSet::dir_langs(&args.data)? } else { args.langs.clone() };
    let lang_refs: Vec<&str> = langs.iter().map(String::as_str).collect();
    let full = LareqaSet::load_dir(&args.data, &lang_refs)?;
    let split: Split = args.split.parse().map_err(anyhow::Error::msg)?;
    let set = if split == Split::All {
        full
    } else {
        let path = args.data.join("split.json");
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading {} (needed for --split {})", path.display(), args.split))?;
        full.split(&ArticleSplit::from_json(&bytes, &path.display().to_string())?, split)
    };
    if set.questions.is_empty() {
        bail!("no questions in {} for split {}", args.data.display(), args.split);
    }
    if args.max_questions == Some(0) {
        bail!("--max-questions must be at least 1");
    }
    eprintln!(
        "{}: {} languages, {} articles, {} questions, {} candidates",
        args.data.display(),
        set.langs.len(),
        set.articles.len(),
        set.questions.len(),
        set.candidates.len()
    );
    Ok((set, langs))
}

fn run_lareqa<B: Kernels>(args: &EvalArgs, encoder: &mut Encoder<B>, common: serde_json::Value) -> Result<()> {
    let (set, langs) = load_lareqa(args)?;
    let lang_refs: Vec<&str> = langs.iter().map(String::as_str).collect();
    let split: Split = args.split.parse().map_err(anyhow::Error::msg)?;
    let index = set.eval_index(args.max_questions);
    let mode = candidate_mode(args);
    let candidate_texts: Vec<String> = (0..set.candidates.len()).map(|i| set.candidate_text(i, mode)).collect();
    let query_texts: Vec<String> = index.questions.iter().map(|&q| set.questions[q].text.clone()).collect();
    let mut cand_vecs = encoder.encode(&candidate_texts, Role::Passage, "candidates")?.concat();
    let mut query_vecs = encoder.encode(&query_texts, Role::Query, "queries")?.concat();
    let dim = encoder.embedder.dim();
    if let Some(on) = &args.center_langs {
        let part: Split = on.parse().map_err(anyhow::Error::msg)?;
        if part == split || part == Split::All || split == Split::All {
            eprintln!("warning: centering means are estimated on articles that are also evaluated (--split {} --center-langs {on})", args.split);
        }
        let path = args.data.join("split.json");
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading {} (needed for --center-langs)", path.display()))?;
        let est = LareqaSet::load_dir(&args.data, &lang_refs)?
            .split(&ArticleSplit::from_json(&bytes, &path.display().to_string())?, part);
        let texts: Vec<String> = (0..est.candidates.len()).map(|i| est.candidate_text(i, mode)).collect();
        let c = encoder.encode(&texts, Role::Passage, "centering candidates")?.concat();
        let c_lang: Vec<usize> = est.candidates.iter().map(|c| c.lang).collect();
        let texts: Vec<String> = est.questions.iter().map(|q| q.text.clone()).collect();
        let q = encoder.encode(&texts, Role::Query, "centering queries")?.concat();
        let q_lang: Vec<usize> = est.questions.iter().map(|q| q.lang).collect();
        let n = set.langs.len();
        let (c_means, q_means) =
            (center::language_means(&c, &c_lang, n, dim), center::language_means(&q, &q_lang, n, dim));
        for (l, lang) in set.langs.iter().enumerate() {
            if c_means[l].is_none() || q_means[l].is_none() {
                eprintln!("warning: no {on} questions or candidates in {lang}: its vectors are not centred");
            }
        }
        center::center(&mut cand_vecs, &index.candidate_lang, &c_means, dim);
        center::center(&mut query_vecs, &index.query_lang, &q_means, dim);
        eprintln!(
            "centred each language on the means of {} {} questions and {} candidates",
            est.questions.len(),
            on,
            est.candidates.len()
        );
    }
    let stats = (encoder.stats.json(), encode_line(&encoder.stats));
    score_and_report(args, &set, &index, &cand_vecs, &query_vecs, dim, &common, stats)
}

fn candidate_mode(args: &EvalArgs) -> CandidateText {
    match args.candidates {
        CandidatesArg::Sentence => CandidateText::Sentence,
        CandidatesArg::SentenceContext => CandidateText::SentenceContext,
    }
}

/// `mlr eval --vectors`: the vectors come from a file of `mlr demo build`.
fn run_precomputed(args: &EvalArgs, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = mlr_demo::VectorFile::decode(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let all_langs = LareqaSet::dir_langs(&args.data)?;
    let all_refs: Vec<&str> = all_langs.iter().map(String::as_str).collect();
    let full = LareqaSet::load_dir(&args.data, &all_refs)?;
    let rows = mlr_demo::Rows::new(&full, &file)
        .with_context(|| format!("{} does not match {}", path.display(), args.data.display()))?;
    let (set, _) = load_lareqa(args)?;
    let index = set.eval_index(args.max_questions);
    let (cands, queries) = rows.gather(&file, &set, &index)?;
    let common = json!({
        "model": portable(&path.display().to_string()),
        "model_sha256": mlr_demo::sha256_hex(&bytes),
        "backend": "precomputed vectors (f16, mlr demo build)",
        "machine": machine(),
        "command": command_line(),
    });
    let stats =
        (json!({"precomputed": path.display().to_string()}), format!("precomputed vectors from {}.", path.display()));
    score_and_report(args, &set, &index, &cands, &queries, file.dim, &common, stats)
}

#[allow(clippy::too_many_arguments)]
fn score_and_report(
    args: &EvalArgs,
    set: &LareqaSet,
    index: &EvalIndex,
    cand_vecs: &[f32],
    query_vecs: &[f32],
    dim: usize,
    common: &serde_json::Value,
    (stats_json, stats_line): (serde_json::Value, String),
) -> Result<()> {
    let input = LareqaInput::from_index(index, cand_vecs, query_vecs, dim);
    let options = LareqaOptions {
        preference_at: args.preference_k,
        rank_correlation: !args.no_rank_correlation,
        ..LareqaOptions::default()
    };
    let start = Instant::now();
    let (report, per_query) = evaluate_per_query(&input, &options)?;
    let scoring_seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "scored {} queries × {} candidates in {scoring_seconds:.1} s",
        index.questions.len(),
        set.candidates.len()
    );
    let table = report.markdown();
    println!("{table}");

    if let Some(path) = &args.trec_run {
        write_trec(path, &input, set, index, args.trec_depth)?;
    }
    if let Some(path) = &args.per_query {
        write_per_query(path, index, &per_query)?;
    }
    if let Some(out) = &args.out {
        let dataset = args.data.file_name().map_or("data".into(), |n| n.to_string_lossy().to_string());
        let mode = candidate_mode(args);
        let value = lareqa_json(&report, common, &dataset, args, stats_json, scoring_seconds, mode);
        let name = match &args.vectors {
            Some(v) => v.file_name().map_or("vectors".into(), |n| n.to_string_lossy().to_string()),
            None => args.model.file_name().map_or("model".into(), |n| n.to_string_lossy().to_string()),
        };
        let mut md = format!(
            "# {} on {dataset} ({} split)\n\nCommand: `{}`\n\nModel: `{}` (sha256 {}). Candidates: {}. {} queries × {} candidates.\nmAP is full-depth; Mo./Mul. macro over query languages, Cr. over the {} ordered language pairs. Rank distance: mean of max − min rank of a query's parallel answers in the pooled ranking (lower is fairer).\n\n",
            name,
            args.split,
            common["command"].as_str().unwrap_or(""),
            common["model"].as_str().unwrap_or(""),
            &common["model_sha256"].as_str().unwrap_or("")[..16],
            value["candidates"].as_str().unwrap_or(""),
            report.n_queries,
            report.n_candidates,
            report.pairs.iter().filter(|p| p.query_lang != p.corpus_lang).count(),
        );
        if let Some(n) = args.max_questions {
            md += &format!("Questions: the first {n} question ids of the split, in every language.\n\n");
        }
        if let Some(on) = &args.center_langs {
            md += &format!("Language centering: each language's mean query and mean candidate vector on the {on} articles subtracted, vectors re-normalised.\n\n");
        }
        md += &table;
        md += &format!("\nEncoding: {stats_line}\n");
        write_outputs(out, &value, &md)?;
    }
    Ok(())
}

/// One JSON line per question: its id and language, then [`QueryScores`] with languages by name.
fn write_per_query(path: &Path, index: &EvalIndex, scores: &[QueryScores]) -> Result<()> {
    output::write_with(path, |file| {
        for (q, s) in scores.iter().enumerate() {
            let ap: serde_json::Map<String, serde_json::Value> =
                index.langs.iter().zip(&s.ap).filter_map(|(l, ap)| ap.map(|ap| (l.clone(), json!(ap)))).collect();
            let line = json!({
                "id": index.question_ids[q],
                "lang": index.langs[index.query_lang[q]],
                "ap": ap,
                "multi": s.multi,
                "rank_distance": s.rank_distance,
            });
            writeln!(file, "{line}")?;
        }
        Ok(())
    })?;
    eprintln!("wrote {} ({} questions)", path.display(), scores.len());
    Ok(())
}

fn encode_line(s: &EncodeStats) -> String {
    let encoded = s.texts - s.cached;
    if encoded == 0 {
        return format!("all {} texts from the embedding cache.", s.texts);
    }
    format!(
        "{} texts ({} from the cache); {} encoded, {} tokens in {:.1} s = {:.0} tokens/s.",
        s.texts,
        s.cached,
        encoded,
        s.tokens,
        s.seconds,
        s.tokens as f64 / s.seconds.max(1e-9)
    )
}

fn lareqa_json(
    r: &LareqaReport,
    common: &serde_json::Value,
    dataset: &str,
    args: &EvalArgs,
    stats: serde_json::Value,
    scoring_seconds: f64,
    mode: CandidateText,
) -> serde_json::Value {
    let map = |s: &Option<mlr_eval::lareqa::SettingScore>| s.as_ref().map(|s| s.map);
    let rec = |s: &Option<mlr_eval::lareqa::SettingScore>, k: usize| s.as_ref().and_then(|s| s.recall.get(&k).copied());
    json!({
        "model": common["model"],
        "dataset": dataset,
        "split": args.split,
        "langs": r.langs,
        "n_queries": r.n_queries,
        "n_candidates": r.n_candidates,
        "mAP_mono": map(&r.mono),
        "mAP_cross": map(&r.cross),
        "mAP_multi": map(&r.multi),
        "R@1_mono": rec(&r.mono, 1),
        "R@1_cross": rec(&r.cross, 1),
        "R@10_multi": rec(&r.multi, 10),
        "rank_distance": r.rank_distance,
        "rank_correlation": r.rank_correlation,
        "per_lang": r.per_lang,
        "pairs": r.pairs,
        "correlation_pairs": r.correlation_pairs,
        "options": r.options,
        "candidates": match mode { CandidateText::Sentence => "sentence", CandidateText::SentenceContext => "sentence-context" },
        "center_langs": args.center_langs,
        "data_dir": portable(&args.data.display().to_string()),
        "model_sha256": common["model_sha256"],
        "backend": common["backend"],
        "machine": common["machine"],
        "encode": stats,
        "max_questions": args.max_questions,
        "scoring_seconds": scoring_seconds,
        "command": common["command"],
    })
}

/// The pooled (Mul.) ranking of every query as a TREC run, and the matching qrels.
fn write_trec(path: &Path, input: &LareqaInput, set: &LareqaSet, index: &EvalIndex, depth: usize) -> Result<()> {
    let nc = input.candidate_lang.len();
    let depth = if depth == 0 { nc } else { depth };
    let ties = tie_order(input.candidate_ids);
    let qid = |q: usize| format!("{}-{}", set.langs[index.query_lang[q]], index.question_ids[q]);
    output::write_with(path, |run_file| {
        let block = 256;
        let mut scores = vec![0f32; block * nc];
        let nq = input.query_lang.len();
        for start in (0..nq).step_by(block) {
            let rows = block.min(nq - start);
            let out = &mut scores[..rows * nc];
            dot_scores(&input.queries[start * input.dim..(start + rows) * input.dim], input.candidates, input.dim, out);
            for r in 0..rows {
                let row = &out[r * nc..(r + 1) * nc];
                let id = qid(start + r);
                for (rank, c) in top(row, &ties, depth).into_iter().enumerate() {
                    writeln!(run_file, "{id} Q0 {} {} {} mlr", input.candidate_ids[c], rank + 1, row[c])?;
                }
            }
        }
        Ok(())
    })?;
    let mut qrels = Qrels::default();
    for (q, rel) in input.relevant.iter().enumerate() {
        let docs = qrels.queries.entry(qid(q)).or_default();
        for &c in rel {
            docs.insert(input.candidate_ids[c].clone(), 1);
        }
    }
    let qrels_path = PathBuf::from(format!("{}.qrels", path.display()));
    output::write_bytes(&qrels_path, qrels.to_trec().as_bytes())?;
    eprintln!("wrote {} (depth {depth}) and {}", path.display(), qrels_path.display());
    Ok(())
}

fn run_tatoeba<B: Kernels>(args: &EvalArgs, encoder: &mut Encoder<B>, common: serde_json::Value) -> Result<()> {
    let mut pairs = mlr_data::tatoeba::load_dir(&args.data)?;
    if !args.langs.is_empty() {
        pairs.retain(|p| args.langs.contains(&p.lang));
        if pairs.is_empty() {
            bail!("none of {:?} in {}", args.langs, args.data.display());
        }
    }
    let dim = encoder.embedder.dim();
    let mut rows = Vec::new();
    let mut table = String::from("| lang | pairs | x→en accuracy | en→x accuracy |\n|---|---:|---:|---:|\n");
    for p in &pairs {
        // Bitext mining is symmetric: both sides get E5's "query: " prefix.
        let other = encoder.encode(&p.other, Role::Query, &format!("{} sentences", p.lang))?.concat();
        let english = encoder.encode(&p.english, Role::Query, &format!("{}-eng English sentences", p.lang))?.concat();
        let x_en = mlr_eval::bitext::accuracy(&other, &english, dim)?;
        let en_x = mlr_eval::bitext::accuracy(&english, &other, dim)?;
        table += &format!("| {} | {} | {:.4} | {:.4} |\n", p.lang, p.other.len(), x_en, en_x);
        rows.push(json!({"lang": p.lang, "pairs": p.other.len(), "x_to_en": x_en, "en_to_x": en_x}));
    }
    let mean = |k: &str| rows.iter().map(|r| r[k].as_f64().unwrap_or(0.0)).sum::<f64>() / rows.len() as f64;
    let (mx, me) = (mean("x_to_en"), mean("en_to_x"));
    table += &format!("| **mean** | | **{mx:.4}** | **{me:.4}** |\n");
    println!("{table}");
    if let Some(out) = &args.out {
        let value = json!({
            "model": common["model"], "dataset": "tatoeba", "langs": pairs.iter().map(|p| p.lang.clone()).collect::<Vec<_>>(),
            "mean_x_to_en": mx, "mean_en_to_x": me, "per_lang": rows,
            "prefix": "query: (both sides)", "model_sha256": common["model_sha256"], "backend": common["backend"],
            "machine": common["machine"], "encode": encoder.stats.json(), "command": common["command"],
        });
        let md = format!(
            "# Tatoeba bitext retrieval\n\nCommand: `{}`\n\nAccuracy of nearest-neighbour retrieval of the aligned translation (cosine; both sides with the `query: ` prefix).\n\n{table}\nEncoding: {}\n",
            common["command"].as_str().unwrap_or(""),
            encode_line(&encoder.stats)
        );
        write_outputs(out, &value, &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::portable_under;

    #[test]
    fn report_paths_are_portable() {
        let dirs = [
            ("/home/u/.cache/mlr".to_string(), "$MLR_CACHE"),
            ("/home/u/src/mlr".to_string(), "."),
            ("/home/u".to_string(), "~"),
        ];
        let p = |t: &str| portable_under(t, &dirs);
        assert_eq!(p("/home/u/.cache/mlr/runs/hybrid-s1/best"), "$MLR_CACHE/runs/hybrid-s1/best");
        assert_eq!(p("/home/u/src/mlr/data/xquad-r"), "data/xquad-r");
        assert_eq!(p("--out=/home/u/notes/x.json"), "--out=~/notes/x.json");
        assert_eq!(p("/home/u"), "~");
        // Only whole path components: a sibling directory and other text stay as they are.
        assert_eq!(p("/home/user2/x"), "/home/user2/x");
        assert_eq!(p("data/xquad-r"), "data/xquad-r");
        assert_eq!(p("a=b"), "a=b");
    }
}
