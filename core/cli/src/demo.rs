//! `mlr demo build`: everything the web demo serves, and `mlr search`: the demo's search, natively.
//!
//! `mlr demo build` writes, for each model, a compact copy of its weights (`--weights compact`:
//! Q4_0 wherever Q4_0 holds a matrix exactly, which is all of the default model's; the first
//! model's other tensors in f32, so it is shipped without loss; a later model leaves the tensors
//! it shares with the first — a fine-tuned model's frozen word table — to it and stores the rest
//! as `--lossy` says), the vectors of every XQuAD-R candidate and question computed natively
//! with exactly those weights (int8 or f16, [`mlr_demo::vectors`]), and the model's LAReQA report
//! from the stored vectors; plus the data files and the tokenizer gzipped, and `manifest.json`
//! listing every file with its size, sha256 and format.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlr_data::lareqa::{ArticleSplit, LareqaSet, Split};
use mlr_demo::corpus::rank_distance;
use mlr_demo::{Corpus, DatasetEntry, FileEntry, Manifest, ModelEntry, Rows, VectorFile, VectorFormat};
use mlr_embed::{Embedder, ModelFiles, Role};
use mlr_eval::lareqa::{evaluate, LareqaInput, LareqaOptions};
use mlr_model::Kernels;
use mlr_weights::{WeightFiles, WordTable};
use serde_json::json;

use crate::backend::{BackendArg, CliBackend, OnBackend};
use crate::encoder::{Encoder, EncoderSpec};
use crate::eval::command_line;
use crate::{cache_root, default_model_dir};

/// Arguments of `mlr demo build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Models to ship, as `NAME=DIR` or `DIR` (the name is then the directory's name); the first
    /// is the page's default. Default: the converted multilingual-e5-small as `e5-small`.
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// The LAReQA-format corpus.
    #[arg(long, default_value = "data/xquad-r")]
    pub data: PathBuf,
    /// Output directory (served next to the page; `$MLR_CACHE/demo` by default).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How the weights are stored.
    #[arg(long, value_enum, default_value = "compact")]
    pub weights: WeightsArg,
    /// With `--weights compact`: how a later model stores the tensors Q4_0 cannot hold exactly
    /// (the first model keeps them in f32).
    #[arg(long, value_enum, default_value = "q8-0")]
    pub lossy: LossyArg,
    /// How the corpus vectors are stored.
    #[arg(long, value_enum, default_value = "q8-0")]
    pub vectors: VectorsArg,
    /// With `--weights compact`: rows per piece of the word table, which the page fetches piece
    /// by piece as queries need them (0: keep the table in the weights file).
    #[arg(long, default_value_t = 4096)]
    pub word_piece_rows: usize,
    /// Ship the JSON files (corpus, tokenizer) as they are instead of gzipped.
    #[arg(long)]
    pub no_gzip: bool,
    /// Compute backend for encoding the corpus.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The corpus licence, as the page's footer states it.
    #[arg(long, default_value = "XQuAD-R: CC BY-SA 4.0 (data/LICENSE-CC-BY-SA-4.0.txt)")]
    pub licence: String,
}

/// `mlr demo build --weights`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsArg {
    /// Q4_0 where exact, the rest as `--lossy` says; a fine-tuned model shares the base's word table.
    Compact,
    /// Every tensor as f16.
    F16,
    /// Every tensor as f32 (as read).
    F32,
}

/// `mlr demo build --lossy`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossyArg {
    /// GGML's Q8_0 (8.5 bits per value) for matrices, as their difference from the base's;
    /// f16 for vectors.
    #[value(name = "q8-0")]
    Q8_0,
    /// f16.
    F16,
    /// f32 (exact).
    F32,
}

/// `mlr demo build --vectors`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorsArg {
    /// int8 with an f16 scale per 32 values (GGML's Q8_0).
    #[value(name = "q8-0")]
    Q8_0,
    /// int8 with a scale per vector.
    Int8,
    /// IEEE half floats.
    F16,
}

