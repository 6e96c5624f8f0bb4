//! `mlr-bench train`: the training step rate and peak memory of mlr's trainer against
//! sentence-transformers on PyTorch, side by side in one run.
//!
//! Engines: `mlr-cpu` (the CPU kernels and their backward passes), `mlr-cpu-plain` (`--no-kernels`:
//! burn's autodiff of the plain-burn references), `mlr-wgpu` (the references on wgpu), and
//! `sentence-transformers` (`scripts/train_peer.py`: MultipleNegativesRankingLoss at scale 20 =
//! τ 0.05, AdamW at the same learning rate and weight decay, word embeddings frozen, dropout 0,
//! gradient clipping at 1, 2 threads). Every engine trains on the same batches (the hybrid sampler's
//! first batches, written to a file), with the same truncation and E5 prefixes.
//!
//! Each engine runs in a process of its own (mlr's as `mlr-bench train-child`), so that its peak
//! resident memory (VmHWM) is its own. One untimed warm-up step, then `--steps` timed ones.
//! The memory rows run `mlr-cpu` with `--mini-batch` (cached InfoNCE) at each `--memory-batches`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::backend::wgpu::WgpuDevice;
use burn::backend::{Autodiff, NdArray, Wgpu};
use mlr_embed::{Embedder, ModelFiles, Role};
use mlr_model::AutodiffKernels;
use mlr_train::{TrainConfig, TrainData, Trainer};
use serde_json::{json, Value};

/// Arguments of `mlr-bench train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Hugging Face model directory.
    #[arg(long, env = "MLR_MODEL_DIR")]
    model: PathBuf,
    /// LAReQA-format directory with `split.json`.
    #[arg(long, default_value = "data/xquad-r")]
    data: PathBuf,
    /// Engines: mlr-cpu, mlr-cpu-plain, mlr-wgpu, sentence-transformers.
    #[arg(long, value_delimiter = ',', default_value = "mlr-cpu,mlr-cpu-plain,mlr-wgpu,sentence-transformers")]
    engines: Vec<String>,
    /// Python with torch + sentence-transformers (`scripts/setup_st.sh` prints it).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Pairs per batch.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Timed steps, after one untimed warm-up step.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Timed steps on wgpu (a step takes ~30 s on lavapipe).
    #[arg(long, default_value_t = 1)]
    wgpu_steps: usize,
    /// Longest query in tokens.
    #[arg(long, default_value_t = 32)]
    max_query_tokens: usize,
    /// Longest passage in tokens.
    #[arg(long, default_value_t = 64)]
    max_passage_tokens: usize,
    /// Batch sizes of the memory rows (mlr-cpu with `--mini-batch`); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "16,64,128,256")]
    memory_batches: Vec<usize>,
    /// Mini-batch of cached InfoNCE in the memory rows.
    #[arg(long, default_value_t = 16)]
    mini_batch: usize,
    /// A recorded run (its `summary.json`, e.g. results/train/history/one-seed-batch16/hybrid-train.json): its first
    /// `--loss-check-steps` steps are run again with and without the kernels and their losses
    /// compared with the recorded ones.
    #[arg(long)]
    loss_check: Option<PathBuf>,
    /// Steps of the loss check.
    #[arg(long, default_value_t = 10)]
    loss_check_steps: usize,
    /// Output JSON (markdown beside it).
    #[arg(long, default_value = "results/bench/train.json")]
    out: PathBuf,
}

