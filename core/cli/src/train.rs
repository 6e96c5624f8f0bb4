//! `mlr train`: hybrid batch training with progress, dev evaluation, checkpoints and Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_model::AutodiffKernels;
use mlr_train::{Event, ModelFiles, Outcome, TrainConfig, TrainData, Trainer};

use crate::backend::{BackendArg, CliBackend, OnBackend};
use crate::default_model_dir;

/// Arguments of `mlr train`. Every option below `--config` overrides the config file's value.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Run directory: config.json, checkpoint/, best/ and final/ (Hugging Face directories),
    /// summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Base model directory [default: the run's recorded base model when resuming, else the
    /// default model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training source, repeatable: a LAReQA-format directory (with split.json its train articles,
    /// else all of it), a .jsonl file of parallel pairs, or one side of a bitext pair
    /// (`<name>.<a>-<b>.<a>`). See the README's "Training data".
    #[arg(long, default_value = "data/xquad-r")]
    pub data: Vec<PathBuf>,
    /// With several --data sources, the weight of each (comma-separated, in order) [default: their
    /// sizes].
    #[arg(long, value_delimiter = ',')]
    pub data_weights: Option<Vec<f64>>,
    /// Dev set: a LAReQA-format directory (its dev articles with a split.json, else all of it)
    /// [default: the dev articles of the first --data directory with a split].
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (the config must be unchanged).
    #[arg(long)]
    pub resume: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// A TOML or JSON training config (defaults: see `mlr_train::TrainConfig`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Batch sampler.
    #[arg(long, value_parser = ["hybrid", "x-x-mono", "x-y", "x-x"])]
    pub sampler: Option<String>,
    /// Probability of a monolingual batch (hybrid).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Training languages (comma-separated; `all`: every language of the data).
    #[arg(long, value_delimiter = ',')]
    pub train_langs: Option<Vec<String>>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Pairs per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Global gradient-norm clip (0 = off).
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// InfoNCE temperature.
    #[arg(long)]
    pub tau: Option<f64>,
    /// Longest query in tokens.
    #[arg(long)]
    pub max_query_tokens: Option<usize>,
    /// Longest passage in tokens.
    #[arg(long)]
    pub max_passage_tokens: Option<usize>,
    /// Add a hard negative per pair (another sentence of the answer's paragraph): true or false.
    #[arg(long)]
    pub hard_negatives: Option<bool>,
    /// Keep the word embeddings fixed: true or false.
    #[arg(long)]
    pub freeze_word_embeddings: Option<bool>,
    /// Leave a passage out of a query's loss when it is also a right answer of that query (a
    /// shared answer sentence): true or false.
    #[arg(long)]
    pub mask_shared_answers: Option<bool>,
    /// AdamW ε.
    #[arg(long)]
    pub adam_epsilon: Option<f64>,
    /// Texts per encoder batch in dev evaluation.
    #[arg(long)]
    pub eval_batch_size: Option<usize>,
    /// Sampler seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Dev evaluation interval in steps (0 = at the end only).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Checkpoint interval in steps (0 = at the end and on Ctrl-C only).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Cached InfoNCE (GradCache): encode each batch in mini-batches of this many texts, so that
    /// memory is bounded by the mini-batch, not the batch (same gradients). 0 = off.
    #[arg(long)]
    pub mini_batch: Option<usize>,
}

impl TrainArgs {
    fn apply(&self, c: &mut TrainConfig) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(sampler, alpha, train_langs, steps, batch_size, lr, weight_decay, warmup_steps, grad_clip, tau);
        set!(max_query_tokens, max_passage_tokens, hard_negatives, freeze_word_embeddings, mask_shared_answers, seed);
        set!(eval_every, checkpoint_every, adam_epsilon, eval_batch_size, mini_batch, data_weights);
    }
}

impl OnBackend for TrainArgs {
    /// Trains on `Autodiff<B>`.
    fn run<B: CliBackend>(self, device: &B::Device, kernels: bool) -> Result<()> {
        run::<B::Autodiff>(&self, device, kernels)
    }
}