/// Arguments of `mlr search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// The query (any language or mix of languages).
    pub query: String,
    /// A directory written by `mlr demo build` (or a trunk `dist/` that links one).
    #[arg(long)]
    pub demo: Option<PathBuf>,
    /// Model name in the demo's manifest (default: its first model).
    #[arg(long)]
    pub model: Option<String>,
    /// Results to print.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Only candidates of this language (default: the pooled corpus of all languages).
    #[arg(long)]
    pub lang: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Search a collection of your own documents (`mlr docs build`, or exported from the page)
    /// instead of the demo's corpus, with the demo model that embedded it.
    #[arg(long)]
    pub collection: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
}

/// `$MLR_CACHE/demo`.
pub fn default_demo_dir() -> PathBuf {
    cache_root().join("demo")
}

/// Writes `bytes` to `out/rel` and returns its manifest entry.
fn ship(out: &Path, rel: &str, bytes: &[u8]) -> Result<FileEntry> {
    let path = out.join(rel);
    let unchanged = std::fs::read(&path).is_ok_and(|old| old == bytes);
    if !unchanged {
        crate::output::write_bytes(&path, bytes)?;
    }
    Ok(FileEntry::of(rel, bytes))
}

/// Ships a JSON file, gzipped (as `rel.gz`) unless `plain`; the entry's format is `json`.
fn ship_json(out: &Path, rel: &str, bytes: &[u8], plain: bool) -> Result<FileEntry> {
    if plain {
        return Ok(ship(out, rel, bytes)?.with_format("json"));
    }
    use std::io::Write;
    // Level 9 and no file name or time in the header: the same input gives the same bytes.
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes)?;
    let gz = gz.finish()?;
    let mut entry = ship(out, &format!("{rel}.gz"), &gz)?.with_format("json");
    entry.encoding = Some("gzip".into());
    Ok(entry)
}

/// Removes the form of JSON file `rel` that [`ship_json`] will not write (`rel.gz` when `plain`,
/// else `rel`), left by an earlier build, so the directory holds only what the manifest lists.
fn unship_other_form(out: &Path, rel: &str, plain: bool) -> Result<()> {
    let other = if plain { format!("{rel}.gz") } else { rel.to_string() };
    match std::fs::remove_file(out.join(&other)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("removing {other}")),
        _ => Ok(()),
    }
}

/// The first model's shipped weights, which later models may leave tensors to.
struct ShippedBase {
    name: String,
    file: Vec<u8>,
    words: Option<Arc<WordTable>>,
}

/// Weights as shipped: the file, its format for the manifest, whether it leaves tensors to the
/// base, and the word table's pieces when it is split off.
struct Shipped {
    file: Vec<u8>,
    format: String,
    shares: bool,
    words: Option<(mlr_weights::WordsLayout, Vec<Vec<u8>>)>,
}

/// The weights as `args` says to ship them; a later model may leave tensors to `base`.
fn shipped_weights(args: &BuildArgs, safetensors: &[u8], base: Option<&ShippedBase>) -> Result<Shipped> {
    let plain = |file: Vec<u8>, format: &str| Shipped { file, format: format.into(), shares: false, words: None };
    match args.weights {
        WeightsArg::F32 => Ok(plain(safetensors.to_vec(), "f32")),
        WeightsArg::F16 => Ok(plain(mlr_weights::to_f16_safetensors(safetensors)?, "f16")),
        WeightsArg::Compact => {
            use mlr_weights::{DemoBase, DemoOptions, LossyMatrices, Quant};
            let lossy = match (base, args.lossy) {
                (None, _) | (_, LossyArg::F32) => LossyMatrices::F32,
                (Some(_), LossyArg::F16) => LossyMatrices::F16,
                (Some(_), LossyArg::Q8_0) => LossyMatrices::Quant(Quant::Q8_0),
            };
            let path = base.map(|b| format!("../{}/{}", b.name, ModelFiles::WEIGHTS));
            let base =
                base.zip(path.as_deref()).map(|(b, path)| DemoBase { file: &b.file, path, words: b.words.clone() });
            let options =
                DemoOptions { lossy, word_pieces: (args.word_piece_rows > 0).then_some(args.word_piece_rows) };
            let out = mlr_weights::to_demo_safetensors(safetensors, base, &options)?;
            let mut formats: Vec<(String, usize, usize)> = Vec::new();
            for t in &out.stored {
                match formats.iter_mut().find(|(f, _, _)| *f == t.format) {
                    Some((_, n, b)) => (*n, *b) = (*n + 1, *b + t.bytes),
                    None => formats.push((t.format.clone(), 1, t.bytes)),
                }
            }
            formats.sort_by_key(|f| std::cmp::Reverse(f.2));
            let format = formats
                .iter()
                .filter(|(f, _, _)| f != "q4_0 pieces")
                .map(|(f, n, _)| format!("{f} ({n} tensors)"))
                .collect::<Vec<_>>()
                .join(", ");
            let shares = out.stored.iter().any(|t| t.format == "base");
            Ok(Shipped { file: out.file, format, shares, words: out.words })
        }
    }
}

