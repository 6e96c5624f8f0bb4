//! The search tab: the query form (question, corpus language, number of results), the example
//! queries, and under them the answer to the newest search ([`Results`]).

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::results::Results;
use crate::state::{Query, SearchResults, MAX_QUERY_CHARS, TOP_K};
use std::rc::Rc;

/// An example query of the search tab.
struct Example {
    /// The query.
    text: &'static str,
    /// Its language, when it has a single one.
    lang: Option<&'static str>,
    /// What it shows (the button's tooltip).
    note: &'static str,
}

/// Example queries: several languages, code-switched ones, and one in a language outside the
/// corpus.
const EXAMPLES: &[Example] = &[
    Example {
        text: "¿cuándo fue fundada la Universidad de Chicago 大学?",
        lang: None,
        note: "Spanish mixed with Chinese",
    },
    Example { text: "Who was the Super Bowl 50 MVP?", lang: Some("en"), note: "English" },
    Example { text: "Wann wurde die Universität von Warschau gegründet?", lang: Some("de"), note: "German" },
    Example { text: "什么是南加州的主要城市？", lang: Some("zh"), note: "Chinese" },
    Example {
        text: "Какая самая высокая гора в Северной Америке", lang: Some("ru"), note: "Russian"
    },
    Example { text: "How many people live in Warsaw 人口?", lang: None, note: "English mixed with Chinese" },
    Example {
        text: "Quel est le rôle du pharmacien?",
        lang: Some("fr"),
        note: "French is not in the corpus: cross-lingual retrieval only",
    },
    Example {
        text: "संसद में कितने सदस्य हैं?", lang: Some("hi"), note: "Hindi"
    },
    Example { text: "متى ولد نيكولا تسلا؟", lang: Some("ar"), note: "Arabic (right to left)" },
    Example { text: "Cengiz Han ne zaman öldü?", lang: Some("tr"), note: "Turkish" },
];

/// Properties of [`SearchPanel`].
#[derive(Properties, PartialEq)]
pub(crate) struct SearchPanelProps {
    /// The tab is not shown.
    pub hidden: bool,
    /// The model is ready (searches can run).
    pub ready: bool,
    /// The query box.
    pub query: String,
    /// The language filter.
    pub lang: Option<String>,
    /// Results to show.
    pub k: usize,
    /// Show "Type a question first."
    pub hint: bool,
    /// The corpus languages (empty until the manifest is read).
    pub langs: Vec<String>,
    /// What the newest search is doing, if it is not answered yet.
    pub status: Option<String>,
    /// The answer to the newest search.
    pub results: Option<Rc<SearchResults>>,
    /// Runs a search (an empty query only shows the hint).
    pub on_search: Callback<Query>,
    /// The query box was edited.
    pub on_query: Callback<String>,
    /// The language filter changed (no search to re-run).
    pub on_lang: Callback<Option<String>>,
    /// The number of results changed (no search to re-run).
    pub on_k: Callback<usize>,
    /// A query to run once the model is ready (an example clicked while loading).
    pub on_defer: Callback<String>,
}

/// The query form, the examples and the results.
#[component]
pub(crate) fn SearchPanel(props: &SearchPanelProps) -> Html {
    let ready = props.ready;
    // Changing a filter re-runs the search when there are results to refresh.
    let rerun = ready && props.results.is_some() && !props.query.trim().is_empty();
    let onsubmit = {
        let (search, query) =
            (props.on_search.clone(), Query { text: props.query.clone(), lang: props.lang.clone(), k: props.k });
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            search.emit(query.clone());
        })
    };
    let oninput = props.on_query.reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
    let on_lang = {
        let (on_lang, search, text, k) = (props.on_lang.clone(), props.on_search.clone(), props.query.clone(), props.k);
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            let lang = (!value.is_empty()).then_some(value);
            if rerun {
                search.emit(Query { text: text.clone(), lang, k });
            } else {
                on_lang.emit(lang);
            }
        })
    };
    let on_k = {
        let (on_k, search, text, lang) =
            (props.on_k.clone(), props.on_search.clone(), props.query.clone(), props.lang.clone());
        Callback::from(move |e: Event| {
            let Ok(k) = e.target_unchecked_into::<HtmlSelectElement>().value().parse::<usize>() else {
                return;
            };
            if rerun {
                search.emit(Query { text: text.clone(), lang: lang.clone(), k });
            } else {
                on_k.emit(k);
            }
        })
    };
    html! {
        <section id="search-panel" class="panel" role="tabpanel" aria-labelledby="search-tab" hidden={props.hidden}>
            <form class="search" role="search" onsubmit={onsubmit}>
                <div class="field query-field">
                    <label for="query">{ "Question" }</label>
                    <div class="query-row">
                        <input
                            id="query"
                            type="search"
                            maxlength={MAX_QUERY_CHARS.to_string()}
                            placeholder="Ask in any language, or a mix…"
                            enterkeyhint="search"
                            value={props.query.clone()}
                            oninput={oninput}
                            aria-describedby={props.hint.then_some("query-hint")}
                        />
                        <button id="search" type="submit" class="primary" disabled={!ready}>{ "Search" }</button>
                    </div>
                    if props.hint {
                        <p id="query-hint" class="hint" role="alert">{ "Type a question first." }</p>
                    }
                </div>
                <div class="field">
                    <label for="lang-filter">{ "Corpus" }</label>
                    <select id="lang-filter" onchange={on_lang}>
                        <option value="" selected={props.lang.is_none()}>{ "all languages (pooled)" }</option>
                        for lang in props.langs.iter() {
                            <option key={lang.clone()} value={lang.clone()} selected={props.lang.as_ref() == Some(lang)}>
                                { format!("only {lang}") }
                            </option>
                        }
                    </select>
                </div>
                <div class="field">
                    <label for="top-k">{ "Results" }</label>
                    <select id="top-k" onchange={on_k}>
                        for k in TOP_K {
                            <option key={k} value={k.to_string()} selected={k == props.k}>{ k }</option>
                        }
                    </select>
                </div>
            </form>
            <p class="muted filter-note">
                { "Pooled: every language competes in one ranking (the multilingual setting). One language: \
                   only its sentences are ranked (the cross-lingual view when it is not the query's language)." }
            </p>
            <div id="examples" class="examples" role="group" aria-label="Example queries">
                <span class="muted">{ "Try:" }</span>
                { for EXAMPLES.iter().map(|example| example_button(example, props)) }
            </div>
            <Results status={props.status.clone()} results={props.results.clone()} />
        </section>
    }
}

/// An example query: fills the box and searches (or searches once the model is ready).
fn example_button(example: &'static Example, props: &SearchPanelProps) -> Html {
    let onclick = {
        let (search, defer) = (props.on_search.clone(), props.on_defer.clone());
        let (ready, lang, k) = (props.ready, props.lang.clone(), props.k);
        Callback::from(move |_: MouseEvent| {
            let text = example.text.to_string();
            if ready {
                search.emit(Query { text, lang: lang.clone(), k });
            } else {
                defer.emit(text);
            }
        })
    };
    html! {
        <button type="button" class="example" lang={example.lang} title={example.note} onclick={onclick}>
            { example.text }
        </button>
    }
}
