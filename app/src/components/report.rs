//! The paper-style table of a finished evaluation (mAP and R@k ×100 per query language, the rank
//! distance), the `mlr eval` command that gives the same numbers natively, and the worker's
//! markdown table. The report itself is in the element's `data-json`.

use std::rc::Rc;

use yew::prelude::*;

use super::format::{distance_cell, map_cell, recall_cell};
use crate::protocol::Manifest;
use crate::state::Evaluation;

/// Properties of [`EvalReport`].
#[derive(Properties, PartialEq)]
pub(crate) struct EvalReportProps {
    /// The evaluation.
    pub evaluation: Rc<Evaluation>,
    /// The manifest (the dataset's languages and the model's vectors file of the command).
    pub manifest: Option<Rc<Manifest>>,
}

/// The paper-style table of an evaluation.
#[component]
pub(crate) fn EvalReport(props: &EvalReportProps) -> Html {
    let evaluation = &props.evaluation;
    let manifest = props.manifest.as_deref();
    let r = &evaluation.report;
    let settings = &evaluation.settings;
    let all_langs = manifest.is_some_and(|m| m.dataset.langs.len() == settings.langs.len());
    let langs = if all_langs { "all languages".to_string() } else { settings.langs.join(", ") };
    let vectors = manifest
        .and_then(|m| m.models.iter().find(|m| m.name == settings.model))
        .map_or_else(|| "…".to_string(), |m| m.vectors.path.clone());
    let mut command = format!(
        "mlr eval --vectors $MLR_DEMO_DIR/{vectors} --data $MLR_DEMO_DIR/data --split {} --langs {}",
        settings.split.name(),
        settings.langs.join(",")
    );
    if let Some(n) = settings.max_questions {
        command.push_str(&format!(" --max-questions {n}"));
    }
    html! {
        <div id="eval-report" class="eval-report" data-json={evaluation.json.clone()}>
            <div class="table-scroll" role="region" aria-label="evaluation table" tabindex="0">
                <table class="numbers paper">
                    <caption>
                        { format!(
                            "{} · split {} · {} · {} questions · {} candidates (mAP and R@k ×100)",
                            settings.model, settings.split.name(), langs, r.n_queries, r.n_candidates
                        ) }
                    </caption>
                    <thead>
                        <tr>
                            <th scope="col">{ "query language" }</th>
                            <th scope="col" class="num">{ "questions" }</th>
                            <th scope="col" class="num">{ "Mo. mAP" }</th>
                            <th scope="col" class="num">{ "Cr. mAP" }</th>
                            <th scope="col" class="num">{ "Mul. mAP" }</th>
                            <th scope="col" class="num">{ "R@1 Mo." }</th>
                            <th scope="col" class="num">{ "R@1 Cr." }</th>
                            <th scope="col" class="num">{ "R@10 Mul." }</th>
                            <th scope="col" class="num">{ "rank distance" }</th>
                        </tr>
                    </thead>
                    <tbody>
                        for l in r.per_lang.iter() {
                            <tr key={l.lang.clone()}>
                                <th scope="row">{ l.lang.clone() }</th>
                                <td class="num">{ l.n_queries }</td>
                                <td class="num">{ map_cell(l.mono.as_ref()) }</td>
                                <td class="num">{ map_cell(l.cross.as_ref()) }</td>
                                <td class="num">{ map_cell(l.multi.as_ref()) }</td>
                                <td class="num">{ recall_cell(l.mono.as_ref(), 1) }</td>
                                <td class="num">{ recall_cell(l.cross.as_ref(), 1) }</td>
                                <td class="num">{ recall_cell(l.multi.as_ref(), 10) }</td>
                                <td class="num">{ distance_cell(l.rank_distance) }</td>
                            </tr>
                        }
                    </tbody>
                    <tfoot>
                        <tr class="all">
                            <th scope="row">{ "all" }</th>
                            <td class="num">{ r.n_queries }</td>
                            <td class="num">{ map_cell(r.mono.as_ref()) }</td>
                            <td class="num">{ map_cell(r.cross.as_ref()) }</td>
                            <td class="num">{ map_cell(r.multi.as_ref()) }</td>
                            <td class="num">{ recall_cell(r.mono.as_ref(), 1) }</td>
                            <td class="num">{ recall_cell(r.cross.as_ref(), 1) }</td>
                            <td class="num">{ recall_cell(r.multi.as_ref(), 10) }</td>
                            <td class="num">{ distance_cell(r.rank_distance) }</td>
                        </tr>
                    </tfoot>
                </table>
            </div>
            <p class="muted" id="eval-time">{ format!("scored in {:.0} ms in the browser", evaluation.ms) }</p>
            <p>{ "The same natively: " }<code class="command">{ command }</code></p>
            <details>
                <summary>{ "Markdown table" }</summary>
                <pre class="markdown">{ evaluation.table.clone() }</pre>
            </details>
        </div>
    }
}
