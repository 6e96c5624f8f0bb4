//! The encoder's CPU threads: rayon's pool on web workers, where the browser allows it.
//!
//! The CPU backend's kernels (`mlr_kernels`) split rows, attention heads and matrix products over
//! rayon's threads. In a browser those threads are web workers sharing the wasm memory, which
//! needs three things; without any of them the encoder runs on one thread and [`Threads::note`]
//! says why:
//! - **a wasm build with shared memory**: `+atomics,+bulk-memory,+mutable-globals`, std rebuilt
//!   with them (`-Zbuild-std`). That is the `worker-mt` bin (scripts/env.sh's `mlr_trunk` builds it
//!   so); it has no WebGPU, because burn-wgpu does not build with shared memory (wgpu's WebGPU
//!   objects are not `Send`). The `worker` bin keeps WebGPU and one CPU thread, and the page picks
//!   one of the two ([`crate::app`]);
//! - **a cross-origin isolated page** (`crossOriginIsolated`: the server sends
//!   `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`,
//!   as Trunk.toml's `[serve] headers` do). A static host that cannot send headers gets one
//!   thread;
//! - **more than one core** (`navigator.hardwareConcurrency`).
//!
//! How ([`start`]): one helper worker per core, each started from a `blob:` script that loads the
//! threaded worker's own wasm-bindgen glue (`/worker-mt.js`) and instantiates the same module on
//! the same memory (wasm-bindgen runs the bin's `main` on the first thread only). Each helper says
//! "ready", then blocks in [`run_helper`] (exported to it as `mlr_rayon_helper` by the bin) until
//! a rayon `ThreadBuilder` arrives on a channel. Once every helper is ready, rayon's global pool is
//! built with a spawn handler that sends one to each. The helpers must be running first: rayon's
//! `build_global` blocks until every thread has started, and a worker still loading its script
//! would not start while its creator blocks. The encoder worker is not one of the pool's threads:
//! it hands each forward pass to the pool and waits (a worker may block; the page never does). If
//! a helper fails to start, the others are stopped and the encoder runs on one thread, saying why.
//!
//! Why not wasm-bindgen-rayon: it supports only wasm-bindgen's `--target web` output loaded as ES
//! modules (module workers, `import.meta.url`), while trunk builds these workers as classic
//! `no-modules` scripts that yew-agent starts from `blob:` URLs. The pool here is the scheme of
//! wasm-bindgen's raytrace-parallel example for that layout, in about a hundred lines.

pub use crate::protocol::Threads;

/// Whether this wasm was built with shared memory (atomics), which threads need.
pub const BUILT_WITH_THREADS: bool = cfg!(target_feature = "atomics");

/// What the browser offers, on the page or in a worker: cores (`navigator.hardwareConcurrency`,
/// at least 1), and whether the page is cross-origin isolated.
pub fn environment() -> (usize, bool) {
    use js_sys::Reflect;
    use wasm_bindgen::JsValue;
    let global = js_sys::global();
    let cores = Reflect::get(&global, &JsValue::from_str("navigator"))
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("hardwareConcurrency")))
        .ok()
        .and_then(|c| c.as_f64())
        .map_or(1, |c| c.max(1.0) as usize);
    let isolated = Reflect::get(&global, &JsValue::from_str("crossOriginIsolated"))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (cores, isolated)
}

/// Starts rayon's pool with one thread per core where the browser allows it (see the module
/// docs); call once, from the worker, before the first CPU forward pass. `glue` is the worker's
/// wasm-bindgen script, which the helpers load: a path from the origin (`/worker-mt.js`, for a
/// worker started from a `blob:` URL) or relative to the worker's own script.
pub async fn start(glue: &str) -> Threads {
    let (cores, isolated) = environment();
    let one = |note: Option<String>| Threads { count: 1, cores, note };
    if cores < 2 {
        return one(None);
    }
    if !isolated {
        return one(Some(
            "one thread: the page is not cross-origin isolated (its server sends no \
             Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy headers), so the browser \
             gives it no shared memory for threads"
                .into(),
        ));
    }
    if !BUILT_WITH_THREADS {
        return one(Some(
            "one thread: this encoder worker is the WebGPU build, without shared memory (reload \
             the page with ?cpu=1 to run the CPU on every core)"
                .into(),
        ));
    }
    match start_pool(glue, cores).await {
        Ok(()) => Threads { count: cores, cores, note: None },
        Err(e) => one(Some(format!("one thread: the thread pool did not start ({e})"))),
    }
}

#[cfg(target_feature = "atomics")]
use pool::start as start_pool;

/// Without shared memory there is no pool (`start` says so before it gets here).
#[cfg(not(target_feature = "atomics"))]
async fn start_pool(_glue: &str, _threads: usize) -> Result<(), String> {
    Err("built without shared memory".into())
}

#[cfg(target_feature = "atomics")]
pub use pool::run_helper;

#[cfg(target_feature = "atomics")]
mod pool {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::mpsc::{channel, Receiver};
    use std::sync::{Arc, Mutex};

    use futures::channel::oneshot;
    use js_sys::Array;
    use rayon::ThreadBuilder;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use web_sys::{Blob, BlobPropertyBag, ErrorEvent, MessageEvent, Url, Worker};

    /// The helpers' queue of rayon threads to run.
    type Queue = Mutex<Receiver<ThreadBuilder>>;

