//! Timing an engine: one [`Row`] per (batch, seq) shape, and the [`Vectors`] the agreement check
//! compares across engines.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::engines::Engine;
use crate::inputs::SeqInputs;

/// Pooled, normalised vectors of the first rows of every input, by sequence length (for the
/// agreement check between engines).
pub type Vectors = Vec<(usize, Vec<f32>)>;

/// One measured shape of one engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Engine name (`mlr-cpu`, `candle-cpu`, `onnxruntime-cpu`, …).
    pub engine: String,
    /// Backend and device (the adapter, for GPU engines).
    pub backend: String,
    /// Texts per call.
    pub batch: usize,
    /// Tokens per text.
    pub seq: usize,
    /// batch × seq / median latency.
    pub tokens_per_s: f64,
    /// Median latency of one call, ms.
    pub latency_ms: f64,
    /// Timed runs.
    pub runs: usize,
    /// Fastest run, ms.
    pub min_ms: f64,
    /// Share of the machine's CPU (0–1) that other processes used while this row was timed
    /// (`quiet::Meter`); absent where it was not measured (the browser rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu: Option<f64>,
}

impl Row {
    /// A row from run times in seconds.
    pub fn new(engine: &str, backend: &str, batch: usize, seq: usize, times: &mut [f64]) -> Self {
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
        Row {
            engine: engine.into(),
            backend: backend.into(),
            batch,
            seq,
            tokens_per_s: (batch * seq) as f64 / median,
            latency_ms: median * 1e3,
            runs: n,
            min_ms: times[0] * 1e3,
            other_cpu: None,
        }
    }
}

/// Times `engine` on every (batch, seq) shape; returns the rows and the vectors of the first
/// `min(batches)` texts of each sequence length.
pub fn time_all(
    engine: &dyn Engine,
    inputs: &[SeqInputs],
    batches: &[usize],
    min_time: f64,
    min_runs: usize,
    max_tokens: usize,
) -> Result<(Vec<Row>, Vectors)> {
    let mut rows = Vec::new();
    let mut vectors = Vec::new();
    for input in inputs {
        for &batch in batches {
            if batch * input.seq > max_tokens {
                eprintln!("  batch {batch:>3} seq {:>3}: skipped (over {max_tokens} tokens per call)", input.seq);
                continue;
            }
            let ids = &input.ids[..batch];
            let out = engine.run(ids).with_context(|| format!("{} batch {batch} seq {}", engine.name(), input.seq))?; // warm-up
            if batch == *batches.iter().min().expect("non-empty") {
                vectors.push((input.seq, out));
            }
            let mut times = Vec::new();
            let meter = crate::quiet::Meter::start();
            let start = Instant::now();
            while times.len() < min_runs.max(1) || start.elapsed().as_secs_f64() < min_time {
                let t = Instant::now();
                engine.run(ids)?;
                times.push(t.elapsed().as_secs_f64());
            }
            let mut row = Row::new(engine.name(), &engine.backend(), batch, input.seq, &mut times);
            row.other_cpu = meter.share();
            let other = row.other_cpu.map(|x| format!(", other processes {:.0}% CPU", x * 100.0)).unwrap_or_default();
            eprintln!(
                "  batch {batch:>3} seq {:>3}: {:>9.1} tokens/s, {:>9.2} ms ({} runs{other})",
                input.seq, row.tokens_per_s, row.latency_ms, row.runs
            );
            rows.push(row);
        }
    }
    Ok((rows, vectors))
}
