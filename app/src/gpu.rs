//! What WebGPU this browser offers, asked before burn touches it (burn's wgpu setup aborts when
//! there is no adapter, and a software adapter is far slower than the wasm CPU backend).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The outcome of asking `navigator.gpu` for an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuProbe {
    /// `navigator.gpu` does not exist (browser without WebGPU, or not a secure context).
    NoApi,
    /// `requestAdapter()` returned null.
    NoAdapter,
    /// A fallback adapter (software rasteriser such as SwiftShader): correct but slow.
    Software(String),
    /// A hardware adapter.
    Hardware(String),
}

impl GpuProbe {
    /// The label the page shows when the CPU backend is used because of this probe.
    pub fn cpu_reason(&self) -> String {
        match self {
            GpuProbe::NoApi | GpuProbe::NoAdapter => "CPU: no WebGPU".into(),
            GpuProbe::Software(name) => format!("CPU: only a software WebGPU adapter ({name})"),
            GpuProbe::Hardware(name) => format!("CPU (WebGPU adapter {name} not used)"),
        }
    }
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn text(target: &JsValue, key: &str) -> String {
    get(target, key).as_string().unwrap_or_default()
}

/// Asks `navigator.gpu.requestAdapter()` (works in a window and in a worker).
pub async fn probe_webgpu() -> GpuProbe {
    let navigator = get(&js_sys::global(), "navigator");
    let gpu = get(&navigator, "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return GpuProbe::NoApi;
    }
    let Ok(request) = get(&gpu, "requestAdapter").dyn_into::<Function>() else {
        return GpuProbe::NoApi;
    };
    let adapter = match request.call0(&gpu).map(|p| p.dyn_into::<Promise>()) {
        Ok(Ok(promise)) => JsFuture::from(promise).await.unwrap_or(JsValue::NULL),
        _ => JsValue::NULL,
    };
    if adapter.is_null() || adapter.is_undefined() {
        return GpuProbe::NoAdapter;
    }
    let info = get(&adapter, "info");
    let name = [text(&info, "vendor"), text(&info, "architecture"), text(&info, "device"), text(&info, "description")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() { "unnamed adapter".to_string() } else { name };
    // `isFallbackAdapter` moved from the adapter to its info; accept either.
    let fallback = get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool());
    if fallback.unwrap_or(false) || name.to_lowercase().contains("swiftshader") {
        GpuProbe::Software(name)
    } else {
        GpuProbe::Hardware(name)
    }
}
