//! The page: one query box over a corpus in eleven languages, the language-bias view of each
//! search, the user's own documents, the LAReQA evaluator and a check of the browser encoder
//! against the native vectors.
//!
//! [`App`] chooses the encoder worker ([`crate::workers`]) and provides it; `Demo`, under it, holds the page's one [`State`] (see
//! [`crate::state`]: the state, its actions, its reducer and the address) and the bridge to the
//! worker. It turns what the user does into actions and worker requests (every request id from
//! one counter), and hands each part of the page (the `components` module) only what that part
//! shows, plus callbacks.
//!
//! The page runs under a Content-Security-Policy without `'unsafe-inline'` styles: nothing here
//! writes a `style` attribute. Bar charts are sized with SVG attributes and coloured by CSS
//! classes.

use yew::prelude::*;
use yew_agent::reactor::{use_reactor_bridge, ReactorEvent, ReactorProvider};

use crate::components::bias::BiasPanel;
use crate::components::check::CheckPanel;
use crate::components::docs::{save_file, DocsPanel};
use crate::components::eval::EvalPanel;
use crate::components::footer::Footer;
use crate::components::header::Header;
use crate::components::search::SearchPanel;
use crate::components::tabs::Tabs;
use crate::docs::state::{DocsAction, Sent};
use crate::protocol::{DocsEvent, DocsOp, JsCodec, Request, WorkerEvent};
use crate::state::{
    clip, replace_url, Action, EvalSettings, Job, JobKind, LoadSettings, Query, State, Tab, FALLBACK_CANDIDATES,
};
use crate::worker::EncoderReactor;
use crate::workers::{self, WorkerChoice};

/// Properties of [`Demo`].
#[derive(Properties, PartialEq)]
struct DemoProps {
    /// The worker the page started.
    choice: WorkerChoice,
}