/// Runs `mlr train` on autodiff backend `B`.
fn run<B: AutodiffKernels>(args: &TrainArgs, device: &B::Device, kernels: bool) -> Result<()> {
    let (mut config, recorded_model) = if args.resume {
        let (config, base, step) = Trainer::<B>::checkpoint_info(&args.out)?;
        eprintln!("resuming {} at step {step} of {}", args.out.display(), config.steps);
        (config, Some(base))
    } else {
        (TrainConfig::default(), None)
    };
    if let Some(path) = &args.config {
        config = TrainConfig::from_file(path)?;
    }
    args.apply(&mut config);
    config.validate()?;
    let model_dir = args.model.clone().or(recorded_model).unwrap_or_else(default_model_dir);
    if !config.data_weights.is_empty() && config.data_weights.len() != args.data.len() {
        bail!("--data-weights has {} weights for {} --data sources", config.data_weights.len(), args.data.len());
    }
    eprintln!("loading {} …", model_dir.display());
    let files =
        ModelFiles::read(&model_dir).with_context(|| format!("reading the base model {}", model_dir.display()))?;
    let data = TrainData::load(&args.data, args.dev.as_deref(), &config.train_langs)?;
    for source in &data.sources {
        eprintln!(
            "{}: {} training groups in {} languages ({})",
            source.name,
            source.pairs.groups.len(),
            source.pairs.langs.len(),
            source.pairs.langs.join(" ")
        );
    }
    match &data.dev {
        Some(d) => eprintln!("dev: {} questions × {} candidates", d.questions.len(), d.candidates.len()),
        None => eprintln!("no dev set: every step trains, the final model is the result (give one with --dev)"),
    }
    let source_names: Vec<String> = data.sources.iter().map(|s| s.name.clone()).collect();
    let trainer = if args.resume {
        Trainer::<B>::resume(&config, files, data, &args.out, device)?
    } else {
        Trainer::<B>::new(config.clone(), files, data, &args.out, device)?
    };
    let mut trainer = trainer.with_kernels(kernels);
    let (notes, probabilities) = trainer.sampling();
    if source_names.len() > 1 {
        for (name, p) in source_names.iter().zip(&probabilities) {
            eprintln!("{name}: drawn for {:.1} % of the batches", 100.0 * p);
        }
    }
    for note in notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "{} (α {}), {} steps × {} pairs, lr {}, τ {}, word embeddings {}",
        config.sampler,
        config.effective_alpha().map_or("–".into(), |a| a.to_string()),
        config.steps,
        config.batch_size,
        config.lr,
        config.tau,
        if config.freeze_word_embeddings { "frozen" } else { "trained" }
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted again: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!("\nstopping after this step and writing a checkpoint (Ctrl-C again to quit at once)");
        })
        .context("installing the Ctrl-C handler")?;
    }

    let bar = ProgressBar::new(config.steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}").expect("valid template"),
    );
    bar.set_position(trainer.state().step as u64);
    let plain = bar.is_hidden();
    let mut recent: Vec<f64> = Vec::new();
    let batch_size = config.batch_size as f64;
    let outcome = trainer.run(&stop, &mut |event| match event {
        Event::Step(log) => {
            recent.push(log.seconds);
            if recent.len() > 20 {
                recent.remove(0);
            }
            let pairs_per_s = batch_size * recent.len() as f64 / recent.iter().sum::<f64>().max(1e-9);
            let msg = format!(
                "loss {:.4}  lr {:.2e}  |g| {:.2}  {:.1} pairs/s  {}",
                log.loss, log.lr, log.grad_norm, pairs_per_s, log.batch
            );
            bar.set_position(log.step as u64);
            bar.set_message(msg.clone());
            if plain && (log.step % 10 == 0 || log.step == 1) {
                eprintln!("step {}/{}  {msg}", log.step, config.steps);
            }
        }
        Event::EvalStart { texts } => {
            let line = format!("step {}: dev evaluation ({texts} texts) …", bar.position());
            if plain {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        Event::EvalProgress(_) => {}
        Event::Eval { log, best } => {
            let opt = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
            let line = format!(
                "step {}: dev Mo. {}  Cr. {}  Mul. {:.4}  rank distance {}  ({:.0} s){}",
                log.step,
                opt(log.mono, 4),
                opt(log.cross, 4),
                log.multi,
                opt(log.rank_distance, 1),
                log.seconds,
                if best { "  best → best/" } else { "" }
            );
            if plain {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        Event::Checkpoint(path) => {
            if plain {
                eprintln!("checkpoint {}", path.display());
            }
        }
    })?;
    bar.finish_and_clear();
    let s = trainer.state();
    let pairs = s.step as f64 * batch_size;
    eprintln!(
        "{} steps, {:.0} s of training, {:.2} pairs/s",
        s.step,
        s.train_seconds,
        pairs / s.train_seconds.max(1e-9)
    );
    match outcome {
        Outcome::Finished => {
            if let Some(best) = &s.best {
                eprintln!(
                    "best dev Mul. mAP {:.4} at step {} → {}",
                    best.multi,
                    best.step,
                    args.out.join("best").display()
                );
            }
            eprintln!("final model → {}", args.out.join("final").display());
        }
        Outcome::Interrupted { step } => {
            eprintln!("stopped at step {step}; continue with: mlr train --out {} --resume", args.out.display());
        }
    }
    Ok(())
}
