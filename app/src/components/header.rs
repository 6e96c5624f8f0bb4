//! The page's header: the title, the model choice, the backend (and the CPU's threads, with why
//! there is only one when the machine has more), the loading status with the file
//! being fetched, the software-adapter switch, and the last error with what may help ("Retry",
//! "Use the CPU", "Reload the page").

use std::rc::Rc;

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::format::{dash, mb};
use crate::protocol::{Manifest, ModelEntry, Threads};
use crate::state::{page_url, Download, Failure, FailureKind, LoadSettings, Loaded};

/// The line under the title.
const LEAD: &str = "One multilingual encoder, eleven languages, in your browser — and how fair it is across them.";

/// Properties of [`Header`].
#[derive(Properties, PartialEq)]
pub(crate) struct HeaderProps {
    /// The manifest (its models fill the model choice), once read.
    pub manifest: Option<Rc<Manifest>>,
    /// The model asked for or loaded.
    pub model: Option<String>,
    /// A load is under way (the choices are disabled).
    pub loading: bool,
    /// Use a software WebGPU adapter if that is all there is.
    pub allow_software_gpu: bool,
    /// The last load skipped WebGPU.
    pub force_cpu: bool,
    /// Loading, ready or failed, in words.
    pub status: String,
    /// The download in progress.
    pub download: Option<Download>,
    /// The model, once ready.
    pub loaded: Option<Loaded>,
    /// The last error.
    pub error: Option<Failure>,
    /// The last load request ("Retry" sends it again).
    pub last_load: Option<LoadSettings>,
    /// Loads a model.
    pub on_load: Callback<LoadSettings>,
}

/// Title, model choice, backend, loading status and errors.
#[component]
pub(crate) fn Header(props: &HeaderProps) -> Html {
    let on_model = {
        let (load, allow_software_gpu, force_cpu) = (props.on_load.clone(), props.allow_software_gpu, props.force_cpu);
        Callback::from(move |e: Event| {
            let name = e.target_unchecked_into::<HtmlSelectElement>().value();
            load.emit(LoadSettings { model: Some(name), allow_software_gpu, force_cpu });
        })
    };
    let on_software = {
        let (load, model) = (props.on_load.clone(), props.model.clone());
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            load.emit(LoadSettings { model: model.clone(), allow_software_gpu: on, force_cpu: false });
        })
    };
    let models: &[ModelEntry] = match &props.manifest {
        Some(manifest) => &manifest.models,
        None => &[],
    };
    let use_cpu =
        LoadSettings { model: props.model.clone(), allow_software_gpu: props.allow_software_gpu, force_cpu: true };
    html! {
        <header class="site">
            <div class="brand">
                <h1>{ "mlr" }</h1>
                <p class="lead">{ LEAD }</p>
            </div>
            <div class="controls">
                <div class="field">
                    <label for="model">{ "Model" }</label>
                    <select id="model" onchange={on_model} disabled={models.is_empty() || props.loading}>
                        if models.is_empty() {
                            <option value="">{ "reading the manifest…" }</option>
                        }
                        for model in models.iter() {
                            <option
                                key={model.name.clone()}
                                value={model.name.clone()}
                                selected={props.model.as_deref() == Some(model.name.as_str())}
                            >
                                { model.label.clone() }
                            </option>
                        }
                    </select>
                </div>
                <p class="backend">
                    { "backend: " }
                    <span id="backend">{ props.loaded.as_ref().map_or_else(dash, |l| l.backend.clone()) }</span>
                    if let Some(loaded) = props.loaded.as_ref().filter(|l| !l.gpu) {
                        { " · " }
                        { threads_view(&loaded.threads) }
                    }
                </p>
                if let Some(note) = props.loaded.as_ref().filter(|l| !l.gpu).and_then(|l| l.threads.note.clone()) {
                    <p id="threads-note" class="threads-note">{ note }</p>
                }
                <p class="status" role="status" aria-live="polite">
                    { "status: " }
                    <span id="status">{ props.status.clone() }</span>
                    if let Some(loaded) = &props.loaded {
                        { " · " }
                        { load_info(loaded) }
                    }
                </p>
                if let Some(download) = &props.download {
                    { download_view(download) }
                }
                <label class="check">
                    <input id="software-gpu" type="checkbox" checked={props.allow_software_gpu} onchange={on_software} disabled={props.loading} />
                    { " use a software WebGPU adapter if there is no GPU (slow)" }
                </label>
            </div>
            if let Some(failure) = &props.error {
                <ErrorBox
                    failure={failure.clone()}
                    retry={props.last_load.clone().unwrap_or_default()}
                    use_cpu={use_cpu}
                    on_load={props.on_load.clone()}
                />
            }
        </header>
    }
}