/// The whole page, talking to the worker.
#[component]
fn Demo(props: &DemoProps) -> Html {
    let state = use_reducer(State::from_location);
    let bridge = {
        let dispatcher = state.dispatcher();
        use_reactor_bridge::<EncoderReactor, _>(move |event: ReactorEvent<EncoderReactor>| {
            if let ReactorEvent::Output(e) = event {
                // An exported collection goes to the user's downloads, not into the state.
                if let WorkerEvent::Docs { event, .. } = &e {
                    if let DocsEvent::Exported { file, bytes } = &**event {
                        save_file(file, bytes);
                    }
                }
                dispatcher.dispatch(Action::Worker(e));
            }
        })
    };
    // One counter for every request id, outside the render state, so two clicks in one frame
    // never share an id.
    let next_id = use_mut_ref(|| 0u32);
    let take_id = {
        let next_id = next_id.clone();
        move || {
            let mut n = next_id.borrow_mut();
            *n += 1;
            *n
        }
    };
    // The worker's last words, if it panics.
    {
        let dispatcher = state.dispatcher();
        use_effect_with((), move |_| crate::crash::listen(move |m| dispatcher.dispatch(Action::WorkerCrashed(m))));
    }
    let load = {
        let (bridge, dispatcher, take_id) = (bridge.clone(), state.dispatcher(), take_id.clone());
        let choice = props.choice;
        Callback::from(move |settings: LoadSettings| {
            // A setting the other worker serves (WebGPU on the threaded one, threads on the
            // WebGPU one) reloads the page with it in the address.
            if let Some(href) = choice.reload_for(&settings) {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().set_href(&href);
                    return;
                }
            }
            let id = take_id();
            dispatcher.dispatch(Action::Loading(settings.clone(), id));
            bridge.send(settings.request(id));
        })
    };
    let search = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |query: Query| {
            if query.text.trim().is_empty() {
                state.dispatch(Action::EmptyQuery);
                return;
            }
            let query = Query { text: clip(&query.text), ..query };
            let id = take_id();
            replace_url(&query);
            bridge.send(Request::Search { id, query: query.text.clone(), k: query.k, lang: query.lang.clone() });
            state.dispatch(Action::Searching { id, query });
        })
    };
    let reembed = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |count: usize| {
            let id = take_id();
            bridge.send(Request::Reembed { id, count });
            state.dispatch(Action::Started(Job { id, kind: JobKind::Reembed { count }, progress: None }));
        })
    };
    let evaluate = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |settings: EvalSettings| {
            let id = take_id();
            bridge.send(Request::Evaluate {
                id,
                langs: settings.langs.clone(),
                split: settings.split,
                max_questions: settings.max_questions,
            });
            state.dispatch(Action::Started(Job { id, kind: JobKind::Evaluate(settings), progress: None }));
        })
    };
    let docs_op = {
        let (bridge, state, take_id) = (bridge.clone(), state.clone(), take_id.clone());
        Callback::from(move |op: DocsOp| {
            let id = take_id();
            state.dispatch(Action::Docs(DocsAction::Sent(id, Sent::of(&op))));
            bridge.send(Request::Docs { id, op });
        })
    };
    // List the stored collections whenever a model is ready (whether each is usable depends on it).
    {
        let docs_op = docs_op.clone();
        let ready = state.loaded.as_ref().map(|l| l.model.clone());
        use_effect_with(ready, move |ready| {
            if ready.is_some() {
                docs_op.emit(DocsOp::List);
            }
        });
    }
    // Load the default model once, on start.
    {
        let load = load.clone();
        let (force_cpu, allow_software_gpu) = (state.force_cpu, state.allow_software_gpu);
        use_effect_with((), move |_| {
            load.emit(LoadSettings { force_cpu, allow_software_gpu, ..LoadSettings::default() })
        });
    }
    // Run the query of the address (or of an example clicked while loading) once the model is ready.
    {
        let (search, state) = (search.clone(), state.clone());
        let ready = state.loaded.is_some();
        use_effect_with(ready, move |&ready| {
            if ready && state.run_when_ready {
                search.emit(Query { text: state.query.clone(), lang: state.lang.clone(), k: state.k });
            }
        });
    }
    let s: &State = &state;
    let dispatch = state.dispatcher();
    let on = |action: fn(String) -> Action| dispatch.to_callback().reform(action);
    let langs = s.langs().to_vec();
    html! {
        <>
            <Header
                manifest={s.manifest.clone()}
                model={s.model.clone()}
                loading={s.loading}
                allow_software_gpu={s.allow_software_gpu}
                force_cpu={s.force_cpu}
                status={s.status.clone()}
                download={s.download.clone()}
                loaded={s.loaded.clone()}
                error={s.error.clone()}
                last_load={s.last_load.clone()}
                on_load={load}
            />
            <main id="main">
                <Tabs current={s.tab} on_select={dispatch.to_callback().reform(Action::SetTab)} />
                <SearchPanel
                    hidden={s.tab != Tab::Search}
                    ready={s.loaded.is_some()}
                    query={s.query.clone()}
                    lang={s.lang.clone()}
                    k={s.k}
                    hint={s.hint}
                    langs={langs}
                    status={s.search_status()}
                    results={s.results.clone()}
                    on_search={search}
                    on_query={on(Action::SetQuery)}
                    on_lang={dispatch.to_callback().reform(Action::SetLang)}
                    on_k={dispatch.to_callback().reform(Action::SetK)}
                    on_defer={on(Action::Defer)}
                />
                <BiasPanel
                    hidden={s.tab != Tab::Bias}
                    results={s.results.clone()}
                    candidates={s.candidates()}
                    manifest={s.manifest.clone()}
                    model={s.model.clone()}
                />
                <DocsPanel
                    hidden={s.tab != Tab::Docs}
                    model={s.loaded.as_ref().map(|l| l.model.clone())}
                    docs={s.docs.clone()}
                    on_action={dispatch.to_callback().reform(Action::Docs)}
                    on_op={docs_op}
                />
                <EvalPanel
                    hidden={s.tab != Tab::Evaluate}
                    manifest={s.manifest.clone()}
                    model={s.model.clone()}
                    loaded_model={s.loaded.as_ref().map(|l| l.model.clone())}
                    off={s.eval_off.clone()}
                    questions={s.eval_questions.clone()}
                    split={s.eval_split}
                    blocker={s.job_blocker()}
                    job={s.job_of(|kind| matches!(kind, JobKind::Evaluate(_)))}
                    evaluation={s.evaluation.clone()}
                    on_evaluate={evaluate}
                    on_lang={dispatch.to_callback().reform(|(lang, on): (String, bool)| Action::SetEvalLang(lang, on))}
                    on_all_langs={dispatch.to_callback().reform(Action::SetAllEvalLangs)}
                    on_questions={on(Action::SetEvalQuestions)}
                    on_split={dispatch.to_callback().reform(Action::SetEvalSplit)}
                />
                <CheckPanel
                    hidden={s.tab != Tab::Check}
                    max={s.manifest.as_ref().map_or(FALLBACK_CANDIDATES, |m| m.dataset.n_candidates)}
                    count={s.reembed_count.clone()}
                    blocker={s.job_blocker()}
                    job={s.job_of(|kind| matches!(kind, JobKind::Reembed { .. }))}
                    reembedded={s.reembedded.clone()}
                    on_count={on(Action::SetReembedCount)}
                    on_reembed={reembed}
                />
            </main>
            <Footer manifest={s.manifest.clone()} />
        </>
    }
}

/// The root component: chooses the worker ([`crate::workers`]) and provides it to the page.
#[component]
pub fn App() -> Html {
    let choice = use_state(|| None::<WorkerChoice>);
    {
        let choice = choice.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move { choice.set(Some(workers::choose().await)) })
        });
    }
    match *choice {
        None => html! { <p class="starting" role="status">{ "starting the encoder…" }</p> },
        Some(choice) => html! {
            <ReactorProvider<EncoderReactor, JsCodec> path={choice.path()}>
                <Demo {choice} />
            </ReactorProvider<EncoderReactor, JsCodec>>
        },
    }
}
