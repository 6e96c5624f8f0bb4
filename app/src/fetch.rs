//! Fetching files in the worker: same-origin, streamed with progress, checked against the
//! manifest's size and sha256, and kept in the browser's Cache API so a reload does not download
//! them again. A cached copy that fails the check is deleted and fetched again.

use js_sys::{Reflect, Uint8Array};
use mlr_demo::FileEntry;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, ReadableStreamDefaultReader, Response};

/// Name of the Cache API bucket for the demo's files.
pub const CACHE_NAME: &str = "mlr-demo-v1";

/// A fetched, verified file.
#[derive(Debug)]
pub struct Fetched {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Whether they came from the Cache API.
    pub cached: bool,
}

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

async fn fetch_response(url: &str, no_cache: bool) -> Result<Response, String> {
    let global = js_sys::global();
    let fetch: js_sys::Function = Reflect::get(&global, &JsValue::from_str("fetch"))
        .map_err(|e| js_err("fetch", e))?
        .dyn_into()
        .map_err(|_| "fetch is not available".to_string())?;
    // `cache: "no-cache"` revalidates with the server instead of trusting the HTTP cache.
    let init = js_sys::Object::new();
    if no_cache {
        Reflect::set(&init, &JsValue::from_str("cache"), &JsValue::from_str("no-cache"))
            .map_err(|e| js_err("fetch", e))?;
    }
    let promise: js_sys::Promise = fetch
        .call2(&global, &JsValue::from_str(url), &init)
        .map_err(|e| js_err(url, e))?
        .dyn_into()
        .map_err(|_| "fetch did not return a promise".to_string())?;
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| js_err(&format!("{url} (network error)"), e))?
        .dyn_into()
        .map_err(|_| "not a Response".to_string())?;
    if !response.ok() {
        let hint =
            if response.status() == 404 { " (missing file: was the demo built with `mlr demo build`?)" } else { "" };
        return Err(format!("{url}: HTTP {} {}{hint}", response.status(), response.status_text()));
    }
    Ok(response)
}

/// The largest `manifest.json` the page reads (a real one is a few kB).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Reads a response body of at most `limit` bytes (the manifest's size for a listed file): a
/// server sending more is refused as soon as it does, before the excess is held in memory.
/// `reserve` allocates `limit` bytes up front (the size is known). Calls `progress(loaded)` as
/// chunks arrive.
async fn read_body(
    url: &str,
    response: &Response,
    limit: u64,
    reserve: bool,
    mut progress: impl AsyncFnMut(u64),
) -> Result<Vec<u8>, String> {
    // On wasm32 a usize is 32 bits: a size from the manifest may not fit.
    let capacity = usize::try_from(limit).map_err(|_| format!("{url}: {limit} bytes do not fit in wasm32 memory"))?;
    let body = response.body().ok_or_else(|| format!("{url}: empty body"))?;
    let reader: ReadableStreamDefaultReader =
        body.get_reader().dyn_into().map_err(|_| format!("{url}: body is not readable"))?;
    let mut bytes = Vec::new();
    if reserve {
        bytes.try_reserve_exact(capacity).map_err(|_| format!("{url}: out of memory for {} MB", capacity >> 20))?;
    }
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| js_err(url, e))?;
        if Reflect::get(&chunk, &JsValue::from_str("done")).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|e| js_err(url, e))?;
        let array: Uint8Array = value.dyn_into().map_err(|_| format!("{url}: chunk is not bytes"))?;
        let start = bytes.len();
        let len = array.length() as usize;
        if start.checked_add(len).is_none_or(|end| end > capacity) {
            let _ = reader.cancel();
            return Err(format!("{url}: the server sends more than the {limit} bytes expected"));
        }
        bytes.try_reserve(len).map_err(|_| format!("{url}: out of memory after {} MB", start >> 20))?;
        bytes.resize(start + len, 0);
        array.copy_to(&mut bytes[start..]);
        progress(bytes.len() as u64).await;
    }
    Ok(bytes)
}

/// Fetches the whole of `url`, revalidated with the server (the manifest: small, and must be fresh).
pub async fn fetch_plain(url: &str) -> Result<Vec<u8>, String> {
    fetch_at_most(url, MAX_MANIFEST_BYTES).await
}

/// Fetches the whole of `url`, revalidated with the server, refusing more than `limit` bytes (the
/// benchmark page's model and inputs, which no manifest describes).
pub async fn fetch_at_most(url: &str, limit: u64) -> Result<Vec<u8>, String> {
    let response = fetch_response(url, true).await?;
    read_body(url, &response, limit, false, async |_| {}).await
}

/// Fetches `entry` under `base` (from the Cache API when a verified copy is there), calling
/// `progress(loaded, total, cached)` as bytes arrive, and checks it against the manifest.
pub async fn fetch_verified(
    base: &str,
    entry: &FileEntry,
    mut progress: impl AsyncFnMut(u64, u64, bool),
) -> Result<Fetched, String> {
    let url = cache_url(base, entry);
    let total = entry.bytes;
    let cache = open_cache().await;
    if let Some(c) = &cache {
        let hit = JsFuture::from(c.match_with_str(&url)).await.ok().and_then(|r| r.dyn_into::<Response>().ok());
        if let Some(response) = hit {
            if let Ok(bytes) = read_body(&url, &response, total, true, async |n| progress(n, total, true).await).await {
                if entry.verify(&bytes).is_ok() {
                    return Ok(Fetched { bytes, cached: true });
                }
            }
            // A damaged or stale copy: drop it and download again.
            let _ = JsFuture::from(c.delete_with_str(&url)).await;
        }
    }
    let response = fetch_response(&url, false).await?;
    let bytes = read_body(&url, &response, total, true, async |n| progress(n, total, false).await).await?;
    entry
        .verify(&bytes)
        .map_err(|e| format!("{e} (the download is damaged or the demo was rebuilt: reload the page)"))?;
    if let Some(c) = &cache {
        // Store the verified bytes; a failed put (quota) only costs a download next time.
        let array = Uint8Array::from(bytes.as_slice());
        if let Ok(copy) = Response::new_with_opt_buffer_source(Some(&array)) {
            let _ = JsFuture::from(c.put_with_str(&url, &copy)).await;
        }
    }
    Ok(Fetched { bytes, cached: false })
}

/// The URL of `entry` under `base`: the hash in it makes a changed file a different cache entry.
pub fn cache_url(base: &str, entry: &FileEntry) -> String {
    format!("{base}/{}?sha256={}", entry.path, entry.sha256)
}

/// Deletes every cached file whose URL is not in `keep` (copies from earlier builds of the demo).
/// Returns how many were deleted; failures are ignored (the cache is only an optimisation).
pub async fn prune_cache(keep: &[String]) -> usize {
    let Some(cache) = open_cache().await else {
        return 0;
    };
    let Ok(keys) = JsFuture::from(cache.keys()).await else {
        return 0;
    };
    let mut deleted = 0;
    for request in js_sys::Array::from(&keys).iter() {
        let Some(url) = Reflect::get(&request, &JsValue::from_str("url")).ok().and_then(|u| u.as_string()) else {
            continue;
        };
        if !keep.contains(&url) && JsFuture::from(cache.delete_with_str(&url)).await.is_ok() {
            deleted += 1;
        }
    }
    deleted
}