    /// A helper worker's script: loads the glue, instantiates the module on the shared memory,
    /// says "ready", then runs one rayon thread for good.
    const HELPER: &str = "self.onmessage = (event) => {
  self.onmessage = null;
  const [glue, module, memory, queue] = event.data;
  try { importScripts(glue); } catch (e) { postMessage('failed: ' + e); return; }
  wasm_bindgen({ module_or_path: module, memory }).then(() => {
    if (typeof wasm_bindgen.mlr_rayon_helper !== 'function') {
      postMessage('failed: ' + glue + ' exports no mlr_rayon_helper');
      return;
    }
    postMessage('ready');
    wasm_bindgen.mlr_rayon_helper(queue);
  }, (e) => postMessage('failed: ' + e));
};";

    /// Runs one rayon thread: takes a `ThreadBuilder` from the queue at `queue` (a pointer from
    /// [`start`], one reference per helper) and runs it; never returns while the pool lives.
    /// Exported to the helpers' script by the threaded bins (`bin/worker_mt.rs`).
    pub fn run_helper(queue: u32) {
        // SAFETY: `queue` is an `Arc<Queue>` leaked by `spawn_helper` with one strong count for
        // this helper; it is taken back exactly once, here.
        let queue = unsafe { Arc::from_raw(queue as usize as *const Queue) };
        let builder = queue.lock().ok().and_then(|rx| rx.recv().ok());
        drop(queue);
        if let Some(builder) = builder {
            builder.run();
        }
    }

    /// The absolute URL of `glue` (see [`super::start`]). A `blob:` worker's address cannot be
    /// a base URL, but its origin is its creator's.
    fn resolve(glue: &str) -> Result<String, String> {
        let location = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("location"))
            .map_err(|_| "the worker has no location".to_string())?;
        let field =
            |name: &str| js_sys::Reflect::get(&location, &JsValue::from_str(name)).ok().and_then(|o| o.as_string());
        if glue.starts_with('/') {
            let origin = field("origin").ok_or("the worker has no origin")?;
            return Ok(format!("{origin}{glue}"));
        }
        let base = field("href").ok_or("the worker has no address")?;
        Url::new_with_base(glue, &base).map(|u| u.href()).map_err(js)
    }

    fn js(e: JsValue) -> String {
        e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().map(String::from)).unwrap_or_else(|| format!("{e:?}"))
    }

    /// Starts `threads` helpers, waits until each has loaded the module, then builds rayon's
    /// global pool on them.
    pub(super) async fn start(glue: &str, threads: usize) -> Result<(), String> {
        let glue = resolve(glue)?;
        let parts = Array::of1(&JsValue::from_str(HELPER));
        let options = BlobPropertyBag::new();
        options.set_type("text/javascript");
        let blob = Blob::new_with_str_sequence_and_options(&parts, &options).map_err(js)?;
        let url = Url::create_object_url_with_blob(&blob).map_err(js)?;
        let (tx, rx) = channel::<ThreadBuilder>();
        let queue: Arc<Queue> = Arc::new(Mutex::new(rx));
        // All helpers load at once; each answers when its module is instantiated.
        let started = futures::future::join_all((0..threads).map(|_| spawn_helper(&url, &glue, &queue))).await;
        let mut workers = Vec::with_capacity(threads);
        let mut outcome = Ok(());
        for (i, s) in started.into_iter().enumerate() {
            match s {
                Ok(worker) => workers.push(worker),
                Err(e) => outcome = Err(format!("helper {} of {threads}: {e}", i + 1)),
            }
        }
        let _ = Url::revoke_object_url(&url);
        if let Err(e) = outcome {
            // The helpers that did start wait on the queue: stop them.
            workers.iter().for_each(Worker::terminate);
            return Err(e);
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("mlr-rayon-{i}"))
            .spawn_handler(move |thread| tx.send(thread).map_err(|e| std::io::Error::other(e.to_string())))
            .build_global()
            .map_err(|e| {
                workers.iter().for_each(Worker::terminate);
                e.to_string()
            })?;
        // The helpers run for the worker's life.
        std::mem::forget(workers);
        Ok(())
    }

    /// Starts one helper and waits for its "ready".
    async fn spawn_helper(url: &str, glue: &str, queue: &Arc<Queue>) -> Result<Worker, String> {
        let worker = Worker::new(url).map_err(js)?;
        let (said, heard) = oneshot::channel::<Result<(), String>>();
        // The first answer wins (a message, or an error event).
        let said = Rc::new(RefCell::new(Some(said)));
        let reply = move |said: &RefCell<Option<oneshot::Sender<Result<(), String>>>>, outcome| {
            if let Some(s) = said.borrow_mut().take() {
                let _ = s.send(outcome);
            }
        };
        let on_message = {
            let said = said.clone();
            Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
                let text = e.data().as_string().unwrap_or_default();
                reply(&said, if text == "ready" { Ok(()) } else { Err(text) });
            })
        };
        let on_error = Closure::<dyn Fn(ErrorEvent)>::new(move |e: ErrorEvent| {
            reply(&said, Err(format!("the worker failed to load: {}", e.message())));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let pointer = Arc::into_raw(queue.clone()) as usize as u32;
        let message = Array::of4(
            &JsValue::from_str(glue),
            &wasm_bindgen::module(),
            &wasm_bindgen::memory(),
            &JsValue::from(pointer),
        );
        if let Err(e) = worker.post_message(&message) {
            // SAFETY: the helper never got the pointer: take its reference back.
            drop(unsafe { Arc::from_raw(pointer as usize as *const Queue) });
            worker.terminate();
            return Err(js(e));
        }
        let outcome = heard.await.unwrap_or_else(|_| Err("no answer".into()));
        worker.set_onmessage(None);
        worker.set_onerror(None);
        drop((on_message, on_error));
        match outcome {
            Ok(()) => Ok(worker),
            Err(e) => {
                worker.terminate();
                Err(e)
            }
        }
    }
}