fn parse_model(spec: &str) -> Result<(String, PathBuf)> {
    let (name, dir) = match spec.split_once('=') {
        Some((n, d)) => (n.to_string(), PathBuf::from(d)),
        None => {
            let dir = PathBuf::from(spec);
            let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
            (name, dir)
        }
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.')
    {
        bail!("model name {name:?}: use letters, digits, '-', '_' and '.'");
    }
    Ok((name, dir))
}

/// A label for people: what `mlr train` recorded, else the directory.
fn model_label(name: &str, dir: &Path) -> String {
    let training = std::fs::read(dir.join("mlr_training.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match training {
        Some(t) => {
            let sampler = t["config"]["sampler"].as_str().unwrap_or("?");
            let alpha = t["config"]["alpha"].as_f64().map(|a| format!(" α {a}")).unwrap_or_default();
            let steps = t["step"].as_u64().map(|s| format!(", {s} steps")).unwrap_or_default();
            format!("{name}: fine-tuned by mlr train ({sampler}{alpha}{steps})")
        }
        None if dir == default_model_dir() => format!("{name}: multilingual-e5-small (base model)"),
        None => format!("{name}: {}", dir.display()),
    }
}

impl OnBackend for BuildArgs {
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        build::<B>(&self, device, kernels)
    }
}

impl OnBackend for SearchArgs {
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        search::<B>(&self, device, kernels)
    }
}

