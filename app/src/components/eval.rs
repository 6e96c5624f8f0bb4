//! The evaluator tab: the LAReQA evaluation (mlr-eval, compiled to wasm) of the chosen model's
//! precomputed vectors on a subset (query languages, article split, the first N questions), run in
//! the worker; the finished report is an [`EvalReport`].

use std::collections::BTreeSet;
use std::rc::Rc;

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::format::dash;
use super::job::JobProgress;
use super::report::EvalReport;
use crate::protocol::{Manifest, Split};
use crate::state::{EvalSettings, Evaluation, Job, SPLITS};

/// Properties of [`EvalPanel`].
#[derive(Properties, PartialEq)]
pub(crate) struct EvalPanelProps {
    /// The tab is not shown.
    pub hidden: bool,
    /// The manifest (the languages, the models' labels and vectors), once read.
    pub manifest: Option<Rc<Manifest>>,
    /// The model asked for or loaded.
    pub model: Option<String>,
    /// The model whose vectors are scored, once it is ready.
    pub loaded_model: Option<String>,
    /// Languages the user unticked (all are ticked at first).
    pub off: BTreeSet<String>,
    /// The number of questions, as typed.
    pub questions: String,
    /// The article split.
    pub split: Split,
    /// Why no job can start now (no model yet, or another job runs), if so.
    pub blocker: Option<&'static str>,
    /// The running evaluation, if one runs.
    pub job: Option<Job>,
    /// The last evaluation.
    pub evaluation: Option<Rc<Evaluation>>,
    /// Starts an evaluation.
    pub on_evaluate: Callback<EvalSettings>,
    /// A language was ticked (`true`) or unticked.
    pub on_lang: Callback<(String, bool)>,
    /// All languages ticked (`true`) or unticked.
    pub on_all_langs: Callback<bool>,
    /// The number of questions was edited.
    pub on_questions: Callback<String>,
    /// The split changed.
    pub on_split: Callback<Split>,
}

/// The LAReQA evaluator.
#[component]
pub(crate) fn EvalPanel(props: &EvalPanelProps) -> Html {
    let langs: &[String] = match &props.manifest {
        Some(manifest) => &manifest.dataset.langs,
        None => &[],
    };
    let chosen: Vec<String> = langs.iter().filter(|l| !props.off.contains(*l)).cloned().collect();
    let questions = parse_questions(&props.questions);
    let blocker = props.blocker.or_else(|| {
        if props.manifest.is_some() && chosen.is_empty() {
            Some("Tick at least one language.")
        } else if questions.is_err() {
            Some("The number of questions is a whole number of at least 1 (empty = all).")
        } else {
            None
        }
    });
    let settings = match (blocker, &props.loaded_model, questions) {
        (None, Some(model), Ok(max_questions)) => {
            Some(EvalSettings { model: model.clone(), langs: chosen, split: props.split, max_questions })
        }
        _ => None,
    };
    let onclick = {
        let (evaluate, settings) = (props.on_evaluate.clone(), settings.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(settings) = &settings {
                evaluate.emit(settings.clone());
            }
        })
    };
    let on_questions = props.on_questions.reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
    let on_split = {
        let on_split = props.on_split.clone();
        Callback::from(move |e: Event| {
            if let Ok(split) = e.target_unchecked_into::<HtmlSelectElement>().value().parse::<Split>() {
                on_split.emit(split);
            }
        })
    };
    let all_langs = props.on_all_langs.reform(|_: MouseEvent| true);
    let no_langs = props.on_all_langs.reform(|_: MouseEvent| false);
    let model_label = props
        .manifest
        .as_ref()
        .and_then(|m| m.models.iter().find(|m| props.model.as_deref() == Some(m.name.as_str())))
        .map_or_else(|| props.model.clone().unwrap_or_else(dash), |m| m.label.clone());
    html! {
        <section id="eval-panel" class="panel" role="tabpanel" aria-labelledby="eval-tab" hidden={props.hidden}>
            <h2>{ "Evaluate in the browser" }</h2>
            <p>
                { "The scores are computed in the worker by the core evaluation crate (mlr-eval) compiled to \
                   wasm, on the precomputed vectors of the chosen model; " }
                <code>{ "mlr eval --vectors … --split S --langs L --max-questions N" }</code>
                { " gives the same numbers natively." }
            </p>
            <p class="muted">{ format!("Model: {model_label} (choose another at the top of the page).") }</p>
            <div class="eval-form">
                <fieldset class="langs">
                    <legend>{ "Query languages" }</legend>
                    <div class="lang-boxes">
                        { for langs.iter().map(|lang| eval_lang_box(lang, !props.off.contains(lang), &props.on_lang)) }
                    </div>
                    <div class="actions">
                        <button type="button" class="small" onclick={all_langs}>{ "all" }</button>
                        <button type="button" class="small" onclick={no_langs}>{ "none" }</button>
                    </div>
                </fieldset>
                <div class="field">
                    <label for="eval-questions">{ "Questions (the first N; empty = all)" }</label>
                    <input
                        id="eval-questions"
                        type="number"
                        min="1"
                        step="1"
                        inputmode="numeric"
                        value={props.questions.clone()}
                        oninput={on_questions}
                    />
                </div>
                <div class="field">
                    <label for="eval-split">{ "Articles (split)" }</label>
                    <select id="eval-split" onchange={on_split}>
                        for split in SPLITS {
                            <option key={split.name()} value={split.name()} selected={props.split == split}>{ split.name() }</option>
                        }
                    </select>
                </div>
                <div class="field run">
                    <button id="eval-run" type="button" class="primary" disabled={settings.is_none()} onclick={onclick}>
                        { "Evaluate" }
                    </button>
                </div>
            </div>
            if let Some(reason) = blocker {
                <p class="muted">{ reason }</p>
            }
            if let Some(job) = &props.job {
                <JobProgress id="eval-progress" progress={job.progress.clone()} />
            }
            if let Some(evaluation) = &props.evaluation {
                <EvalReport evaluation={evaluation.clone()} manifest={props.manifest.clone()} />
            }
        </section>
    }
}

/// One language checkbox of the evaluator.
fn eval_lang_box(lang: &str, checked: bool, on_lang: &Callback<(String, bool)>) -> Html {
    let onchange = {
        let (on_lang, lang) = (on_lang.clone(), lang.to_string());
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            on_lang.emit((lang.clone(), on));
        })
    };
    html! {
        <label class="check">
            <input class="eval-lang" type="checkbox" value={lang.to_string()} checked={checked} onchange={onchange} />
            { lang.to_string() }
        </label>
    }
}

/// Parses the evaluator's number of questions: empty = all (`Ok(None)`), else a whole number ≥ 1.
fn parse_questions(text: &str) -> Result<Option<usize>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(()),
    }
}
