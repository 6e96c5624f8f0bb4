//! The browser half of `mlr-bench encode`: mlr's encoder in wasm, on WebGPU (burn's wgpu backend
//! with the mlr kernels) or on the wasm CPU (burn's ndarray backend), timed on the token ids of
//! the native run (`target/bench-inputs.json`), in the same way: one untimed warm-up per shape,
//! then runs until `min_time` seconds have passed (at least `min_runs`), median latency. Every
//! run uploads the ids and reads back the pooled, normalised vectors.
//!
//! `bin/bench.rs` runs it on page load with the options of the page's query string
//! (`scripts/bench_browser/mlr.html?backend=webgpu&model=…&inputs=…`) and writes the outcome, in the format of
//! `scripts/bench_peers.py` (`{"rows": …, "vectors": …}`), into the page for the driver
//! (`scripts/bench_browser.py`) to read.

use std::collections::BTreeMap;

#[cfg(feature = "webgpu")]
use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::NdArray;
#[cfg(feature = "webgpu")]
use burn::backend::Wgpu;
use burn::tensor::{Int, Tensor, TensorData};
use mlr_model::{BertConfig, BertModel, Kernels};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::fetch::fetch_at_most;

/// The most the page reads of one file: e5-small's f32 weights are 470 MB, and wasm32 has 4 GiB.
const MAX_FILE_BYTES: u64 = 2 << 30;
#[cfg(feature = "webgpu")]
use crate::gpu::{probe_webgpu, GpuProbe};

/// Where the encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn's wgpu backend on the browser's WebGPU adapter, with the mlr kernels.
    WebGpu,
    /// burn's ndarray backend in wasm (one thread; every core in the threaded build).
    Cpu,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the encoder runs.
    pub backend: Backend,
    /// URL of a Hugging Face model directory (config.json, model.safetensors), with a trailing `/`.
    pub model: String,
    /// URL of the inputs `mlr-bench encode` wrote.
    pub inputs: String,
    /// Batch sizes.
    pub batches: Vec<usize>,
    /// Keep timing a shape until this many seconds have passed.
    pub min_time: f64,
    /// At least this many timed runs per shape.
    pub min_runs: usize,
    /// Largest batch × seq to run (0 = no limit); larger shapes are skipped.
    pub max_tokens: usize,
}

impl Options {
    /// Reads the options from a query string such as `?backend=cpu&model=/model/&inputs=/inputs.json`
    /// (`batches`, `min_time`, `min_runs` and `max_tokens` are optional).
    pub fn from_query(query: &str) -> Result<Self, String> {
        let params: BTreeMap<String, String> = query
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let v =
                    js_sys::decode_uri_component(v).ok().and_then(|s| s.as_string()).unwrap_or_else(|| v.to_string());
                (k.to_string(), v)
            })
            .collect();
        let need = |k: &str| params.get(k).cloned().ok_or_else(|| format!("the page needs ?{k}=… in its address"));
        let number = |k: &str, default: f64| -> Result<f64, String> {
            params.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{k}={v} is not a number")))
        };
        let backend = match need("backend")?.as_str() {
            "webgpu" => Backend::WebGpu,
            "cpu" => Backend::Cpu,
            other => return Err(format!("backend={other}: give webgpu or cpu")),
        };
        let mut model = need("model")?;
        if !model.ends_with('/') {
            model.push('/');
        }
        let batches = match params.get("batches") {
            None => vec![1, 8, 64],
            Some(list) => list
                .split(',')
                .map(|b| {
                    b.parse::<usize>()
                        .ok()
                        .filter(|&b| b > 0)
                        .ok_or_else(|| format!("batches: {b:?} is not a positive number"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            backend,
            model,
            inputs: need("inputs")?,
            batches,
            min_time: number("min_time", 2.0)?,
            min_runs: number("min_runs", 2.0)? as usize,
            max_tokens: number("max_tokens", 0.0)? as usize,
        })
    }
}

/// One sequence length of the inputs: `ids[i]` has exactly `seq` ids.
#[derive(Deserialize)]
struct SeqInputs {
    seq: usize,
    ids: Vec<Vec<u32>>,
}

/// One timed shape, as `mlr-bench` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `mlr-wasm-webgpu` or `mlr-wasm-cpu`.
    pub engine: String,
    /// Backend and adapter.
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
}

/// The outcome, in the format of the Python peers: rows, and per engine the vectors of the first
/// `min(batches)` texts of every sequence length (for the agreement check against mlr native).
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// Every timed shape.
    pub rows: Vec<Row>,
    /// Engine → [(seq, row-major vectors)].
    pub vectors: BTreeMap<String, Vec<(usize, Vec<f32>)>>,
    /// Shapes not run (over `max_tokens`), as "batch×seq".
    pub skipped: Vec<String>,
}