/// Runs `mlr demo build` on backend `B`.
fn build<B: Kernels>(args: &BuildArgs, device: &B::Device, kernels: bool) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(default_demo_dir);
    let specs = if args.models.is_empty() {
        vec![format!("e5-small={}", default_model_dir().display())]
    } else {
        args.models.clone()
    };
    let models: Vec<(String, PathBuf)> = specs.iter().map(|s| parse_model(s)).collect::<Result<_>>()?;
    for (i, (name, _)) in models.iter().enumerate() {
        if models[..i].iter().any(|(n, _)| n == name) {
            bail!("model name {name:?} given twice");
        }
    }

    // The corpus: every language of the directory, every article.
    let langs = LareqaSet::dir_langs(&args.data)?;
    let lang_refs: Vec<&str> = langs.iter().map(String::as_str).collect();
    // Each data file is read once: parsed here and shipped as it is.
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for lang in &langs {
        let path = args.data.join(format!("{lang}.json"));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let rel = format!("data/{lang}.json");
        unship_other_form(&out, &rel, args.no_gzip)?;
        files.push(ship_json(&out, &rel, &bytes, args.no_gzip)?);
        contents.push((path.display().to_string(), bytes));
    }
    let named: Vec<(&str, &str, &[u8])> =
        lang_refs.iter().zip(&contents).map(|(l, (p, b))| (*l, p.as_str(), b.as_slice())).collect();
    let set = LareqaSet::from_files(&named)?;
    let split_path = args.data.join("split.json");
    let split_bytes = std::fs::read(&split_path).with_context(|| format!("reading {}", split_path.display()))?;
    let split = ship(&out, "data/split.json", &split_bytes)?;
    for licence in std::fs::read_dir(&args.data)?.filter_map(|e| e.ok()) {
        let n = licence.file_name().to_string_lossy().to_string();
        if n.starts_with("LICENSE") {
            ship(&out, &format!("data/{n}"), &std::fs::read(licence.path())?)?;
        }
    }
    let dataset = DatasetEntry {
        name: args.data.file_name().map_or("data".into(), |n| n.to_string_lossy().to_string()),
        langs: langs.clone(),
        files,
        split,
        n_candidates: set.candidates.len(),
        n_questions: set.questions.len(),
        licence: args.licence.clone(),
    };
    eprintln!(
        "{}: {} languages, {} candidates, {} questions",
        args.data.display(),
        langs.len(),
        set.candidates.len(),
        set.questions.len()
    );

    let candidate_texts: Vec<String> = set.candidates.iter().map(|c| c.sentence.clone()).collect();
    let question_texts: Vec<String> = set.questions.iter().map(|q| q.text.clone()).collect();
    // The page's dataset table: the held-out test articles, where a fine-tuned model has not
    // seen the questions (all articles if the split has no test part).
    let article_split = ArticleSplit::from_json(&split_bytes, &split_path.display().to_string())?;
    let test = set.split(&article_split, Split::Test);
    let (report_set, report_split) = if test.questions.is_empty() { (set.clone(), "all") } else { (test, "test") };
    let index = report_set.eval_index(None);
    let mut entries = Vec::new();
    let mut base_weights: Option<ShippedBase> = None;
    for (name, dir) in &models {
        let start = Instant::now();
        eprintln!("model {name}: {}", dir.display());
        // The files (and the converted copy) are dropped before encoding.
        let (model_files, words, dtype, base) = {
            let files = ModelFiles::read(dir)?;
            if files.base_safetensors.is_some() || files.word_table.is_some() {
                bail!("{}: its weights are in a compact form; give the full model", dir.display());
            }
            let shipped = shipped_weights(args, &files.safetensors, base_weights.as_ref())?;
            let base = if shipped.shares { base_weights.as_ref().map(|b| b.name.clone()) } else { None };
            let dir_rel = format!("models/{name}");
            unship_other_form(&out, &format!("{dir_rel}/{}", ModelFiles::TOKENIZER), args.no_gzip)?;
            let files_out = vec![
                ship(&out, &format!("{dir_rel}/{}", ModelFiles::CONFIG), &files.config_json)?.with_format("json"),
                ship_json(&out, &format!("{dir_rel}/{}", ModelFiles::TOKENIZER), &files.tokenizer_json, args.no_gzip)?,
                ship(&out, &format!("{dir_rel}/{}", ModelFiles::WEIGHTS), &shipped.file)?.with_format(&shipped.format),
            ];
            let mut words = Vec::new();
            let mut table = None;
            if let Some((layout, pieces)) = &shipped.words {
                let t = WordTable::new(layout.clone())?;
                for (i, (file, piece)) in layout.files.iter().zip(pieces).enumerate() {
                    words.push(ship(&out, &format!("{dir_rel}/{file}"), piece)?.with_format(&layout.format));
                    t.insert(i, piece.clone())?;
                }
                table = Some(Arc::new(t));
            }
            let dtype = match args.weights {
                WeightsArg::Compact => "compact",
                WeightsArg::F16 => "f16",
                WeightsArg::F32 => "f32",
            };
            if base_weights.is_none() {
                base_weights = Some(ShippedBase { name: name.clone(), file: shipped.file, words: table });
            }
            (files_out, words, dtype, base)
        };
        // Encode with the shipped weights, so the page's queries and the corpus match.
        let spec = EncoderSpec {
            model: out.join("models").join(name),
            max_tokens: 512,
            batch_size: args.batch_size,
            cache: Some(crate::cache::default_dir()),
        };
        let (mut encoder, _) = Encoder::<B>::open(&spec, kernels, device)?;
        let dim = encoder.embedder.dim();
        let cands = encoder.encode(&candidate_texts, Role::Passage, "candidates")?.concat();
        let questions = encoder.encode(&question_texts, Role::Query, "questions")?.concat();
        let format = match args.vectors {
            VectorsArg::Q8_0 if dim.is_multiple_of(32) => VectorFormat::Q8,
            VectorsArg::Q8_0 | VectorsArg::Int8 => VectorFormat::I8,
            VectorsArg::F16 => VectorFormat::F16,
        };
        let bytes = VectorFile::encode_as(format, dim, &cands, &questions);
        let vectors = ship(&out, &format!("corpus/{name}.mlrv"), &bytes)?.with_format(format.name());
        // The dataset report from the stored vectors: what the page shows.
        let stored = VectorFile::decode(&bytes)?;
        let (report_cands, report_queries) = Rows::new(&set, &stored)?.gather(&stored, &report_set, &index)?;
        let report =
            evaluate(&LareqaInput::from_index(&index, &report_cands, &report_queries, dim), &LareqaOptions::default())?;
        eprintln!(
            "model {name} ({report_split} articles): Mo. {:.4}  Cr. {:.4}  Mul. {:.4}  rank distance {:.1}  ({:.0} s)",
            report.mono.as_ref().map_or(f64::NAN, |s| s.map),
            report.cross.as_ref().map_or(f64::NAN, |s| s.map),
            report.multi.as_ref().map_or(f64::NAN, |s| s.map),
            report.rank_distance.unwrap_or(f64::NAN),
            start.elapsed().as_secs_f64()
        );
        entries.push(ModelEntry {
            name: name.clone(),
            label: model_label(name, dir),
            files: model_files,
            dtype: dtype.into(),
            base,
            words,
            vectors,
            dim,
            report,
            report_split: report_split.into(),
        });
    }
    let manifest =
        Manifest { version: mlr_demo::manifest::MANIFEST_VERSION, dataset, models: entries, command: command_line() };
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    ship(&out, "manifest.json", text.as_bytes())?;
    let total: u64 =
        manifest.models.iter().flat_map(|m| m.files.iter().chain([&m.vectors])).map(|f| f.bytes).sum::<u64>()
            + manifest.dataset.files.iter().map(|f| f.bytes).sum::<u64>();
    eprintln!(
        "wrote {} ({} models, {:.1} MB in all)",
        out.join("manifest.json").display(),
        manifest.models.len(),
        total as f64 / 1e6
    );
    Ok(())
}