/// The first `steps` losses of the recorded run `path`, retrained from its config, with the kernels
/// on and off: the largest relative difference from the recorded losses of each.
fn loss_check(args: &TrainArgs, path: &Path, steps: usize) -> Result<Value> {
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)?;
    let mut config: TrainConfig = serde_json::from_value(recorded["config"].clone()).context("the recorded config")?;
    // Runs from before the shared-answer mask existed trained without it.
    if recorded["config"].get("mask_shared_answers").is_none() {
        config.mask_shared_answers = false;
    }
    let want: Vec<f64> = recorded["run"]["history"]
        .as_array()
        .context("the recorded history")?
        .iter()
        .take(steps)
        .filter_map(|s| s["loss"].as_f64())
        .collect();
    if want.len() < steps {
        bail!("{} records {} steps, fewer than {steps}", path.display(), want.len());
    }
    let files = ModelFiles::read(&args.model)?;
    let mut result = serde_json::Map::new();
    for kernels in [true, false] {
        let mut data = TrainData::from_lareqa_dir(&args.data, &config.train_langs)?;
        data.dev = None;
        let out = std::env::temp_dir().join(format!("mlr-bench-loss-check-{kernels}-{}", std::process::id()));
        let config = TrainConfig { eval_every: 0, checkpoint_every: 0, ..config.clone() };
        let mut trainer =
            Trainer::<Autodiff<NdArray<f32>>>::new(config, files.clone(), data, &out, &Default::default())?
                .with_kernels(kernels);
        let mut got = Vec::new();
        for _ in 0..steps {
            got.push(f64::from(trainer.train_step()?.loss));
        }
        std::fs::remove_dir_all(&out).ok();
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / w.abs()).fold(0.0, f64::max);
        eprintln!("  loss check, kernels {kernels}: max relative difference {worst:.2e} over {steps} steps");
        let key = if kernels { "kernels" } else { "no_kernels" };
        result.insert(key.into(), json!({"losses": got, "max_relative_difference": worst}));
    }
    result.insert("recorded".into(), json!(want));
    result.insert("run".into(), json!(portable(path)));
    Ok(Value::Object(result))
}

/// Arguments of `mlr-bench train-child` (one engine's run, started by `train`).
#[derive(clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    engine: String,
    #[arg(long)]
    batch_size: usize,
    #[arg(long)]
    mini_batch: usize,
    #[arg(long)]
    steps: usize,
    #[arg(long)]
    max_query_tokens: usize,
    #[arg(long)]
    max_passage_tokens: usize,
    /// Where the batches' texts are written (JSON), for the Python peer.
    #[arg(long)]
    batches_out: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
}

fn config(batch_size: usize, mini_batch: usize, steps: usize, q: usize, p: usize) -> TrainConfig {
    TrainConfig {
        sampler: "hybrid".into(),
        alpha: 0.5,
        steps: steps + 1,
        batch_size,
        warmup_steps: 1,
        max_query_tokens: q,
        max_passage_tokens: p,
        eval_every: 0,
        checkpoint_every: 0,
        mini_batch,
        ..TrainConfig::default()
    }
}

/// The peak resident memory of this process in bytes (VmHWM).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

fn child_steps<B: AutodiffKernels>(args: &ChildArgs, kernels: bool, device: &B::Device) -> Result<Value> {
    let config = config(args.batch_size, args.mini_batch, args.steps, args.max_query_tokens, args.max_passage_tokens);
    let files = ModelFiles::read(&args.model)?;
    let mut data = TrainData::from_lareqa_dir(&args.data, &config.train_langs)?;
    data.dev = None;
    let out = std::env::temp_dir().join(format!("mlr-bench-train-{}", std::process::id()));
    let mut trainer = Trainer::<B>::new(config, files.clone(), data, &out, device)?.with_kernels(kernels);
    if let Some(path) = &args.batches_out {
        let batches = trainer.upcoming_batches(args.steps + 1);
        // mlr's vectors of the first batch's texts (the base model), for the peer to compare with.
        let embedder = Embedder::<NdArray<f32>>::from_bytes(
            &files.config_json,
            &files.tokenizer_json,
            &files.safetensors,
            &Default::default(),
        )?;
        let (queries, passages) = &batches[0];
        let check = json!({
            "queries": queries, "passages": passages,
            "query_vectors": embedder.embed_many(queries, Role::Query, 16, |_| {})?,
            "passage_vectors": embedder.embed_many(passages, Role::Passage, 16, |_| {})?,
        });
        let batches: Vec<Value> = batches.into_iter().map(|(q, p)| json!({"queries": q, "passages": p})).collect();
        let value = json!({"batches": batches, "check": check});
        std::fs::write(path, serde_json::to_string(&value)?).with_context(|| format!("writing {}", path.display()))?;
    }
    let (mut times, mut losses) = (Vec::new(), Vec::new());
    for step in 0..=args.steps {
        let t = Instant::now();
        let log = trainer.train_step()?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "  {} b{}: step {}: {secs:.2} s, loss {:.4} ({})",
            args.engine,
            args.batch_size,
            step + 1,
            log.loss,
            log.batch
        );
        if step > 0 {
            times.push(secs);
        }
        losses.push(log.loss);
    }
    std::fs::remove_dir_all(&out).ok();
    Ok(json!({"step_times_s": times, "losses": losses, "peak_rss_bytes": peak_rss()}))
}

