//! The encoder check tab: the browser re-embeds corpus sentences with the loaded model on the
//! page's backend and compares them with the vectors precomputed natively (`mlr demo build`, f16).

use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::job::JobProgress;
use crate::state::{Job, Reembedding};

/// Properties of [`CheckPanel`].
#[derive(Properties, PartialEq)]
pub(crate) struct CheckPanelProps {
    /// The tab is not shown.
    pub hidden: bool,
    /// The most sentences there are to re-embed (the corpus size).
    pub max: usize,
    /// Sentences to re-embed, as typed.
    pub count: String,
    /// Why no job can start now (no model yet, or another job runs), if so.
    pub blocker: Option<&'static str>,
    /// The running re-embedding, if one runs.
    pub job: Option<Job>,
    /// The last re-embedding.
    pub reembedded: Option<Reembedding>,
    /// The number of sentences was edited.
    pub on_count: Callback<String>,
    /// Re-embeds this many sentences.
    pub on_reembed: Callback<usize>,
}

/// Re-embedding corpus sentences in the browser against the precomputed vectors.
#[component]
pub(crate) fn CheckPanel(props: &CheckPanelProps) -> Html {
    let max = props.max;
    let count = props.count.trim().parse::<usize>().ok().filter(|n| (1..=max).contains(n));
    let blocker = props
        .blocker
        .map(str::to_string)
        .or_else(|| count.is_none().then(|| format!("The number of sentences is a whole number from 1 to {max}.")));
    let onclick = {
        let reembed = props.on_reembed.clone();
        let count = if blocker.is_none() { count } else { None };
        Callback::from(move |_: MouseEvent| {
            if let Some(count) = count {
                reembed.emit(count);
            }
        })
    };
    let on_count = props.on_count.reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
    html! {
        <section id="check-panel" class="panel" role="tabpanel" aria-labelledby="check-tab" hidden={props.hidden}>
            <h2>{ "Check the encoder" }</h2>
            <p>
                { "The corpus vectors are precomputed natively with " }
                <code>{ "mlr demo build" }</code>
                { " and shipped compactly (int8 with a scale per 32 values). Here the browser re-embeds the \
                   first N sentences (spread over all \
                   languages) with the loaded model on this page's backend and compares each with its \
                   precomputed vector: cosines close to 1 mean the browser runs the same encoder." }
            </p>
            <div class="row">
                <div class="field">
                    <label for="reembed-count">{ "Sentences" }</label>
                    <input
                        id="reembed-count"
                        type="number"
                        min="1"
                        max={max.to_string()}
                        step="1"
                        inputmode="numeric"
                        value={props.count.clone()}
                        oninput={on_count}
                    />
                </div>
                <div class="field run">
                    <button id="reembed-run" type="button" class="primary" disabled={blocker.is_some()} onclick={onclick}>
                        { "Re-embed" }
                    </button>
                </div>
            </div>
            if let Some(reason) = &blocker {
                <p class="muted">{ reason.clone() }</p>
            }
            if let Some(job) = &props.job {
                <JobProgress id="reembed-progress" progress={job.progress.clone()} />
            }
            if let Some(r) = &props.reembedded {
                <p
                    id="reembed-result"
                    class="summary"
                    data-count={r.count.to_string()}
                    data-min-cosine={r.min_cosine.to_string()}
                    data-mean-cosine={r.mean_cosine.to_string()}
                    data-ms={r.ms.to_string()}
                >
                    { format!(
                        "{} sentences re-embedded in {:.1} s: min cosine {:.5}, mean cosine {:.5} to the precomputed vectors",
                        r.count,
                        r.ms / 1000.0,
                        r.min_cosine,
                        r.mean_cosine
                    ) }
                </p>
            }
        </section>
    }
}