/// Runs `mlr search` on backend `B`.
/// A directory written by `mlr demo build`, read as the page reads it: every file checked
/// against the manifest.
pub struct DemoDir {
    dir: PathBuf,
    /// Its `manifest.json`.
    pub manifest: Manifest,
}

impl DemoDir {
    /// Reads `dir`'s manifest (`$MLR_CACHE/demo` when `None`).
    pub fn open(dir: Option<&Path>) -> Result<Self> {
        let dir = dir.map_or_else(default_demo_dir, Path::to_path_buf);
        let p = dir.join("manifest.json");
        let bytes =
            std::fs::read(&p).with_context(|| format!("reading {} (run `mlr demo build` first)", p.display()))?;
        Ok(DemoDir { manifest: Manifest::from_json(&bytes)?, dir })
    }

    /// A file of the manifest, checked (size, sha256) and inflated when gzipped.
    pub fn read(&self, f: &FileEntry) -> Result<Vec<u8>> {
        let p = self.dir.join(&f.path);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok(f.decode(bytes)?)
    }

    /// The encoder of model `entry` from exactly the files the page loads (its base's weights
    /// and the word table's pieces included).
    pub fn embedder<B: Kernels>(&self, entry: &ModelEntry, device: &B::Device, kernels: bool) -> Result<Embedder<B>> {
        let files: Vec<Vec<u8>> = entry.files.iter().map(|f| self.read(f)).collect::<Result<_>>()?;
        let base_entry = self.manifest.base_of(entry);
        let base = base_entry.map(|b| self.read(&b.files[2])).transpose()?;
        // The word table's pieces, the model's or its base's: all of them, read and checked.
        let mut weights = WeightFiles { safetensors: &files[2], base: base.as_deref(), words: None };
        let table = match weights.words_layout()? {
            None => None,
            Some(layout) => {
                let pieces =
                    if entry.words.is_empty() { base_entry.map_or(&entry.words, |b| &b.words) } else { &entry.words };
                if pieces.len() != layout.files.len() {
                    bail!(
                        "model {}: the manifest lists {} word table pieces, the weights {}",
                        entry.name,
                        pieces.len(),
                        layout.files.len()
                    );
                }
                let table = WordTable::new(layout)?;
                for (i, piece) in pieces.iter().enumerate() {
                    table.insert(i, self.read(piece)?)?;
                }
                Some(Arc::new(table))
            }
        };
        weights.words = table.as_ref();
        Ok(Embedder::<B>::from_weight_files(&files[0], &files[1], weights, device)?.with_kernels(kernels))
    }
}

