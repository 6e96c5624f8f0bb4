//! The language-bias tab: for the last search, where each language's parallel answer lands in the
//! pooled ranking (one bar chart per model, on a log scale of the rank), then the per-language bias
//! of every model on the whole dataset ([`DatasetTable`]).
//!
//! The page runs under a Content-Security-Policy without `'unsafe-inline'` styles: the bars are
//! sized with SVG attributes and coloured by CSS classes, never a `style` attribute.

use std::rc::Rc;

use yew::prelude::*;

use super::dataset::DatasetTable;
use super::group::GroupLine;
use crate::protocol::{BiasView, LangRank, Manifest};
use crate::state::SearchResults;

/// Properties of [`BiasPanel`].
#[derive(Properties, PartialEq)]
pub(crate) struct BiasPanelProps {
    /// The tab is not shown.
    pub hidden: bool,
    /// The answer to the newest search (its group and bias views).
    pub results: Option<Rc<SearchResults>>,
    /// Candidates in the corpus (the log scale of the bars).
    pub candidates: usize,
    /// The manifest (the dataset table), once read.
    pub manifest: Option<Rc<Manifest>>,
    /// The model asked for or loaded (first in the dataset table).
    pub model: Option<String>,
}

/// The bias of the last search, per model, and the dataset-level table.
#[component]
pub(crate) fn BiasPanel(props: &BiasPanelProps) -> Html {
    let query_view = match &props.results {
        None => html! { <p id="bias-empty" class="muted">{ "Search first; the bias of that query appears here." }</p> },
        Some(r) if r.bias.is_empty() => html! {
            <p id="bias-empty" class="muted">
                { "No result of the last search answers a dataset question, so there is no group of parallel \
                   answers to place." }
            </p>
        },
        Some(r) => {
            let n = props.candidates;
            html! {
                <>
                    if let Some(group) = &r.group {
                        <GroupLine id="bias-group" group={group.clone()} />
                    }
                    <div class="bias-views">
                        { for r.bias.iter().map(|view| bias_view(view, n)) }
                    </div>
                </>
            }
        }
    };
    html! {
        <section id="bias-panel" class="panel" role="tabpanel" aria-labelledby="bias-tab" hidden={props.hidden} tabindex="0">
            <h2>{ "Language bias of the last search" }</h2>
            <p class="muted">
                { "Each bar is one language: where its answer to the question lands in the pooled ranking of \
                   all languages. Longer is better (log scale: rank 1 is a full bar). The rank distance is the \
                   worst rank minus the best; 0 means every language's answer is ranked alike." }
            </p>
            { query_view }
            if let Some(manifest) = &props.manifest {
                <DatasetTable manifest={manifest.clone()} model={props.model.clone()} />
            } else {
                <p class="muted">{ "The dataset table appears once the manifest is read." }</p>
            }
        </section>
    }
}

/// Layout of a bias chart, in SVG user units.
const CHART_WIDTH: usize = 400;
/// Height of one bar row.
const ROW_HEIGHT: usize = 24;
/// Height of a bar.
const BAR_HEIGHT: usize = 16;
/// Where the bars start (the language codes are left of it).
const BAR_X: usize = 44;
/// The longest bar (the rank numbers are right of it).
const BAR_MAX: usize = 300;

/// The bar chart of one model's bias view.
fn bias_view(view: &BiasView, n_candidates: usize) -> Html {
    let best = view.ranks.iter().map(|r| r.rank).min();
    let height = ROW_HEIGHT * view.ranks.len() + 4;
    let ranks: Vec<String> = view.ranks.iter().map(|r| format!("{} {}", r.lang, r.rank)).collect();
    let label = format!(
        "Pooled rank of each language's answer under {}: {}; rank distance {}",
        view.model,
        ranks.join(", "),
        view.rank_distance
    );
    html! {
        <figure class="bias-view" data-model={view.model.clone()}>
            <figcaption>
                <h3>{ view.model.clone() }</h3>
                <p class="muted source">{ view.source.clone() }</p>
                <p>
                    { "rank distance " }
                    <strong class="rank-distance" data-value={view.rank_distance.to_string()}>{ view.rank_distance }</strong>
                </p>
            </figcaption>
            <svg
                class="bias-bars"
                role="img"
                aria-label={label}
                viewBox={format!("0 0 {CHART_WIDTH} {height}")}
                preserveAspectRatio="xMinYMin meet"
            >
                { for view.ranks.iter().enumerate().map(|(i, r)| bar_row(i, r, best, n_candidates)) }
            </svg>
        </figure>
    }
}

/// One language's bar: its code, a bar on the log scale of its pooled rank, the rank.
fn bar_row(row: usize, rank: &LangRank, best: Option<usize>, n_candidates: usize) -> Html {
    let top = 2 + row * ROW_HEIGHT;
    let middle = top + BAR_HEIGHT / 2;
    let width = (BAR_MAX as f64 * bar_fraction(rank.rank, n_candidates)).max(2.0);
    let own = best == Some(rank.rank);
    html! {
        <g class="bar-row" data-lang={rank.lang.clone()} data-rank={rank.rank.to_string()}>
            <title>{ format!("{}: pooled rank {} (score {:.4}) — {}", rank.lang, rank.rank, rank.score, rank.sentence) }</title>
            <text class="bar-lang" x={(BAR_X - 6).to_string()} y={middle.to_string()} text-anchor="end" dominant-baseline="central">
                { rank.lang.clone() }
            </text>
            <rect
                class={classes!("bar", own.then_some("own"))}
                x={BAR_X.to_string()}
                y={top.to_string()}
                width={format!("{width:.1}")}
                height={BAR_HEIGHT.to_string()}
                rx="2"
            />
            <text class="bar-rank" x={(CHART_WIDTH - 4).to_string()} y={middle.to_string()} text-anchor="end" dominant-baseline="central">
                { rank.rank }
            </text>
        </g>
    }
}

/// Length of a bias bar in 0–1: 1 − ln(rank) / ln(n), so the top-ranked answer has a full bar
/// and the last of `n` candidates none.
fn bar_fraction(rank: usize, n: usize) -> f64 {
    if n < 2 {
        return 1.0;
    }
    (1.0 - (rank.max(1) as f64).ln() / (n as f64).ln()).clamp(0.0, 1.0)
}
