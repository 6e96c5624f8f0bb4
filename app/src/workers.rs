//! Which encoder worker the page starts: `worker` (WebGPU, or the wasm CPU on one thread) or
//! `worker-mt` (the wasm CPU on every core, built with shared memory and without WebGPU; see
//! [`crate::threads`]).
//!
//! The threaded worker is chosen when it can use more than one thread, the page is cross-origin
//! isolated and the browser has more than one core, and WebGPU is not wanted: no hardware adapter
//! (a software one is slower than the CPU), unless the address asks for the software adapter
//! (`gpu=software`, the page's "use a software WebGPU adapter" switch) or for the CPU after a
//! WebGPU error (`cpu=1`). A setting that needs the other worker reloads the page with the
//! setting in its address ([`WorkerChoice::reload_for`]).

use crate::gpu::{probe_webgpu, GpuProbe};
use crate::state::{page_url, LoadSettings};

/// Where trunk puts the WebGPU worker's script (www/index.html, `data-bin="worker"`).
pub const WORKER: &str = "/worker.js";
/// Where trunk puts the threaded worker's script (`data-bin="worker-mt"`).
pub const THREADED_WORKER: &str = "/worker-mt.js";

/// The worker the page runs, and what it was chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerChoice {
    /// The threaded worker (else the WebGPU one).
    pub threaded: bool,
    /// Whether threads are possible at all (cross-origin isolated, more than one core).
    pub threads_possible: bool,
    /// Whether the browser has a hardware WebGPU adapter.
    pub hardware_gpu: bool,
}

impl WorkerChoice {
    /// The script to start.
    pub fn path(&self) -> &'static str {
        if self.threaded {
            THREADED_WORKER
        } else {
            WORKER
        }
    }

    /// Whether a page with these settings runs on the threaded worker: threads are possible, and
    /// WebGPU is not wanted (no hardware adapter and no software one asked for) or the CPU is.
    pub fn threaded_for(&self, allow_software_gpu: bool, force_cpu: bool) -> bool {
        self.threads_possible && (force_cpu || !(self.hardware_gpu || allow_software_gpu))
    }

    /// The address to reload the page at when `settings` need the other worker (the setting
    /// carried in it), else `None`.
    pub fn reload_for(&self, settings: &LoadSettings) -> Option<String> {
        if self.threaded_for(settings.allow_software_gpu, settings.force_cpu) == self.threaded {
            return None;
        }
        let url = page_url()?;
        let params = url.search_params();
        match settings.allow_software_gpu {
            true => params.set("gpu", "software"),
            false => params.delete("gpu"),
        }
        match settings.force_cpu {
            true => params.set("cpu", "1"),
            false => params.delete("cpu"),
        }
        Some(url.href())
    }
}

/// Chooses the worker for this page and address (see the module docs).
pub async fn choose() -> WorkerChoice {
    let (cores, isolated) = crate::threads::environment();
    let threads_possible = isolated && cores >= 2;
    let params = page_url().map(|u| u.search_params());
    let param = |key: &str| params.as_ref().and_then(|p| p.get(key));
    let allow_software_gpu = param("gpu").is_some_and(|v| v == "software");
    let force_cpu = param("cpu").is_some_and(|v| v == "1");
    // The adapter matters only where threads are possible.
    let hardware_gpu = threads_possible && matches!(probe_webgpu().await, GpuProbe::Hardware(_));
    let mut choice = WorkerChoice { threaded: false, threads_possible, hardware_gpu };
    choice.threaded = choice.threaded_for(allow_software_gpu, force_cpu);
    choice
}
