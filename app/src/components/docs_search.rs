//! Search of the chosen collection: the query form (pooled or one language, top k), the ranked
//! passages (rank, score, language and how it was decided, the passage, its file and place), and
//! the collection's language-bias view: each language's share of the embedded passages against
//! its share of the top k for this query, the same averaged over this visit's queries by the
//! query's language, and the translation groups' ranks and rank distance.

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::format::hundred;
use crate::docs::protocol::{DocsOp, DocsResults, GroupView};
use crate::docs::state::{DocsAction, DocsState, Sent};
use crate::state::{clip, TOP_K};

/// Properties of [`DocsSearch`].
#[derive(Properties, PartialEq)]
pub(crate) struct DocsSearchProps {
    /// The loaded model's name.
    pub model: Option<String>,
    /// The tab's state.
    pub docs: DocsState,
    /// A change of the tab's state.
    pub on_action: Callback<DocsAction>,
    /// An operation for the worker.
    pub on_op: Callback<DocsOp>,
}

/// The search form and the answer.
#[component]
pub(crate) fn DocsSearch(props: &DocsSearchProps) -> Html {
    let d = &props.docs;
    let Some(chosen) = d.chosen().cloned() else {
        return html! {};
    };
    let blocker = if props.model.is_none() {
        Some("Waiting for the model.".to_string())
    } else if !chosen.usable {
        Some(format!("{} was embedded by {}: load that model to search it.", chosen.name, chosen.model))
    } else if chosen.embedded == 0 {
        Some("Embed the collection first.".to_string())
    } else {
        None
    };
    let onsubmit = {
        let (on_op, on_action) = (props.on_op.clone(), props.on_action.clone());
        let (file, query, lang, k) = (chosen.file.clone(), d.query.clone(), d.lang.clone(), d.k);
        let ok = blocker.is_none();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if !ok {
                return;
            }
            if query.trim().is_empty() {
                return on_action.emit(DocsAction::ReadFailed("Type a query first.".into()));
            }
            on_op.emit(DocsOp::Search { file: file.clone(), query: clip(&query), k, lang: lang.clone() });
        })
    };
    let on_query = props
        .on_action
        .reform(|e: InputEvent| DocsAction::SetQuery(e.target_unchecked_into::<HtmlInputElement>().value()));
    let on_lang = props.on_action.reform(|e: Event| {
        let v = e.target_unchecked_into::<HtmlSelectElement>().value();
        DocsAction::SetLang(Some(v).filter(|v| !v.is_empty()))
    });
    let on_k = props.on_action.reform(|e: Event| {
        DocsAction::SetK(e.target_unchecked_into::<HtmlSelectElement>().value().parse().unwrap_or(10))
    });
    let searching = d.waits(Sent::Search);
    let results = d.results.as_ref().filter(|r| r.file == chosen.file);
    html! {
        <div class="docs-search">
            <h3>{ format!("Search {}", chosen.name) }</h3>
            <form class="row" onsubmit={onsubmit}>
                <div class="field grow">
                    <label for="docs-query">{ "Query, in any language or mix" }</label>
                    <input id="docs-query" type="search" maxlength="10000" value={d.query.clone()} oninput={on_query} />
                </div>
                <div class="field">
                    <label for="docs-lang">{ "Passages" }</label>
                    <select id="docs-lang" onchange={on_lang}>
                        <option value="" selected={d.lang.is_none()}>{ "all languages" }</option>
                        for (l, n) in chosen.langs.iter() {
                            <option value={l.clone()} selected={d.lang.as_ref() == Some(l)}>{ format!("{l} only ({n})") }</option>
                        }
                    </select>
                </div>
                <div class="field">
                    <label for="docs-k">{ "Top" }</label>
                    <select id="docs-k" onchange={on_k}>
                        for k in TOP_K {
                            <option value={k.to_string()} selected={d.k == k}>{ k }</option>
                        }
                    </select>
                </div>
                <div class="field run">
                    <button id="docs-search" type="submit" class="primary" disabled={blocker.is_some()}>{ "Search" }</button>
                </div>
            </form>
            if let Some(reason) = blocker {
                <p class="muted">{ reason }</p>
            }
            if searching {
                <p id="docs-search-status" class="muted" role="status">
                    { if d.embedding.is_some() { "Searching the passages embedded so far…" } else { "Searching…" } }
                </p>
            }
            if let Some(r) = results {
                { mark_bar(d, &chosen.file, &props.on_op) }
                { answer(r, d.results_id, &d.ticked, &props.on_action) }
            }
            if !d.bias.rows.is_empty() {
                { bias_table(d) }
            }
        </div>
    }
}

/// The ranked passages, the shares and the groups of one search.
/// Translation groups shown (the best-ranked first).
const GROUPS_SHOWN: usize = 10;

/// Marking the ticked passages as translations of each other.
fn mark_bar(d: &DocsState, file: &str, on_op: &Callback<DocsOp>) -> Html {
    let n = d.ticked.len();
    let onclick = {
        let (file, passages) = (file.to_string(), d.ticked.clone());
        on_op.reform(move |_: MouseEvent| DocsOp::MarkTranslations { file: file.clone(), passages: passages.clone() })
    };
    html! {
        <p class="docs-mark-bar">
            <button id="docs-mark" type="button" disabled={n < 2 || d.waits(Sent::Mark)} onclick={onclick}>
                { format!("Mark {n} ticked passages as translations of each other") }
            </button>
            if let Some((group, members)) = &d.marked {
                <span id="docs-marked" class="muted" data-group={group.clone()}>
                    { format!(" Group {group} now has {members} passages; search again to see where each language's version ranks.") }
                </span>
            } else {
                <span class="muted">{ " Tick two passages or more that say the same in different languages." }</span>
            }
        </p>
    }
}

