//! `mlr-bench train`: optimiser steps per second of mlr's trainer (hybrid sampler, the settings of
//! the shipped run) on the CPU and on wgpu, reported as (query, passage) pairs per second.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, NdArray, Wgpu};
use mlr_model::AutodiffKernels;
use mlr_train::{ModelFiles, TrainConfig, TrainData, Trainer};
use serde_json::json;

/// Arguments of `mlr-bench train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Hugging Face model directory.
    #[arg(long, env = "MLR_MODEL_DIR")]
    model: PathBuf,
    /// LAReQA-format directory with `split.json`.
    #[arg(long, default_value = "data/xquad-r")]
    data: PathBuf,
    /// Backends (cpu, wgpu).
    #[arg(long, value_delimiter = ',', default_value = "cpu,wgpu")]
    backends: Vec<String>,
    /// Pairs per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Timed steps, after one untimed warm-up step.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Longest query in tokens.
    #[arg(long, default_value_t = 32)]
    max_query_tokens: usize,
    /// Longest passage in tokens.
    #[arg(long, default_value_t = 64)]
    max_passage_tokens: usize,
    /// Output JSON (markdown beside it).
    #[arg(long, default_value = "results/bench/train.json")]
    out: PathBuf,
}

fn time_steps<B: AutodiffKernels>(args: &TrainArgs, device: &B::Device) -> Result<(Vec<f64>, Vec<f32>)> {
    let config = TrainConfig {
        sampler: "hybrid".into(),
        alpha: 0.5,
        steps: args.steps + 1,
        batch_size: args.batch_size,
        warmup_steps: 1,
        max_query_tokens: args.max_query_tokens,
        max_passage_tokens: args.max_passage_tokens,
        eval_every: 0,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let files = ModelFiles::read(&args.model)?;
    let mut data = TrainData::from_lareqa_dir(&args.data, &config.train_langs)?;
    data.dev = None;
    let out = std::env::temp_dir().join(format!("mlr-bench-train-{}", std::process::id()));
    let mut trainer = Trainer::<B>::new(config, files, data, &out, device)?;
    let mut times = Vec::new();
    let mut losses = Vec::new();
    for step in 0..=args.steps {
        let t = Instant::now();
        let log = trainer.train_step()?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!("  step {}: {secs:.2} s, loss {:.4} ({})", step + 1, log.loss, log.batch);
        if step > 0 {
            times.push(secs);
        }
        losses.push(log.loss);
    }
    std::fs::remove_dir_all(&out).ok();
    Ok((times, losses))
}

/// Runs the training benchmark and writes its report.
pub fn run(args: &TrainArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let mut rows = Vec::new();
    for backend in &args.backends {
        eprintln!("== mlr train on {backend}");
        let (times, losses, name) = match backend.as_str() {
            "cpu" => {
                let (t, l) = time_steps::<Autodiff<NdArray<f32>>>(args, &Default::default())?;
                (t, l, "cpu (burn ndarray, simd + threads)".to_string())
            }
            "wgpu" => {
                let (t, l) = time_steps::<Autodiff<Wgpu>>(args, &WgpuDevice::default())?;
                (t, l, format!("wgpu ({})", crate::engines::adapter_name()))
            }
            other => bail!("unknown backend {other:?} (cpu, wgpu)"),
        };
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        rows.push(json!({
            "engine": "mlr-train", "backend": name, "batch": args.batch_size,
            "max_query_tokens": args.max_query_tokens, "max_passage_tokens": args.max_passage_tokens,
            "step_s": mean, "pairs_per_s": args.batch_size as f64 / mean, "timed_steps": times.len(),
            "step_times_s": times, "losses": losses,
        }));
    }
    let machine = crate::report::machine();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let value = json!({"machine": machine, "command": command, "rows": rows,
        "note": "mlr train defaults with the hybrid sampler (alpha 0.5): AdamW, in-batch negatives, word embeddings frozen; one untimed warm-up step; kernels: the autodiff backend runs the plain-burn references"});
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&value)? + "\n").with_context(|| format!("writing {}", args.out.display()))?;
    let mut md = format!("# Training step rate of mlr\n\nMachine: {machine}.\n\nCommand: `{command}`\n\n| backend | batch | tokens (q/p) | s/step | pairs/s |\n|---|---:|---|---:|---:|\n");
    for r in &rows {
        md += &format!(
            "| {} | {} | {}/{} | {:.2} | {:.2} |\n",
            r["backend"].as_str().unwrap_or(""),
            r["batch"],
            r["max_query_tokens"],
            r["max_passage_tokens"],
            r["step_s"].as_f64().unwrap_or(0.0),
            r["pairs_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    std::fs::write(args.out.with_extension("md"), md)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