/// "12.3 MB downloaded, ready in 4.5 s" (`#downloaded` carries the exact bytes in `data-bytes`,
/// `#load-info` the loaded model's name in `data-model`).
fn load_info(loaded: &Loaded) -> Html {
    let downloaded = if loaded.downloaded == 0 {
        "everything from the cache".to_string()
    } else {
        format!("{} MB downloaded", mb(loaded.downloaded))
    };
    html! {
        <span id="load-info" data-model={loaded.model.clone()}>
            <span id="downloaded" data-bytes={loaded.downloaded.to_string()}>{ downloaded }</span>
            { format!(", ready in {:.1} s", loaded.load_ms / 1000.0) }
        </span>
    }
}

/// "2 threads" (`#threads`: the count in `data-count`, the browser's cores in `data-cores`).
fn threads_view(threads: &Threads) -> Html {
    let text = match threads.count {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    html! {
        <span id="threads" data-count={threads.count.to_string()} data-cores={threads.cores.to_string()}>{ text }</span>
    }
}

/// The progress bar of the file being fetched.
fn download_view(d: &Download) -> Html {
    let known = d.total > 0;
    let mut text = if known {
        format!("{}: {} of {} MB", d.file, mb(d.loaded), mb(d.total))
    } else {
        format!("{}: {} MB", d.file, mb(d.loaded))
    };
    if d.cached {
        text.push_str(" (from cache)");
    }
    html! {
        <p class="download">
            <progress
                id="progress"
                max={known.then(|| d.total.to_string())}
                value={known.then(|| d.loaded.to_string())}
                aria-label={format!("fetching {}", d.file)}
            />
            <span class="download-text">{ text }</span>
        </p>
    }
}

/// Properties of [`ErrorBox`].
#[derive(Properties, PartialEq)]
pub(crate) struct ErrorBoxProps {
    /// The error.
    pub failure: Failure,
    /// What "Retry" loads (the last load again).
    pub retry: LoadSettings,
    /// What "Use the CPU" loads.
    pub use_cpu: LoadSettings,
    /// Loads a model.
    pub on_load: Callback<LoadSettings>,
}

/// The error message with "Retry" (the last load again) and, after a GPU error, "Use the CPU".
#[component]
pub(crate) fn ErrorBox(props: &ErrorBoxProps) -> Html {
    let failure = &props.failure;
    let retry = {
        let (load, last) = (props.on_load.clone(), props.retry.clone());
        Callback::from(move |_: MouseEvent| load.emit(last.clone()))
    };
    let use_cpu = {
        let (load, settings) = (props.on_load.clone(), props.use_cpu.clone());
        Callback::from(move |_: MouseEvent| load.emit(settings.clone()))
    };
    let reload = |cpu: bool| {
        Callback::from(move |_: MouseEvent| {
            let Some(window) = web_sys::window() else { return };
            if cpu {
                if let Some(url) = page_url() {
                    url.search_params().set("cpu", "1");
                    let _ = window.location().set_href(&url.href());
                    return;
                }
            }
            let _ = window.location().reload();
        })
    };
    html! {
        <div id="error" class="error" role="alert">
            <p class="error-message">{ failure.message.clone() }</p>
            <div class="actions">
                if failure.kind == FailureKind::Load {
                    <button id="retry" type="button" onclick={retry}>{ "Retry" }</button>
                }
                if failure.kind == FailureKind::Crashed {
                    <button id="reload" type="button" onclick={reload(false)}>{ "Reload the page" }</button>
                    if failure.gpu {
                        <button id="use-cpu" type="button" onclick={reload(true)}>{ "Reload on the CPU" }</button>
                    }
                } else if failure.gpu {
                    <button id="use-cpu" type="button" onclick={use_cpu}>{ "Use the CPU" }</button>
                }
            </div>
        </div>
    }
}
