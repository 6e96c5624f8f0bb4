//! The per-language bias of every model of the manifest on the whole dataset (Mul. mAP, rank
//! distance, own-language share of the pooled top k), from the reports shipped in the manifest.

use std::rc::Rc;

use mlr_eval::lareqa::LangReport;
use yew::prelude::*;

use super::format::{dash, distance_cell, map_cell};
use crate::protocol::{Manifest, ModelEntry};

/// Properties of [`DatasetTable`].
#[derive(Properties, PartialEq)]
pub(crate) struct DatasetTableProps {
    /// The manifest: the dataset and every model's report.
    pub manifest: Rc<Manifest>,
    /// The model asked for or loaded (its columns come first, marked "chosen").
    pub model: Option<String>,
}

/// The per-language bias of every model of the manifest on the whole dataset (the loaded model
/// first), from the reports shipped in the manifest.
#[component]
pub(crate) fn DatasetTable(props: &DatasetTableProps) -> Html {
    let manifest = &props.manifest;
    let mut models: Vec<&ModelEntry> = manifest.models.iter().collect();
    models.sort_by_key(|m| props.model.as_deref() != Some(m.name.as_str()));
    let k = models
        .iter()
        .copied()
        .flat_map(|m| m.report.per_lang.iter())
        .find_map(|l| l.preference.as_ref().map(|p| p.k))
        .unwrap_or(10);
    let n_langs = manifest.dataset.langs.len();
    html! {
        <section class="dataset-bias" aria-labelledby="dataset-bias-heading">
            <h3 id="dataset-bias-heading">{ format!(
                "The dataset: {}, {} articles",
                manifest.dataset.name,
                models.first().map_or("test", |m| m.report_split.as_str())
            ) }</h3>
            <p class="muted">
                { format!(
                    "Mul. mAP (×100): questions of each language against the pooled corpus. \
                     rank distance: mean over questions of max − min pooled rank of its {n_langs} parallel \
                     answers; lower is fairer. Own-language share of top {k}: how much of the pooled top {k} \
                     is in the question's language, against that language's share of the pool."
                ) }
            </p>
            <div class="table-scroll" role="region" aria-labelledby="dataset-bias-heading" tabindex="0">
                <table id="dataset-bias" class="numbers">
                    <thead>
                        <tr>
                            <th scope="col" rowspan="2">{ "language" }</th>
                            for model in models.iter() {
                                <th scope="colgroup" colspan="3" title={model.label.clone()}>
                                    { model.name.clone() }
                                    if props.model.as_deref() == Some(model.name.as_str()) {
                                        <span class="muted">{ " (chosen)" }</span>
                                    }
                                </th>
                            }
                        </tr>
                        <tr>
                            for _model in models.iter() {
                                <th scope="col" class="num">{ "Mul. mAP" }</th>
                                <th scope="col" class="num">{ "rank distance" }</th>
                                <th scope="col" class="num">{ format!("own-language share of top {k}") }</th>
                            }
                        </tr>
                    </thead>
                    <tbody>
                        for lang in manifest.dataset.langs.iter() {
                            <tr key={lang.clone()}>
                                <th scope="row">{ lang.clone() }</th>
                                { for models.iter().map(|m| bias_cells(m.report.per_lang.iter().find(|l| &l.lang == lang))) }
                            </tr>
                        }
                    </tbody>
                    <tfoot>
                        <tr class="all">
                            <th scope="row">{ "all" }</th>
                            for model in models.iter() {
                                <td class="num">{ map_cell(model.report.multi.as_ref()) }</td>
                                <td class="num">{ distance_cell(model.report.rank_distance) }</td>
                                <td class="num">{ dash() }</td>
                            }
                        </tr>
                    </tfoot>
                </table>
            </div>
        </section>
    }
}

/// Mul. mAP, rank distance and own-language share of one language under one model.
fn bias_cells(report: Option<&LangReport>) -> Html {
    let Some(l) = report else {
        return html! { <><td class="num">{ dash() }</td><td class="num">{ dash() }</td><td class="num">{ dash() }</td></> };
    };
    let share = l
        .preference
        .as_ref()
        .map_or_else(dash, |p| format!("{:.1} % (pool {:.1} %)", 100.0 * p.own_share, 100.0 * p.pool_share));
    html! {
        <>
            <td class="num">{ map_cell(l.multi.as_ref()) }</td>
            <td class="num">{ distance_cell(l.rank_distance) }</td>
            <td class="num">{ share }</td>
        </>
    }
}
