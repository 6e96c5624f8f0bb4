//! `mlr train`: hybrid batch training with progress, dev evaluation, checkpoints and Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mlr_model::AutodiffKernels;
use mlr_train::{Event, ModelFiles, Outcome, TrainConfig, TrainData, Trainer};

use crate::{default_model_dir, BackendArg};

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
    /// LAReQA-format directory with split.json (train articles for training, dev for evaluation).
    #[arg(long, default_value = "data/xquad-r")]
    pub data: PathBuf,
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
    /// Training languages (comma-separated).
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
        set!(eval_every, checkpoint_every, adam_epsilon, eval_batch_size, mini_batch);
    }
}

/// Runs `mlr train` on autodiff backend `B`.
pub fn run<B: AutodiffKernels>(args: &TrainArgs, device: &B::Device) -> Result<()> {
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
    if !args.data.join("split.json").exists() {
        bail!(
            "{}: no split.json (training needs a LAReQA-format directory with an article split)",
            args.data.display()
        );
    }
    eprintln!("loading {} and {} …", model_dir.display(), args.data.display());
    let files =
        ModelFiles::read(&model_dir).with_context(|| format!("reading the base model {}", model_dir.display()))?;
    let data = TrainData::from_lareqa_dir(&args.data, &config.train_langs)?;
    eprintln!(
        "{} training groups in {} languages; dev: {} questions × {} candidates",
        data.pairs.groups.len(),
        data.pairs.langs.len(),
        data.dev.as_ref().map_or(0, |d| d.questions.len()),
        data.dev.as_ref().map_or(0, |d| d.candidates.len())
    );
    let trainer = if args.resume {
        Trainer::<B>::resume(&config, files, data, &args.out, device)?
    } else {
        Trainer::<B>::new(config.clone(), files, data, &args.out, device)?
    };
    let mut trainer = trainer.with_kernels(crate::kernels());
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
