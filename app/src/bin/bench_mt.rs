//! The threaded half of the browser encode benchmark (`scripts/bench_browser/mlr-mt.html`):
//! `mlr_app::bench` on the wasm CPU on every core (`mlr_app::threads`), built with shared memory.
//! It runs in a worker, because rayon's threads wait by blocking, which a page may not: the page
//! starts it with its own query string (the options) and shows what it posts, `["progress", line]`
//! and, at the end, `["done", json]` or `["error", message]`.
use mlr_app::bench::{run, Options};
use wasm_bindgen::{JsCast, JsValue};

fn post(kind: &str, text: &str) {
    web_sys::console::log_1(&JsValue::from_str(text));
    let message = js_sys::Array::of2(&JsValue::from_str(kind), &JsValue::from_str(text));
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message(&message);
}

fn main() {
    std::panic::set_hook(Box::new(|info| post("error", &format!("panicked: {info}"))));
    wasm_bindgen_futures::spawn_local(async {
        let location = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("location")).ok();
        let query = location
            .and_then(|l| js_sys::Reflect::get(&l, &JsValue::from_str("search")).ok())
            .and_then(|s| s.as_string())
            .unwrap_or_default();
        // The helpers load this bin's glue, beside the worker's bootstrap script.
        let threads = mlr_app::threads::start("bench-mt.js").await;
        let outcome = match (Options::from_query(&query), threads.note) {
            (_, Some(note)) => Err(note),
            (Ok(options), None) => run(&options, |line| post("progress", line)).await,
            (Err(e), None) => Err(e),
        };
        match outcome.and_then(|out| serde_json::to_string(&out).map_err(|e| e.to_string())) {
            Ok(json) => post("done", &json),
            Err(e) => post("error", &e),
        }
    });
}

/// A thread of the rayon pool: the helper workers of `mlr_app::threads` call this.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn mlr_rayon_helper(queue: u32) {
    mlr_app::threads::run_helper(queue);
}
