//! Fetching model files in the worker: streamed with progress, kept in the browser's Cache API so
//! a reload does not download them again.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, ReadableStreamDefaultReader, Response};

/// Name of the Cache API bucket for model files.
pub const CACHE_NAME: &str = "mlr-models-v1";

fn js_err(context: &str, e: JsValue) -> String {
    let detail = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    format!("{context}: {detail}")
}

async fn open_cache() -> Option<Cache> {
    let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).ok()?;
    let caches: web_sys::CacheStorage = caches.dyn_into().ok()?;
    let cache = JsFuture::from(caches.open(CACHE_NAME)).await.ok()?;
    cache.dyn_into().ok()
}

async fn fetch_response(url: &str) -> Result<Response, String> {
    let global = js_sys::global();
    let fetch: js_sys::Function = Reflect::get(&global, &JsValue::from_str("fetch"))
        .map_err(|e| js_err("fetch", e))?
        .dyn_into()
        .map_err(|_| "fetch is not available".to_string())?;
    let promise: js_sys::Promise = fetch
        .call1(&global, &JsValue::from_str(url))
        .map_err(|e| js_err(url, e))?
        .dyn_into()
        .map_err(|_| "fetch did not return a promise".to_string())?;
    let response: Response = JsFuture::from(promise).await.map_err(|e| js_err(url, e))?.dyn_into().map_err(|_| "not a Response".to_string())?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {} {}", response.status(), response.status_text()));
    }
    Ok(response)
}

/// Fetches `url` (from the cache when present), calling `progress(loaded, total)` as bytes arrive.
pub async fn fetch_bytes(url: &str, mut progress: impl AsyncFnMut(u64, u64)) -> Result<Vec<u8>, String> {
    let cache = open_cache().await;
    let cached = match &cache {
        Some(c) => JsFuture::from(c.match_with_str(url)).await.ok().and_then(|r| r.dyn_into::<Response>().ok()),
        None => None,
    };
    let response = match cached {
        Some(r) => r,
        None => {
            let r = fetch_response(url).await?;
            if let Some(c) = &cache {
                // Store a copy while we read the original; a failed put only costs a re-download.
                // Not awaited, so both branches of the body are read at the same pace.
                if let Ok(copy) = r.clone() {
                    let put = JsFuture::from(c.put_with_str(url, &copy));
                    wasm_bindgen_futures::spawn_local(async move {
                        let _ = put.await;
                    });
                }
            }
            r
        }
    };
    let total = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let body = response.body().ok_or_else(|| format!("{url}: empty body"))?;
    let reader: ReadableStreamDefaultReader =
        body.get_reader().dyn_into().map_err(|_| format!("{url}: body is not readable"))?;
    let mut bytes = Vec::with_capacity(total as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| js_err(url, e))?;
        if Reflect::get(&chunk, &JsValue::from_str("done")).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|e| js_err(url, e))?;
        let array: Uint8Array = value.dyn_into().map_err(|_| format!("{url}: chunk is not bytes"))?;
        let start = bytes.len();
        bytes.resize(start + array.length() as usize, 0);
        array.copy_to(&mut bytes[start..]);
        progress(bytes.len() as u64, total).await;
    }
    if total != 0 && bytes.len() as u64 != total {
        return Err(format!("{url}: received {} of {total} bytes", bytes.len()));
    }
    Ok(bytes)
}
