//! The encoder worker: owns the tokenizer and the model, answers one request at a time.
//!
//! Backend choice: burn's wgpu backend on WebGPU when the browser has a hardware adapter (or a
//! software one and the user asked for it), else burn's ndarray backend on the wasm CPU. The
//! `Ready` event says which, with the adapter's name or the reason for the CPU.

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::{NdArray, Wgpu};
use futures::{SinkExt, StreamExt};
use mlr_embed::{cosine, Embedder, Role};
use yew_agent::reactor::{reactor, ReactorScope};

use crate::fetch::fetch_bytes;
use crate::gpu::{probe_webgpu, GpuProbe};
use crate::protocol::{Event, Request};

/// The model on the backend that was chosen.
pub enum Engine {
    /// wasm CPU (ndarray).
    Cpu(Embedder<NdArray<f32>>),
    /// WebGPU.
    Gpu(Embedder<Wgpu>),
}

impl Engine {
    /// Embeds texts as queries.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let result = match self {
            Engine::Cpu(e) => e.embed_async(texts, Role::Query).await,
            Engine::Gpu(e) => e.embed_async(texts, Role::Query).await,
        };
        result.map_err(|e| e.to_string())
    }
}

/// Which backend to use given the probe, and the label to show.
pub async fn choose_backend(allow_software_gpu: bool) -> (Option<WgpuDevice>, String) {
    let probe = probe_webgpu().await;
    match &probe {
        GpuProbe::Hardware(name) => (Some(WgpuDevice::default()), format!("WebGPU: {name}")),
        GpuProbe::Software(name) if allow_software_gpu => {
            (Some(WgpuDevice::default()), format!("WebGPU (software adapter): {name}"))
        }
        _ => (None, probe.cpu_reason()),
    }
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

async fn load(scope: &mut ReactorScope<Request, Event>, base: &str, allow_software_gpu: bool) -> Result<(Engine, String), String> {
    let base = base.trim_end_matches('/');
    let mut files = Vec::new();
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        let mut last = 0u64;
        let bytes = fetch_bytes(&format!("{base}/{name}"), async |loaded, total| {
            // One event per 4 MB keeps the page responsive without flooding it.
            if loaded - last >= 4 << 20 || (total != 0 && loaded == total) {
                last = loaded;
                let _ = scope.send(Event::Progress { file: name.into(), loaded, total }).await;
            }
        })
        .await?;
        files.push(bytes);
    }
    let _ = scope.send(Event::Status("probing WebGPU".into())).await;
    let (device, label) = choose_backend(allow_software_gpu).await;
    let _ = scope.send(Event::Status(format!("building the encoder ({label})"))).await;
    let engine = match device {
        Some(device) => {
            init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
            Engine::Gpu(Embedder::from_bytes(&files[0], &files[1], &files[2], &device).map_err(|e| e.to_string())?)
        }
        None => Engine::Cpu(Embedder::from_bytes(&files[0], &files[1], &files[2], &Default::default()).map_err(|e| e.to_string())?),
    };
    Ok((engine, label))
}

/// The worker's event loop.
#[reactor(EncoderReactor)]
pub async fn encoder_reactor(mut scope: ReactorScope<Request, Event>) {
    let mut engine: Option<Engine> = None;
    while let Some(request) = scope.next().await {
        let reply = match request {
            Request::Load { base_url, allow_software_gpu } => {
                engine = None; // free the previous model before loading another
                let start = now_ms();
                match load(&mut scope, &base_url, allow_software_gpu).await {
                    Ok((e, backend)) => {
                        engine = Some(e);
                        Event::Ready { backend, load_ms: now_ms() - start }
                    }
                    Err(message) => Event::Error(format!("loading the model failed: {message}")),
                }
            }
            Request::Similarity { id, a, b } => match &engine {
                None => Event::Error("the model is not loaded yet".into()),
                Some(engine) => {
                    let start = now_ms();
                    match engine.embed(&[a.as_str(), b.as_str()]).await {
                        Ok(v) => Event::Similarity { id, value: cosine(&v[0], &v[1]), ms: now_ms() - start },
                        Err(message) => Event::Error(format!("embedding failed: {message}")),
                    }
                }
            },
        };
        if scope.send(reply).await.is_err() {
            break;
        }
    }
}