/// One engine's run in this process (`mlr-bench train-child`).
pub fn child(args: &ChildArgs) -> Result<()> {
    let value = match args.engine.as_str() {
        "mlr-cpu" => child_steps::<Autodiff<NdArray<f32>>>(args, true, &Default::default())?,
        "mlr-cpu-plain" => child_steps::<Autodiff<NdArray<f32>>>(args, false, &Default::default())?,
        "mlr-wgpu" => child_steps::<Autodiff<Wgpu>>(args, true, &WgpuDevice::default())?,
        other => bail!("unknown engine {other:?}"),
    };
    std::fs::write(&args.out, serde_json::to_string(&value)?)?;
    Ok(())
}

fn backend_name(engine: &str) -> String {
    match engine {
        "mlr-cpu" => "mlr, CPU (burn ndarray + mlr kernels and their backward passes)".into(),
        "mlr-cpu-plain" => "mlr, CPU --no-kernels (burn autodiff of the plain-burn references)".into(),
        "mlr-wgpu" => {
            format!("mlr, wgpu ({}; the references: no WGSL backward passes)", crate::engines::adapter_name())
        }
        "sentence-transformers" => "sentence-transformers on PyTorch, CPU, 2 threads".into(),
        other => other.into(),
    }
}

/// Runs one mlr engine in a child process; returns its report.
fn run_child(
    args: &TrainArgs,
    engine: &str,
    batch: usize,
    mini_batch: usize,
    steps: usize,
    batches_out: Option<&Path>,
) -> Result<Value> {
    let out = std::env::temp_dir().join(format!("mlr-bench-train-{engine}-{batch}-{}.json", std::process::id()));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("train-child").arg("--model").arg(&args.model).arg("--data").arg(&args.data);
    cmd.args([
        "--engine",
        engine,
        "--batch-size",
        &batch.to_string(),
        "--mini-batch",
        &mini_batch.to_string(),
        "--steps",
        &steps.to_string(),
    ]);
    cmd.args([
        "--max-query-tokens",
        &args.max_query_tokens.to_string(),
        "--max-passage-tokens",
        &args.max_passage_tokens.to_string(),
    ]);
    if let Some(path) = batches_out {
        cmd.arg("--batches-out").arg(path);
    }
    cmd.arg("--out").arg(&out);
    let status = cmd.status().with_context(|| format!("starting the {engine} run"))?;
    if !status.success() {
        bail!("the {engine} run (batch {batch}) failed: {status}");
    }
    let value: Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    std::fs::remove_file(&out).ok();
    Ok(value)
}

