//! The page: two texts in any languages, their similarity computed by the worker.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;
use yew_agent::reactor::{use_reactor_bridge, ReactorEvent, ReactorProvider};

use crate::protocol::{Event, JsCodec, Request};
use crate::worker::EncoderReactor;

/// Where the worker finds the default model (relative to the page).
pub const DEFAULT_MODEL_URL: &str = "models/multilingual-e5-small";

/// What the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Loading, ready or failed, in words.
    pub status: String,
    /// Progress of the current download (loaded, total), if any.
    pub progress: Option<(String, u64, u64)>,
    /// The backend label once ready.
    pub backend: Option<String>,
    /// The texts.
    pub a: String,
    /// Second text.
    pub b: String,
    /// Last similarity and its time.
    pub similarity: Option<(f32, f64)>,
    /// Id of the newest similarity request; older answers are ignored.
    pub pending: u32,
    /// Use a software WebGPU adapter if that is all there is.
    pub allow_software_gpu: bool,
    /// Last error.
    pub error: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: "starting the worker".into(),
            progress: None,
            backend: None,
            a: "¿Dónde está la biblioteca?".into(),
            b: "Where is the library?".into(),
            similarity: None,
            pending: 0,
            allow_software_gpu: false,
            error: None,
        }
    }
}

/// State changes.
#[derive(Debug, Clone)]
pub enum Action {
    /// A worker event arrived.
    Worker(Event),
    /// Text A edited.
    SetA(String),
    /// Text B edited.
    SetB(String),
    /// A similarity request was sent.
    Asked(u32),
    /// The software-adapter toggle changed (the model is reloaded).
    SetSoftwareGpu(bool),
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::Worker(Event::Progress { file, loaded, total }) => {
                s.status = format!("downloading {file}");
                s.progress = Some((file, loaded, total));
            }
            Action::Worker(Event::Status(text)) => {
                s.status = text;
                s.progress = None;
            }
            Action::Worker(Event::Ready { backend, load_ms }) => {
                s.status = format!("ready (loaded in {:.1} s)", load_ms / 1000.0);
                s.progress = None;
                s.backend = Some(backend);
                s.error = None;
            }
            Action::Worker(Event::Similarity { id, value, ms }) => {
                if id == s.pending {
                    s.similarity = Some((value, ms));
                }
            }
            Action::Worker(Event::Error(message)) => {
                s.status = "error".into();
                s.error = Some(message);
            }
            Action::SetA(t) => s.a = t,
            Action::SetB(t) => s.b = t,
            Action::Asked(id) => s.pending = id,
            Action::SetSoftwareGpu(on) => {
                s.allow_software_gpu = on;
                s.backend = None;
                s.similarity = None;
                s.status = "reloading".into();
            }
        }
        Rc::new(s)
    }
}

/// Resolves `path` against the page's address: the worker runs from a blob URL, where relative
/// URLs cannot be fetched.
fn absolute_url(path: &str) -> String {
    let base = web_sys::window().and_then(|w| w.location().href().ok()).unwrap_or_default();
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"URL".into())
        .ok()
        .and_then(|ctor| ctor.dyn_into::<js_sys::Function>().ok())
        .and_then(|ctor| js_sys::Reflect::construct(&ctor, &js_sys::Array::of2(&path.into(), &base.into())).ok())
        .and_then(|url| js_sys::Reflect::get(&url, &"href".into()).ok())
        .and_then(|href| href.as_string())
        .unwrap_or_else(|| path.to_string())
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

/// The similarity demo, talking to the worker.
#[component]
fn Demo() -> Html {
    let state = use_reducer(State::default);
    let bridge = {
        let state = state.clone();
        use_reactor_bridge::<EncoderReactor, _>(move |event: ReactorEvent<EncoderReactor>| {
            if let ReactorEvent::Output(e) = event {
                state.dispatch(Action::Worker(e));
            }
        })
    };
    // Load on start and whenever the software-adapter toggle changes.
    {
        let bridge = bridge.clone();
        use_effect_with(state.allow_software_gpu, move |allow| {
            bridge.send(Request::Load { base_url: absolute_url(DEFAULT_MODEL_URL), allow_software_gpu: *allow });
        });
    }
    let ask = {
        let (bridge, state) = (bridge.clone(), state.clone());
        Callback::from(move |_: ()| {
            let id = state.pending + 1;
            state.dispatch(Action::Asked(id));
            bridge.send(Request::Similarity { id, a: state.a.clone(), b: state.b.clone() });
        })
    };
    // Compare the initial texts as soon as the model is ready.
    {
        let ask = ask.clone();
        use_effect_with(state.backend.clone(), move |backend| {
            if backend.is_some() {
                ask.emit(());
            }
        });
    }
    let edit = |action: fn(String) -> Action| {
        let dispatcher = state.dispatcher();
        Callback::from(move |e: InputEvent| {
            dispatcher.dispatch(action(e.target_unchecked_into::<HtmlTextAreaElement>().value()))
        })
    };
    let (on_a, on_b) = (edit(Action::SetA), edit(Action::SetB));
    let on_toggle = {
        let state = state.clone();
        Callback::from(move |_: MouseEvent| state.dispatch(Action::SetSoftwareGpu(!state.allow_software_gpu)))
    };
    let ready = state.backend.is_some();
    html! {
        <main>
            <h1>{ "mlr" }</h1>
            <p class="lead">{ "Multilingual dense retrieval in your browser: multilingual-e5-small, computed by Rust (burn) in a web worker." }</p>
            <section class="texts">
                <textarea id="text-a" value={state.a.clone()} oninput={on_a} maxlength="10000" />
                <textarea id="text-b" value={state.b.clone()} oninput={on_b} maxlength="10000" />
            </section>
            <button id="compare" disabled={!ready} onclick={ask.reform(|_| ())}>{ "Compare" }</button>
            <p class="result">
                { "cosine similarity: " }
                <output id="similarity" data-value={state.similarity.map(|(v, _)| v.to_string()).unwrap_or_default()}>
                    { state.similarity.map(|(v, ms)| format!("{v:.4}  ({ms:.0} ms)")).unwrap_or_else(|| "–".into()) }
                </output>
            </p>
            <p class="status">
                { "status: " }<span id="status">{ state.status.clone() }</span>
                if let Some((file, loaded, total)) = &state.progress {
                    <progress max={total.max(&1).to_string()} value={loaded.to_string()} />
                    <span>{ format!(" {file}: {} of {} MB", mb(*loaded), mb(*total)) }</span>
                }
            </p>
            <p>{ "backend: " }<span id="backend">{ state.backend.clone().unwrap_or_else(|| "–".into()) }</span></p>
            <label>
                <input id="software-gpu" type="checkbox" checked={state.allow_software_gpu} onclick={on_toggle} />
                { " use a software WebGPU adapter if there is no GPU (slow)" }
            </label>
            if let Some(error) = &state.error {
                <p id="error" class="error">{ error.clone() }</p>
            }
        </main>
    }
}

/// The root component: provides the worker to the page.
#[component]
pub fn App() -> Html {
    html! {
        <ReactorProvider<EncoderReactor, JsCodec> path="/worker.js">
            <Demo />
        </ReactorProvider<EncoderReactor, JsCodec>>
    }
}
