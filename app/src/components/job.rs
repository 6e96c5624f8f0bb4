//! The progress bar of a long job of the worker (re-embedding, evaluation).

use yew::prelude::*;

use crate::state::JobStep;

/// Properties of [`JobProgress`].
#[derive(Properties, PartialEq)]
pub(crate) struct JobProgressProps {
    /// Id of the `progress` element.
    pub id: &'static str,
    /// The job's last progress report (`None`: the worker has not started it).
    pub progress: Option<JobStep>,
}

/// The progress of a job.
#[component]
pub(crate) fn JobProgress(props: &JobProgressProps) -> Html {
    let id = props.id;
    match &props.progress {
        Some(step) => html! {
            <p class="job">
                <progress id={id} max={step.total.max(1).to_string()} value={step.done.to_string()} aria-label={step.what.clone()} />
                <span>{ format!(" {}: {} of {}", step.what, step.done, step.total) }</span>
            </p>
        },
        None => html! {
            <p class="job">
                <progress id={id} aria-label="waiting for the worker" />
                <span>{ " waiting for the worker…" }</span>
            </p>
        },
    }
}