fn now_ms() -> f64 {
    let performance =
        js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).unwrap_or(JsValue::UNDEFINED);
    let now = js_sys::Reflect::get(&performance, &JsValue::from_str("now"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match now.and_then(|f| f.call0(&performance).ok()).and_then(|v| v.as_f64()) {
        Some(t) => t,
        None => js_sys::Date::now(),
    }
}

/// Runs the benchmark; `progress` hears one line per shape.
pub async fn run(options: &Options, mut progress: impl FnMut(&str)) -> Result<Output, String> {
    let config_json = fetch_at_most(&format!("{}config.json", options.model), MAX_FILE_BYTES).await?;
    let config =
        BertConfig::from_json(&String::from_utf8_lossy(&config_json)).map_err(|e| format!("config.json: {e}"))?;
    let inputs_json = fetch_at_most(&options.inputs, MAX_FILE_BYTES).await?;
    let inputs: Vec<SeqInputs> =
        serde_json::from_slice(&inputs_json).map_err(|e| format!("{}: {e}", options.inputs))?;
    drop(inputs_json);
    progress("fetching model.safetensors");
    let safetensors = fetch_at_most(&format!("{}model.safetensors", options.model), MAX_FILE_BYTES).await?;
    match options.backend {
        #[cfg(not(feature = "webgpu"))]
        Backend::WebGpu => Err("this build has no WebGPU (the threaded CPU build): use backend=cpu".into()),
        #[cfg(feature = "webgpu")]
        Backend::WebGpu => {
            let adapter = match probe_webgpu().await {
                GpuProbe::NoApi | GpuProbe::NoAdapter => return Err("this browser gives no WebGPU adapter".into()),
                GpuProbe::Software(name) => format!("{name}, software"),
                GpuProbe::Hardware(name) => name,
            };
            mlr_kernels::tune_for_adapter(&adapter);
            let device = WgpuDevice::default();
            init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
            let backend = format!("WebGPU ({adapter}; burn wgpu + mlr WGSL kernels)");
            measure::<Wgpu>("mlr-wasm-webgpu", &backend, &config, safetensors, &device, &inputs, options, &mut progress)
                .await
        }
        Backend::Cpu => {
            let simd = if cfg!(target_feature = "simd128") { "wasm SIMD" } else { "no wasm SIMD" };
            // The threaded build (`bin/bench_mt.rs`) runs on the pool `threads::start` made.
            #[cfg(target_feature = "atomics")]
            let threads = rayon::current_num_threads();
            #[cfg(not(target_feature = "atomics"))]
            let threads = 1;
            let (engine, plural) = if threads > 1 { ("mlr-wasm-cpu-threads", "s") } else { ("mlr-wasm-cpu", "") };
            let backend = format!("wasm CPU (burn ndarray + mlr CPU kernels, {simd}, {threads} thread{plural})");
            measure::<NdArray<f32>>(
                engine,
                &backend,
                &config,
                safetensors,
                &Default::default(),
                &inputs,
                options,
                &mut progress,
            )
            .await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure<B: Kernels>(
    engine: &str,
    backend: &str,
    config: &BertConfig,
    safetensors: Vec<u8>,
    device: &B::Device,
    inputs: &[SeqInputs],
    options: &Options,
    progress: &mut impl FnMut(&str),
) -> Result<Output, String> {
    let model =
        mlr_weights::load_bert::<B>(config, &safetensors, device).map_err(|e| format!("model.safetensors: {e}"))?;
    drop(safetensors);
    let first = *options.batches.iter().min().ok_or("no batch sizes")?;
    let mut out = Output { rows: Vec::new(), vectors: BTreeMap::new(), skipped: Vec::new() };
    for input in inputs {
        for &batch in &options.batches {
            let seq = input.seq;
            if batch > input.ids.len() {
                return Err(format!("batch {batch}: the inputs hold only {} texts of {seq} tokens", input.ids.len()));
            }
            if options.max_tokens > 0 && batch * seq > options.max_tokens {
                out.skipped.push(format!("{batch}×{seq}"));
                continue;
            }
            let ids = &input.ids[..batch];
            // Warm-up: pipelines compiled, buffers allocated.
            let vectors = encode(&model, ids, device).await?;
            if batch == first {
                out.vectors.entry(engine.to_string()).or_default().push((seq, vectors));
            }
            let mut times = Vec::new();
            let start = now_ms();
            while times.len() < options.min_runs.max(1) || now_ms() - start < options.min_time * 1000.0 {
                let t = now_ms();
                encode(&model, ids, device).await?;
                times.push(now_ms() - t);
            }
            times.sort_by(f64::total_cmp);
            let n = times.len();
            let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
            let row = Row {
                engine: engine.to_string(),
                backend: backend.to_string(),
                batch,
                seq,
                tokens_per_s: (batch * seq) as f64 / (median / 1000.0),
                latency_ms: median,
                runs: n,
                min_ms: times[0],
            };
            progress(&format!(
                "{engine} batch {batch} seq {seq}: {:.1} tokens/s, {median:.1} ms ({} runs)",
                row.tokens_per_s, row.runs
            ));
            out.rows.push(row);
        }
    }
    Ok(out)
}

/// `[rows][seq]` ids → row-major `[rows, hidden]` unit vectors: the encoder, then masked mean
/// pooling and L2 normalisation (fused on WebGPU), read back.
async fn encode<B: Kernels>(model: &BertModel<B>, ids: &[Vec<u32>], device: &B::Device) -> Result<Vec<f32>, String> {
    let (rows, seq) = (ids.len(), ids[0].len());
    let flat: Vec<i32> = ids.iter().flatten().map(|&i| i as i32).collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [rows, seq]), device);
    let mask = Tensor::<B, 2>::ones([rows, seq], device);
    let hidden = model.forward(ids, mask.clone());
    let vectors = mlr_kernels::mean_pool(hidden, mask, true, model.kernels);
    let data = vectors.into_data_async().await.map_err(|e| format!("reading the vectors back: {e:?}"))?;
    data.convert::<f32>().into_vec::<f32>().map_err(|e| format!("reading the vectors back: {e:?}"))
}