fn search<B: Kernels>(args: &SearchArgs, device: &B::Device, kernels: bool) -> Result<()> {
    let demo = DemoDir::open(args.demo.as_deref())?;
    let manifest = &demo.manifest;
    let entry = manifest.model(args.model.as_deref())?;
    let data: Vec<Vec<u8>> = manifest.dataset.files.iter().map(|f| demo.read(f)).collect::<Result<_>>()?;
    let corpus = Corpus::from_dataset(&manifest.dataset, &data)?;
    let vectors = VectorFile::decode(&demo.read(&entry.vectors)?)?;
    let text = args.query.trim();
    if text.is_empty() {
        bail!("the query is empty");
    }
    let lang = match &args.lang {
        Some(code) => Some(corpus.lang(code).with_context(|| format!("the corpus has no language {code:?}"))?),
        None => None,
    };
    let embedder = demo.embedder::<B>(entry, device, kernels)?;
    vectors
        .check_fits(embedder.dim(), corpus.set.candidates.len(), corpus.set.questions.len())
        .with_context(|| format!("{} for model {:?}", entry.vectors.path, entry.name))?;
    let v = embedder.embed(&[text], Role::Query)?.remove(0);
    let ranking = corpus.rank(&v, &vectors.candidates, vectors.dim);
    let top = corpus.top(&ranking, args.k, lang);
    let group = corpus.group(text, &ranking);
    let ranks = group.as_ref().map(|g| corpus.lang_ranks(&ranking, &g.question_id)).unwrap_or_default();
    if args.json {
        let hits: Vec<serde_json::Value> = top
            .iter()
            .map(|h| {
                let c = &corpus.set.candidates[h.candidate];
                json!({"rank": h.rank, "pooled_rank": h.pooled_rank, "score": h.score, "id": c.id,
                       "lang": corpus.set.langs[c.lang], "sentence": c.sentence})
            })
            .collect();
        let bias: Vec<serde_json::Value> = ranks
            .iter()
            .map(|r| json!({"lang": corpus.set.langs[r.lang], "rank": r.rank, "score": r.score, "id": corpus.set.candidates[r.candidate].id}))
            .collect();
        let value = json!({"query": text, "model": entry.name, "hits": hits,
            "group": group.as_ref().map(|g| &g.question_id), "bias": bias, "rank_distance": rank_distance(&ranks)});
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{:>4}  {:>6}  {:<4} sentence", "rank", "score", "lang");
    for h in &top {
        let c = &corpus.set.candidates[h.candidate];
        let mark =
            if group.as_ref().is_some_and(|g| corpus.answers(h.candidate, &g.question_id)) { "◆" } else { " " };
        println!("{:>4}  {:.4}  {:<4}{mark} {}", h.rank, h.score, corpus.set.langs[c.lang], c.sentence);
    }
    if let Some(g) = &group {
        let per: Vec<String> = ranks.iter().map(|r| format!("{} {}", corpus.set.langs[r.lang], r.rank)).collect();
        println!(
            "\nparallel answers of question {} ({}): pooled ranks {}; rank distance {}",
            g.question_id,
            g.reason.describe(),
            per.join(", "),
            rank_distance(&ranks)
        );
    }
    Ok(())
}