/// The path as given if relative, else with the home directory written `~` (reports hold no
/// machine-specific paths).
fn portable(path: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.and_then(|h| path.strip_prefix(h).ok().map(Path::to_path_buf)) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

fn row(engine: &str, batch: usize, mini_batch: usize, args: &TrainArgs, run: &Value) -> Value {
    let times: Vec<f64> =
        run["step_times_s"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    json!({
        "engine": engine, "backend": backend_name(engine), "batch": batch, "mini_batch": mini_batch,
        "max_query_tokens": args.max_query_tokens, "max_passage_tokens": args.max_passage_tokens,
        "step_s": mean, "pairs_per_s": batch as f64 / mean, "timed_steps": times.len(),
        "step_times_s": times, "losses": run["losses"], "peak_rss_bytes": run["peak_rss_bytes"],
    })
}

/// Runs the training benchmark and writes its report.
pub fn run(args: &TrainArgs) -> Result<()> {
    if args.steps == 0 || args.wgpu_steps == 0 {
        bail!("--steps and --wgpu-steps must be at least 1");
    }
    let batches = std::env::temp_dir().join(format!("mlr-bench-train-batches-{}.json", std::process::id()));
    let mut rows = Vec::new();
    let mut wrote_batches = false;
    for engine in &args.engines {
        eprintln!("== {engine}, batch {}", args.batch_size);
        let run = match engine.as_str() {
            "mlr-cpu" | "mlr-cpu-plain" | "mlr-wgpu" => {
                let steps = if engine == "mlr-wgpu" { args.wgpu_steps } else { args.steps };
                let out = (!wrote_batches).then_some(batches.as_path());
                wrote_batches = true;
                run_child(args, engine, args.batch_size, 0, steps, out)?
            }
            "sentence-transformers" => {
                let Some(python) = &args.python else {
                    bail!("sentence-transformers needs --python (scripts/setup_st.sh prints it)")
                };
                if !wrote_batches {
                    run_child(args, "mlr-cpu", args.batch_size, 0, 1, Some(&batches))?;
                    wrote_batches = true;
                }
                peer(python, args, &batches)?
            }
            other => bail!("unknown engine {other:?} (mlr-cpu, mlr-cpu-plain, mlr-wgpu, sentence-transformers)"),
        };
        let mut r = row(engine, args.batch_size, 0, args, &run);
        if let Some(obj) = r.as_object_mut() {
            for key in ["embedding_check", "versions"] {
                if let Some(v) = run.get(key) {
                    obj.insert(key.into(), v.clone());
                }
            }
        }
        rows.push(r);
    }
    std::fs::remove_file(&batches).ok();
    let mut memory = Vec::new();
    for &batch in &args.memory_batches {
        eprintln!("== memory: mlr-cpu, batch {batch}, mini-batch {}", args.mini_batch);
        let run = run_child(args, "mlr-cpu", batch, args.mini_batch, 1, None)?;
        memory.push(row("mlr-cpu", batch, args.mini_batch, args, &run));
    }
    let check = match &args.loss_check {
        Some(path) => {
            eprintln!("== loss check against {}", path.display());
            Some(loss_check(args, path, args.loss_check_steps)?)
        }
        None => None,
    };
    write_report(args, &rows, &memory, check.as_ref())
}

/// The Python peer on the same batches.
fn peer(python: &Path, args: &TrainArgs, batches: &Path) -> Result<Value> {
    let out = std::env::temp_dir().join(format!("mlr-bench-train-peer-{}.json", std::process::id()));
    let status = Command::new(python)
        .arg("scripts/train_peer.py")
        .arg("--model")
        .arg(&args.model)
        .arg("--batches")
        .arg(batches)
        .args([
            "--max-query-tokens",
            &args.max_query_tokens.to_string(),
            "--max-passage-tokens",
            &args.max_passage_tokens.to_string(),
        ])
        .arg("--out")
        .arg(&out)
        .env("USE_HUB_KERNELS", "0")
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .context("starting scripts/train_peer.py")?;
    if !status.success() {
        bail!("scripts/train_peer.py failed: {status}");
    }
    let value: Value = serde_json::from_slice(&std::fs::read(&out)?)?;
    std::fs::remove_file(&out).ok();
    Ok(value)
}

fn gb(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |b| format!("{:.2}", b / 1e9))
}

fn write_report(args: &TrainArgs, rows: &[Value], memory: &[Value], check: Option<&Value>) -> Result<()> {
    let machine = crate::report::machine();
    let command = std::env::args().map(|a| portable(Path::new(&a))).collect::<Vec<_>>().join(" ");
    let pairs = |engine: &str| rows.iter().find(|r| r["engine"] == engine).and_then(|r| r["pairs_per_s"].as_f64());
    let ratio = |a: &str, b: &str| pairs(a).zip(pairs(b)).map(|(a, b)| a / b);
    let ratios = json!({
        "mlr_cpu_over_no_kernels": ratio("mlr-cpu", "mlr-cpu-plain"),
        "mlr_cpu_over_sentence_transformers": ratio("mlr-cpu", "sentence-transformers"),
    });
    let value = json!({"machine": machine, "command": command, "rows": rows, "memory": memory, "ratios": ratios, "loss_check": check,
        "note": "mlr train defaults with the hybrid sampler (alpha 0.5): AdamW, in-batch negatives, word embeddings frozen, dropout 0; every engine on the same batches; one untimed warm-up step; peak RSS of the engine's own process"});
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&value)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    let mut md = format!(
        "# Training step rate and memory of mlr\n\nMachine: {machine}.\n\nCommand: `{command}`\n\nOne run, every engine on the same batches (the hybrid sampler's), queries ≤ {} and passages ≤ {} tokens.\n\n| engine | batch | s/step | pairs/s | peak RSS (GB) |\n|---|---:|---:|---:|---:|\n",
        args.max_query_tokens, args.max_passage_tokens
    );
    for r in rows {
        md += &format!(
            "| {} | {} | {:.2} | {:.2} | {} |\n",
            r["backend"].as_str().unwrap_or(""),
            r["batch"],
            r["step_s"].as_f64().unwrap_or(0.0),
            r["pairs_per_s"].as_f64().unwrap_or(0.0),
            gb(&r["peak_rss_bytes"])
        );
    }
    let show = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}×"));
    md += &format!(
        "\nmlr CPU over `--no-kernels`: {}; over sentence-transformers: {}.\n",
        show(ratio("mlr-cpu", "mlr-cpu-plain")),
        show(ratio("mlr-cpu", "sentence-transformers"))
    );
    if let Some(check) = rows.iter().find_map(|r| r.get("embedding_check")).filter(|c| !c.is_null()) {
        md += &format!("\nsentence-transformers' embeddings of the same model against mlr's: {check}.\n");
    }
    if !memory.is_empty() {
        md += &format!("\n## Memory with cached InfoNCE (`--mini-batch {}`), mlr CPU\n\n| batch | s/step | pairs/s | peak RSS (GB) |\n|---:|---:|---:|---:|\n", args.mini_batch);
        for r in memory {
            md += &format!(
                "| {} | {:.2} | {:.2} | {} |\n",
                r["batch"],
                r["step_s"].as_f64().unwrap_or(0.0),
                r["pairs_per_s"].as_f64().unwrap_or(0.0),
                gb(&r["peak_rss_bytes"])
            );
        }
    }
    if let Some(c) = check {
        md += &format!(
            "\n## Losses against a recorded run\n\nThe first {} steps of `{}`, retrained from its config: largest relative difference from the recorded losses {:.1e} with the kernels, {:.1e} with `--no-kernels`.\n",
            args.loss_check_steps,
            c["run"].as_str().unwrap_or(""),
            c["kernels"]["max_relative_difference"].as_f64().unwrap_or(f64::NAN),
            c["no_kernels"]["max_relative_difference"].as_f64().unwrap_or(f64::NAN)
        );
    }
    std::fs::write(args.out.with_extension("md"), md)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