fn answer(r: &DocsResults, id: u32, ticked: &[usize], on_action: &Callback<DocsAction>) -> Html {
    let partial = r.embedded < r.passages;
    let mut groups: Vec<&GroupView> = r.groups.iter().collect();
    groups.sort_by_key(|g| (g.ranks.first().map_or(usize::MAX, |x| x.rank), g.key.clone()));
    let more = groups.len().saturating_sub(GROUPS_SHOWN);
    groups.truncate(GROUPS_SHOWN);
    html! {
        <>
            <p id="docs-summary" class="summary" role="status">
                { format!(
                    "{} passages in {:.1} ms · query language {} ({})",
                    r.hits.len(),
                    r.encode_ms,
                    r.query_lang,
                    if r.query_lang_reliable { "detected" } else { "an unreliable guess" }
                ) }
                if partial {
                    { format!(" · {} of {} passages embedded so far: the rest are not searched", r.embedded, r.passages) }
                }
            </p>
            <ol id="docs-results" class="hits" data-request={id.to_string()}>
                for h in r.hits.iter() {
                    <li class="hit" key={h.passage} data-id={format!("{:06}", h.passage)} data-score={h.score.to_string()} data-lang={h.lang.clone()}>
                        <div class="hit-meta">
                            <span class="rank">{ format!("#{}", h.rank) }</span>
                            <span class="score" title="cosine similarity">{ format!("{:.4}", h.score) }</span>
                            <span class="lang" title={format!("language: {}", h.lang_source)}>{ h.lang.to_uppercase() }</span>
                            if h.rank != h.pooled_rank {
                                <span class="pooled">{ format!("pooled #{}", h.pooled_rank) }</span>
                            }
                            <span class="place">{ format!("{} {}", h.file, h.place) }</span>
                            if let Some(g) = &h.group {
                                <span class="pooled" title="its translation group">{ format!("group {g}") }</span>
                            }
                            <label class="check">
                                <input
                                    type="checkbox"
                                    class="docs-tick"
                                    data-id={format!("{:06}", h.passage)}
                                    checked={ticked.contains(&h.passage)}
                                    onchange={{
                                        let passage = h.passage;
                                        on_action.reform(move |e: Event| {
                                            DocsAction::Tick(passage, e.target_unchecked_into::<HtmlInputElement>().checked())
                                        })
                                    }}
                                />
                                { "translation" }
                            </label>
                        </div>
                        <p class="sentence" lang={h.lang.clone()} dir="auto">{ h.text.clone() }</p>
                    </li>
                }
            </ol>
            <table id="docs-shares" class="numbers">
                <caption>{ format!("Each language's share of the collection and of this query's top {}", r.k.min(r.embedded)) }</caption>
                <thead><tr><th>{ "Language" }</th><th class="num">{ "Passages" }</th><th class="num">{ "Share of the pool %" }</th><th class="num">{ "Share of the top k %" }</th></tr></thead>
                <tbody>
                    for s in r.shares.iter() {
                        <tr data-lang={s.lang.clone()} data-top={s.top.to_string()}>
                            <th>{ s.lang.clone() }</th>
                            <td class="num">{ s.passages }</td>
                            <td class="num">{ hundred(s.pool_share) }</td>
                            <td class="num">{ hundred(s.top_share) }</td>
                        </tr>
                    }
                </tbody>
            </table>
            if !r.groups.is_empty() {
                <table id="docs-groups" class="numbers">
                    <caption>
                        { "Translation groups: where each language's version ranks (pooled), the best-ranked groups first" }
                        if more > 0 {
                            { format!(" ({more} more not shown)") }
                        }
                    </caption>
                    <thead><tr><th>{ "Group" }</th><th>{ "Ranks" }</th><th class="num">{ "Rank distance" }</th></tr></thead>
                    <tbody>
                        for g in groups.iter() {
                            <tr data-group={g.key.clone()} data-distance={g.rank_distance.to_string()}>
                                <th>{ g.key.clone() }</th>
                                <td>{ g.ranks.iter().map(|x| format!("{} #{}", x.lang, x.rank)).collect::<Vec<_>>().join(", ") }</td>
                                <td class="num">{ g.rank_distance }</td>
                            </tr>
                        }
                    </tbody>
                </table>
            }
        </>
    }
}

/// This visit's mean top-k shares by the query's language.
fn bias_table(d: &DocsState) -> Html {
    let mut langs: Vec<String> =
        d.bias.rows.iter().flat_map(|r| r.mean_top_share.iter().map(|(l, _)| l.clone())).collect();
    langs.sort();
    langs.dedup();
    html! {
        <table id="docs-bias" class="numbers">
            <caption>{ "Mean share of the top k (%), over this visit's queries, by the query's language" }</caption>
            <thead><tr>
                <th>{ "Query language" }</th><th class="num">{ "Queries" }</th>
                for l in langs.iter() { <th class="num">{ l.clone() }</th> }
            </tr></thead>
            <tbody>
                for row in d.bias.rows.iter() {
                    <tr>
                        <th>{ row.query_lang.clone() }</th>
                        <td class="num">{ row.queries }</td>
                        for l in langs.iter() {
                            <td class="num">{ row.mean_top_share.iter().find(|(x, _)| x == l).map_or("0.0".to_string(), |(_, s)| hundred(*s)) }</td>
                        }
                    </tr>
                }
            </tbody>
        </table>
    }
}
